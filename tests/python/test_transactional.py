"""Enqueueing inside the caller's own PostgreSQL transaction
(aipalq_enqueue_tx, aipalq_enqueue_batch_tx) through aipalq.PgConnection and
through psycopg2; the outbox relay; and the synchronous_commit setting."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import unittest

import support
import aipalq


class TransactionalEnqueue(support.ServiceTest):
    def setUp(self):
        super().setUp()
        self.client.define_type("tx", "txq", max_retries=0)
        self.conn = aipalq.PgConnection()  # the suite's scratch database
        self.addCleanup(self.conn.close)
        self.orders = support.unique("orders_")
        self.conn.execute(f"CREATE TEMP TABLE {self.orders} (id int)")

    def orders_count(self) -> int:
        return int(self.conn.execute(f"SELECT count(*) FROM {self.orders}")[0][0])

    def test_commit_makes_the_task_visible_and_dispatched(self):
        c, conn = self.client, self.conn
        with conn.transaction():
            conn.execute(f"INSERT INTO {self.orders} VALUES ($1)", [1])
            tid = c.enqueue_tx(conn, "tx", {"order": 1}, priority=8, user_id="u1")
            self.assertTrue(tid.created)
            self.assertEqual(len(tid), 36)
            self.assertEqual(conn.transaction_status, "intrans")
            # Not committed: no one else sees it, and nothing is dispatched.
            self.assertRaises(aipalq.NotFound, c.get, tid)
            self.assertEqual(conn.execute("SELECT count(*) FROM aipalq_outbox WHERE task_id = $1", [tid]),
                             [("1",)])
        self.assertEqual(conn.transaction_status, "idle")
        self.assertEqual(self.orders_count(), 1)
        t = c.get(tid)
        self.assertEqual((t.state, t.priority, t.user_id, t.params), (aipalq.State.PENDING, 8, "u1", {"order": 1}))
        self.assertEqual(c.queue_depth("txq").ready, 0)  # in the outbox until relayed
        self.assertEqual(c.relay_outbox(), 1)
        self.assertEqual(c.relay_outbox(), 0)
        self.assertEqual(c.queue_depth("txq").ready, 1)
        w = aipalq.Worker(c, maintenance_interval=0)
        self.addCleanup(w.close)
        with w.next(10) as job:
            self.assertEqual(job.id, tid)
            job.complete({"shipped": 1})
        self.assertEqual(c.get(tid).result, {"shipped": 1})

    def test_workers_relay_committed_tasks(self):
        # No relay_outbox() here: a worker's maintenance thread relays what
        # commits (woken by NOTIFY, and on its period).
        c, conn = self.client, self.conn
        w = aipalq.Worker(c, maintenance_interval=1)
        self.addCleanup(w.close)
        self.assertIsNone(w.next(0))  # starts the worker's threads
        with conn.transaction():
            tid = c.enqueue_tx(conn, "tx", {"by": "worker"})
        job = w.next(15)
        self.assertIsNotNone(job, "the committed task was not dispatched")
        with job:
            self.assertEqual(job.id, tid)
            job.complete()
        self.assertEqual(c.get(tid).state, aipalq.State.COMPLETED)

    def test_rollback_leaves_nothing(self):
        c, conn = self.client, self.conn
        with self.assertRaises(RuntimeError):
            with conn.transaction():
                conn.execute(f"INSERT INTO {self.orders} VALUES (2)")
                gone = c.enqueue_tx(conn, "tx", {"order": 2}, idempotency_key="k2")
                raise RuntimeError("the order failed")
        conn.begin()
        gone2 = c.enqueue_tx(conn, "tx", {"order": 3})
        conn.rollback()
        self.assertEqual(conn.transaction_status, "idle")
        for tid in (gone, gone2):
            self.assertRaises(aipalq.NotFound, c.get, tid)
        self.assertEqual(self.orders_count(), 0)
        self.assertEqual(c.relay_outbox(), 0)
        self.assertEqual(c.list(type="tx").total, 0)
        self.assertEqual(c.queue_depth("txq").total, 0)
        # The idempotency key of a task that never existed is free.
        self.assertTrue(c.enqueue("tx", {}, idempotency_key="k2").created)

    def test_without_a_transaction_it_commits_by_itself(self):
        c, conn = self.client, self.conn
        self.assertEqual(conn.transaction_status, "idle")
        tid = c.enqueue_tx(conn, "tx", {"alone": True})
        self.assertEqual(conn.transaction_status, "idle")
        self.assertEqual(c.get(tid).state, aipalq.State.PENDING)
        self.assertEqual(c.relay_outbox(), 1)

    def test_batch_commit_and_rollback(self):
        c, conn = self.client, self.conn
        with conn.transaction():
            ids = c.enqueue_many_tx(conn, [("tx", {"n": 0}), {"type": "tx", "params": {"n": 1}, "priority": 9},
                                           {"type": "tx", "idempotency_key": "b"},
                                           {"type": "tx", "idempotency_key": "b"}], queue="txb")
            self.assertEqual(c.list(type="tx").total, 0)
        self.assertEqual(len(ids), 4)
        self.assertEqual(ids[2], ids[3])
        self.assertEqual([i.created for i in ids], [True, True, True, False])
        self.assertEqual([c.get(i).state for i in ids[:3]], [aipalq.State.PENDING] * 3)
        self.assertEqual((c.get(ids[1]).priority, c.get(ids[0]).queue), (9, "txb"))
        self.assertEqual(c.relay_outbox(max=2), 2)
        self.assertEqual(c.relay_outbox(), 1)
        self.assertEqual(c.queue_depth("txb").ready, 3)
        self.assertEqual(c.enqueue_many_tx(conn, []), [])
        with self.assertRaises(ZeroDivisionError):
            with conn.transaction():
                rolled = c.enqueue_many_tx(conn, (("tx", {"n": i}) for i in range(50)))
                1 / 0
        self.assertEqual(len(rolled), 50)
        self.assertEqual(c.list(type="tx").total, 3)
        self.assertEqual(c.relay_outbox(), 0)

    def test_errors(self):
        c, conn = self.client, self.conn
        conn.begin()
        with self.assertRaises(aipalq.UnknownTaskType) as cm:
            c.enqueue_tx(conn, "nosuchtype", {})
        self.assertIn("nosuchtype", str(cm.exception))
        with self.assertRaises(aipalq.NotAnObject) as cm:
            c.enqueue_many_tx(conn, [("tx", {"ok": 1}), ("tx", [1])])
        self.assertIn("1", str(cm.exception))
        with self.assertRaises(aipalq.InvalidPriority):
            c.enqueue_tx(conn, "tx", {}, priority=11)
        conn.rollback()
        # A transaction that a failed statement aborted: the library's error
        # carries PostgreSQL's message.
        conn.begin()
        with self.assertRaises(aipalq.DatabaseError):
            conn.execute("SELECT * FROM no_such_table")
        self.assertEqual(conn.transaction_status, "inerror")
        with self.assertRaises(aipalq.DatabaseError) as cm:
            c.enqueue_tx(conn, "tx", {})
        self.assertIn("aborted", str(cm.exception))
        conn.rollback()
        self.assertEqual(c.list(type="tx").total, 0)
        # Connections the library or the bindings refuse.
        for call in (lambda: c.enqueue_tx(0, "tx", {}), lambda: c.enqueue_many_tx(0, [("tx", {})])):
            with self.assertRaises(aipalq.InvalidArgument) as cm:
                call()
            self.assertEqual(str(cm.exception), "conn must not be NULL")
        for bad in ("postgresql://", None, True, object()):
            with self.assertRaises(TypeError):
                c.enqueue_tx(bad, "tx", {})
        with self.assertRaises(TypeError):
            c.enqueue_tx(conn, "tx", {}, colour="red")
        with self.assertRaises(TypeError):
            c.enqueue_many_tx(conn, [("tx", {})], colour="red")
        closed = aipalq.PgConnection()
        ptr = closed.pgconn_ptr
        self.assertIsInstance(ptr, int)
        closed.close()
        closed.close()
        with self.assertRaises(aipalq.Misuse):
            c.enqueue_tx(closed, "tx", {})
        with self.assertRaises(aipalq.Misuse):
            closed.execute("SELECT 1")
        c.close()
        with self.assertRaises(aipalq.Misuse):
            c.enqueue_tx(conn, "tx", {})

    def test_pg_connection(self):
        conn = self.conn
        self.assertEqual(conn.execute("SELECT 1, NULL::text, $1::int + 1, $2::bool, $3", [41, True, None]),
                         [("1", None, "42", "t", None)])
        self.assertEqual(conn.execute("SELECT 1; SELECT 2"), [("2",)])
        self.assertEqual(conn.execute("SET application_name = 'x'"), [])
        with self.assertRaises(aipalq.DatabaseError) as cm:
            conn.execute("SELEC 1")
        self.assertIn("syntax error", str(cm.exception))
        self.assertIn("idle", repr(conn))
        with self.assertRaises(aipalq.DatabaseError) as cm:
            aipalq.PgConnection("postgresql://aipalq@127.0.0.1:1/aipalq?connect_timeout=2")
        self.assertIn("127.0.0.1", str(cm.exception))
        url = os.environ["AIPALQ_DATABASE_URL"]
        with aipalq.PgConnection(url) as other:
            self.assertEqual(other.execute("SELECT current_database()"), conn.execute("SELECT current_database()"))
        self.assertTrue(other.closed)


PSYCOPG2_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import psycopg2
    import aipalq

    out = {}
    c = aipalq.Client(namespace=sys.argv[1])
    c.define_type("tx", "txq")
    conn = psycopg2.connect(os.environ["AIPALQ_DATABASE_URL"])
    # The first statement of psycopg2's transaction: the bindings let psycopg2
    # open it, so that its rollback() and commit() decide.
    rolled = c.enqueue_tx(conn, "tx", {"n": 1})
    out["status_in_tx"] = conn.info.transaction_status
    conn.rollback()
    try:
        c.get(rolled)
        out["rolled_back"] = False
    except aipalq.NotFound:
        out["rolled_back"] = True
    cur = conn.cursor()
    cur.execute("SELECT 1")
    kept = c.enqueue_tx(conn, "tx", {"n": 2})
    many = c.enqueue_many_tx(conn, [("tx", {"n": 3}), ("tx", {"n": 4})])
    out["before_commit"] = [c.list(type="tx").total, c.relay_outbox()]
    conn.commit()
    out["after_commit"] = [c.get(i).state.value for i in [kept] + many]
    out["relayed"] = c.relay_outbox()
    conn.autocommit = True
    alone = c.enqueue_tx(conn, "tx", {"n": 5})
    out["autocommit"] = c.get(alone).state.value
    conn.autocommit = False
    conn.close()
    try:
        c.enqueue_tx(conn, "tx", {})
    except aipalq.Misuse as e:
        out["closed"] = str(e)
    print(json.dumps(out))
    """
)


def python_with_psycopg2():
    """An interpreter that can import psycopg2 (this one, or the system's,
    which has Debian's python3-psycopg2), or None."""
    for exe in dict.fromkeys([sys.executable, "/usr/bin/python3", shutil.which("python3")]):
        if exe and os.path.exists(exe):
            r = subprocess.run([exe, "-c", "import psycopg2"], capture_output=True, timeout=60)
            if r.returncode == 0:
                return exe
    return None


class Psycopg2(support.ServiceTest):
    def test_enqueue_tx_with_a_psycopg2_connection(self):
        exe = python_with_psycopg2()
        if exe is None:
            self.skipTest("psycopg2 is not installed (Debian: python3-psycopg2)")
        env = dict(os.environ, PYTHONPATH=str(support.REPO / "bindings" / "python"))
        r = subprocess.run([exe, "-c", PSYCOPG2_SCRIPT, self.ns], env=env, capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout.strip().splitlines()[-1])
        self.assertEqual(out["status_in_tx"], 2)  # TRANSACTION_STATUS_INTRANS
        self.assertTrue(out["rolled_back"])
        self.assertEqual(out["before_commit"], [0, 0])
        self.assertEqual(out["after_commit"], ["pending"] * 3)
        self.assertEqual(out["relayed"], 3)
        self.assertEqual(out["autocommit"], "pending")
        self.assertEqual(out["closed"], "the psycopg2 connection is closed")
        self.assertEqual(self.client.list(type="tx").total, 4)


class SynchronousCommit(support.ServiceTest):
    def test_setting_reaches_the_connection(self):
        # A trigger records the setting in force in the session that inserts
        # each task: the client's own connection.
        url = support.create_db("sync")
        self.addCleanup(support.drop_db, url)
        with aipalq.Client(None, url, namespace=self.ns) as admin:
            admin.migrate()
        support.sql(
            url,
            "CREATE TABLE sync_seen (id uuid, setting text)",
            "CREATE FUNCTION sync_seen() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "INSERT INTO sync_seen VALUES (NEW.id, current_setting('synchronous_commit')); RETURN NEW; END $$",
            "CREATE TRIGGER sync_seen AFTER INSERT ON aipalq_tasks FOR EACH ROW EXECUTE FUNCTION sync_seen()",
        )

        def seen(c: aipalq.Client) -> str:
            tid = c.enqueue("s", {})
            with aipalq.PgConnection(url) as conn:
                return conn.execute("SELECT setting FROM sync_seen WHERE id = $1", [tid])[0][0]

        types = [{"name": "s", "queue": "sq"}]
        with aipalq.Client(None, url, namespace=self.ns, types=types) as c:
            self.assertEqual(seen(c), "on")  # the default
        with aipalq.Client(None, url, namespace=self.ns, types=types, synchronous_commit=False) as c:
            self.assertEqual(seen(c), "off")
            c.set_synchronous_commit(True)  # applies from the next connection: the next call's
            self.assertEqual(seen(c), "on")
            c.set_synchronous_commit(False)
            self.assertEqual(seen(c), "off")
            self.assertEqual(len(c.enqueue_many([("s", {})] * 3)), 3)
            self.assertTrue(c.ping())
            with self.assertRaises(TypeError):
                c.set_synchronous_commit(1)
        with self.assertRaises(aipalq.Misuse):
            c.set_synchronous_commit(True)


if __name__ == "__main__":
    unittest.main()
