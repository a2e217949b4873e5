"""The client against real servers: enqueue, get, list, cancel, retry,
idempotency, batches, types, queues, and freeing every C object once."""

from __future__ import annotations

import threading
import unittest
from datetime import datetime, timedelta, timezone

import support
import aipalq


class ClientBasics(support.ServiceTest):
    def setUp(self):
        super().setUp()
        self.client.define_types([
            {"name": "job", "queue": "cq", "max_retries": 2},
            {"name": "urgent", "queue": "cq", "priority": 9},
        ])

    def test_ping_and_schema(self):
        h = self.client.ping()
        self.assertTrue(h)
        self.assertTrue(h.redis and h.database)
        self.assertEqual(self.client.schema_version(), support.SCHEMA_VERSION)
        self.client.migrate()  # idempotent

    def test_enqueue_and_get(self):
        c = self.client
        before = datetime.now(timezone.utc) - timedelta(seconds=5)
        tid = c.enqueue("job", {"text": "héllo ✓", "n": [1, 2, 3]}, user_id="u1")
        self.assertIsInstance(tid, str)
        self.assertTrue(tid.created)
        self.assertEqual(len(tid), 36)
        t = c.get(tid)
        self.assertIsInstance(t, aipalq.Task)
        self.assertEqual(t.id, tid)
        self.assertEqual(t.type, "job")
        self.assertEqual(t.queue, "cq")
        self.assertEqual(t.state, aipalq.State.PENDING)
        self.assertEqual(t.state, "pending")
        self.assertEqual(t.params, {"text": "héllo ✓", "n": [1, 2, 3]})
        self.assertIsNone(t.result)
        self.assertEqual(t.priority, 5)
        self.assertEqual(t.max_retries, 2)
        self.assertEqual(t.attempts, 0)
        self.assertEqual(t.user_id, "u1")
        self.assertFalse(t.is_final)
        self.assertGreater(t.created_at, before)
        self.assertEqual(t.raw["task_id"], tid)
        self.assertEqual(t.raw["status"], "pending")
        self.assertEqual(c.get(tid.upper()).id, tid)
        # A type's priority, and per-task options.
        self.assertEqual(c.get(c.enqueue("urgent")).priority, 9)
        t2 = c.get(c.enqueue("job", '{"raw": true}', priority=10, max_retries=7, queue="other"))
        self.assertEqual((t2.priority, t2.max_retries, t2.queue, t2.params), (10, 7, "other", {"raw": True}))
        self.assertEqual(c.queue_depth("other").ready, 1)

    def test_delay_and_run_at(self):
        c = self.client
        t = c.get(c.enqueue("job", {}, delay=60))
        self.assertEqual(t.state, aipalq.State.SCHEDULED)
        self.assertAlmostEqual((t.run_at - datetime.now(timezone.utc)).total_seconds(), 60, delta=10)
        at = datetime.now(timezone.utc) + timedelta(hours=1)
        t = c.get(c.enqueue("job", {}, run_at=at))
        self.assertEqual(t.state, aipalq.State.SCHEDULED)
        self.assertAlmostEqual(t.run_at.timestamp(), at.timestamp(), delta=1)
        d = c.queue_depth("cq")
        self.assertEqual((d.ready, d.scheduled, d.leased), (0, 2, 0))
        self.assertEqual(d.total, 2)
        with self.assertRaises(aipalq.InvalidArgument):
            c.enqueue("job", {}, delay=1, run_at=at)

    def test_idempotency_key(self):
        c = self.client
        a = c.enqueue("job", {"n": 1}, idempotency_key="once")
        b = c.enqueue("job", {"n": 2}, idempotency_key="once")
        self.assertEqual(a, b)
        self.assertTrue(a.created)
        self.assertFalse(b.created)
        self.assertEqual(c.get(a).idempotency_key, "once")
        c.cancel(a)  # final: the key is free again
        d = c.enqueue("job", {}, idempotency_key="once")
        self.assertNotEqual(d, a)
        self.assertTrue(d.created)

    def test_enqueue_many(self):
        c = self.client
        ids = c.enqueue_many(
            [("job", {"n": 0}), {"type": "job", "params": {"n": 1}, "priority": 8},
             {"type": "urgent", "idempotency_key": "b1"}, {"type": "urgent", "idempotency_key": "b1"}],
            queue="bq",
        )
        self.assertEqual(len(ids), 4)
        self.assertEqual(ids[2], ids[3])
        self.assertEqual([i.created for i in ids], [True, True, True, False])
        self.assertEqual(c.get(ids[1]).priority, 8)
        self.assertEqual(c.get(ids[0]).queue, "bq")
        self.assertEqual(c.enqueue_many([]), [])
        big = c.enqueue_many(("job", {"n": i}) for i in range(500))
        self.assertEqual(len(set(big)), 500)
        self.assertEqual(c.queue_depth("cq").ready, 500)
        with self.assertRaises(TypeError):
            c.enqueue_many([("job", {})], colour="red")

    def test_list(self):
        c = self.client
        c.define_type("listed", "lq")
        ids = [c.enqueue("listed", {"n": i}, user_id="lister") for i in range(5)]
        page = c.list(type="listed")
        self.assertIsInstance(page, aipalq.TaskPage)
        self.assertEqual(page.total, 5)
        self.assertEqual([t.id for t in page], ids[::-1])  # newest first
        page = c.list(type="listed", oldest_first=True, limit=2, offset=1)
        self.assertEqual([t.id for t in page], ids[1:3])
        self.assertEqual(page.total, 5)
        c.cancel(ids[0])
        self.assertEqual(c.list(type="listed", state="cancelled").total, 1)
        self.assertEqual(c.list(type="listed", state=["cancelled", aipalq.State.PENDING]).total, 5)
        self.assertEqual(c.list(queue="lq", user_id="lister", state="pending").total, 4)
        self.assertEqual(c.list(user_id="nobody-" + self.ns).total, 0)
        pending_ids = {t.id for t in c.list_pending(limit=1000)}
        self.assertTrue(set(ids[1:]) <= pending_ids)
        self.assertIsInstance(c.list_failed(), aipalq.TaskPage)

    def test_get_many(self):
        c = self.client
        a, b = c.enqueue("job", {"n": 1}), c.enqueue("urgent", {"n": 2})
        missing = "01900000-0000-7000-8000-000000000000"
        tasks = c.get_many([a, missing, b.upper(), a])
        self.assertEqual([t and t.id for t in tasks], [a, None, b, a])
        self.assertEqual([tasks[0].params, tasks[2].priority], [{"n": 1}, 9])
        self.assertIsNot(tasks[0], tasks[3])  # an id asked twice: two snapshots
        self.assertEqual(c.get_many([]), [])
        self.assertEqual(len(c.get_many(iter([a] * 1000))), 1000)
        with self.assertRaises(aipalq.BadTaskId) as cm:
            c.get_many([a, "not-a-uuid"])
        self.assertIn("ids[1]", str(cm.exception))
        with self.assertRaises(aipalq.InvalidArgument) as cm:
            c.get_many([a] * 1001)
        self.assertIn("1..1000", str(cm.exception))

    def test_list_total_max_age(self):
        c = self.client
        c.define_type("counted", "lq")
        for i in range(3):
            c.enqueue("counted", {"n": i})
        before = datetime.now(timezone.utc) - timedelta(seconds=5)
        page = c.list(type="counted")
        self.assertEqual(page.total, 3)
        self.assertGreater(page.total_at, before)
        c.set_list_total_max_age(60)
        first = c.list(type="counted", limit=1)
        c.enqueue("counted", {"n": 3})
        again = c.list(type="counted", limit=2, offset=1)  # another page, same filters
        self.assertEqual((again.total, again.total_at), (3, first.total_at))  # the count reused
        self.assertEqual(len(again), 2)
        self.assertEqual(c.list(type="counted", state="pending").total, 4)  # other filters: counted
        c.set_list_total_max_age(timedelta(0))
        self.assertEqual(c.list(type="counted").total, 4)
        with self.assertRaises(aipalq.InvalidArgument) as cm:
            c.set_list_total_max_age(-1)
        self.assertIn("max age", str(cm.exception))

    def test_cancel_and_retry(self):
        c = self.client
        tid = c.enqueue("job", {})
        self.assertEqual(c.cancel(tid), aipalq.State.CANCELLED)
        t = c.get(tid)
        self.assertEqual(t.state, "cancelled")
        self.assertTrue(t.is_final)
        self.assertEqual(c.queue_depth("cq").ready, 0)
        c.retry(tid)
        t = c.get(tid)
        self.assertEqual(t.state, aipalq.State.PENDING)
        self.assertEqual(t.attempts, 0)
        self.assertEqual(c.queue_depth("cq").ready, 1)

    def test_types_and_counts(self):
        c = self.client
        c.define_type("limits", "tq", max_retries=0, backoff_base=0.5, backoff_cap=timedelta(seconds=2),
                      soft_time_limit=10, hard_time_limit=20, result_ttl=60, priority=3)
        t = {x["name"]: x for x in c.types()}["limits"]
        self.assertEqual(t, {"name": "limits", "queue": "tq", "priority": 3, "max_retries": 0,
                             "backoff_base_ms": 500, "backoff_cap_ms": 2000, "backoff_jitter_percent": 10,
                             "soft_time_limit_ms": 10000, "hard_time_limit_ms": 20000, "result_ttl_ms": 60000})
        with aipalq.Client(namespace=self.ns, types=c.types()) as other:
            self.assertEqual(other.types(), c.types())
        c.enqueue("limits", {})
        self.assertGreaterEqual(c.state_counts()["tq"]["pending"], 1)
        self.assertEqual(c.workers(), [])

    def test_client_shared_by_threads(self):
        c = self.client
        ids, errors = [], []

        def produce():
            try:
                for i in range(50):
                    ids.append(c.enqueue("job", {"i": i}))
                    c.get(ids[-1])
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=produce) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(len(set(ids)), 200)
        self.assertEqual(c.queue_depth("cq").ready, 200)


if __name__ == "__main__":
    unittest.main()
