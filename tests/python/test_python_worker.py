"""C producer (build/examples/producer) and Python producer -> Python worker:
results, errors with tracebacks, retries, permanent errors, cancel, progress,
signals and graceful shutdown, and 2,000 tasks drained by four handler
threads, each completed exactly once."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import unittest

import support
import aipalq


def produce_in_c(ns: str, task_type: str, n: int, queue: str = "default", params: str = "") -> list:
    """Enqueues n tasks with the C producer; returns their ids."""
    args = [str(support.example("producer")), "-n", ns, "-q", queue]
    if params:
        args += ["-p", params]
    r = subprocess.run(args + [task_type, str(n)], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise AssertionError(f"producer failed: {r.stderr}")
    ids = r.stdout.split()
    assert len(ids) == n, r.stdout
    return ids


class PythonWorker(support.ServiceTest):
    def make_worker(self, **kw) -> aipalq.Worker:
        kw.setdefault("concurrency", 2)
        kw.setdefault("maintenance_interval", 0)
        kw.setdefault("lease", 3)
        w = aipalq.Worker(self.client, **kw)
        self.addCleanup(w.close)
        return w

    def test_from_c_producer(self):
        w = self.make_worker()
        seen = []

        @w.task("pyecho", queue="pq")
        def pyecho(job: aipalq.Job):
            seen.append(job.id)
            self.assertIsInstance(job.token, int)
            return {"n": job.params["n"], "id": job.id, "type": job.type, "queue": job.queue,
                    "attempt": job.attempt, "priority": job.priority}

        ids = produce_in_c(self.ns, "pyecho", 10, queue="pq")
        w.start()
        for i, tid in enumerate(ids):
            t = self.client.wait(tid, timeout=30)
            self.assertEqual(t.state, aipalq.State.COMPLETED)
            self.assertEqual(t.result, {"n": i, "id": tid, "type": "pyecho", "queue": "pq", "attempt": 1,
                                        "priority": 5})
            self.assertEqual(t.worker_id, w.id)
        w.stop()
        self.assertTrue(w.join(30))
        self.assertFalse(w.running)
        self.assertEqual(sorted(seen), sorted(ids))
        self.assertEqual(w.counts().completed, 10)

    def test_outcomes(self):
        w = self.make_worker()

        class Unfixable(Exception):
            pass

        @w.task("outcome", queue="oq", max_retries=2, backoff_base=0.05, backoff_cap=0.1,
                permanent_errors=[Unfixable])
        def outcome(job):
            kind = job.params["kind"]
            if kind == "none":
                return None
            if kind == "list":
                return [1, "two", {"three": 3.5}]
            if kind == "raise":
                raise KeyError(f"missing thing on attempt {job.attempt}")
            if kind == "flaky":
                if job.attempt < 2:
                    raise ConnectionResetError("try again")
                return {"ok_on": job.attempt}
            if kind == "permanent":
                raise aipalq.PermanentError("bad input")
            if kind == "unfixable":
                raise Unfixable("listed as permanent")
            if kind == "unserialisable":
                return {"when": object()}
            if kind == "too_big":
                return "x" * (aipalq.MAX_RESULT_BYTES + 10)
            if kind == "exit":
                raise SystemExit(3)
            raise AssertionError(kind)

        kinds = ["none", "list", "raise", "flaky", "permanent", "unfixable", "unserialisable", "too_big", "exit"]
        ids = {k: self.client.enqueue("outcome", {"kind": k}) for k in kinds}
        w.start()
        t = {k: self.client.wait(i, timeout=30) for k, i in ids.items()}

        self.assertEqual((t["none"].state, t["none"].result), ("completed", None))
        self.assertEqual(t["list"].result, [1, "two", {"three": 3.5}])

        r = t["raise"]
        self.assertEqual((r.state, r.attempts), ("failed", 3))
        self.assertEqual(r.error_message, "KeyError: 'missing thing on attempt 3'")
        self.assertIn("Traceback (most recent call last)", r.error_detail)
        self.assertIn("test_python_worker.py", r.error_detail)
        self.assertIn('raise KeyError(f"missing thing on attempt {job.attempt}")', r.error_detail)

        self.assertEqual((t["flaky"].state, t["flaky"].attempts, t["flaky"].result), ("completed", 2, {"ok_on": 2}))
        self.assertIsNone(t["flaky"].error_message)

        for k, msg in (("permanent", "PermanentError: bad input"), ("unfixable", "Unfixable: listed as permanent")):
            self.assertEqual((t[k].state, t[k].attempts, t[k].error_message), ("failed", 1, msg), k)
            self.assertIn("Traceback", t[k].error_detail)

        u = t["unserialisable"]
        self.assertEqual((u.state, u.attempts), ("failed", 1))
        self.assertIn("not JSON-serialisable", u.error_message)
        b = t["too_big"]
        self.assertEqual((b.state, b.attempts), ("failed", 1))
        self.assertIn("result refused", b.error_message)
        self.assertEqual((t["exit"].state, t["exit"].attempts), ("failed", 3))
        self.assertEqual(t["exit"].error_message, "SystemExit: 3")

        w.stop()
        w.join()
        counts = w.counts()
        self.assertEqual(counts.completed, 3)
        self.assertEqual(counts.failed, 6)
        self.assertEqual(counts.retried, 5)

    def test_cancel_running_python_task(self):
        w = self.make_worker()
        started = threading.Event()

        @w.task("slow", queue="sq")
        def slow(job):
            started.set()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if job.cancel_requested():
                    self.assertTrue(job.should_stop())
                    return None
                job.progress(42, "working")
                time.sleep(0.05)
            return "not cancelled"

        @w.task("slow_raise", queue="sq")
        def slow_raise(job):
            while not job.should_stop():
                time.sleep(0.05)
            raise RuntimeError("interrupted")

        tid = self.client.enqueue("slow")
        tid2 = self.client.enqueue("slow_raise")
        w.start()
        self.assertTrue(started.wait(20))
        support.wait_until(lambda: self.client.get(tid).progress == 42, what="progress to be recorded")
        self.assertEqual(self.client.get(tid).progress_message, "working")
        support.wait_until(lambda: self.client.get(tid2).state == "running", what="slow_raise to start")
        self.assertEqual(self.client.cancel(tid), aipalq.State.RUNNING)
        self.assertEqual(self.client.cancel(tid2), aipalq.State.RUNNING)
        for i in (tid, tid2):
            t = self.client.wait(i, timeout=20)
            self.assertEqual(t.state, aipalq.State.CANCELLED)
            self.assertEqual(t.attempts, 1)
        self.assertEqual(w.counts().cancelled, 2)

    def test_soft_time_limit(self):
        w = self.make_worker()

        @w.task("limited", queue="lq", soft_time_limit=1, hard_time_limit=20, max_retries=0)
        def limited(job):
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if job.soft_limit_passed():
                    return {"stopped_by": "soft limit", "should_stop": job.should_stop()}
                time.sleep(0.05)
            return {"stopped_by": "nothing"}

        tid = self.client.enqueue("limited")
        w.start()
        t = self.client.wait(tid, timeout=30)
        self.assertEqual(t.result, {"stopped_by": "soft limit", "should_stop": True})

    def test_job_is_invalid_after_its_handler(self):
        w = self.make_worker()
        kept = []

        @w.task("keep", queue="kq")
        def keep(job):
            kept.append(job)
            return job.params

        tid = self.client.enqueue("keep", {"a": 1})
        w.start()
        self.assertEqual(self.client.wait(tid, timeout=30).result, {"a": 1})
        job = kept[0]
        self.assertEqual((job.id, job.params), (tid, {"a": 1}))  # attributes stay readable
        for call in (job.should_stop, job.cancel_requested, job.soft_limit_passed, lambda: job.progress(5)):
            with self.assertRaises(aipalq.Misuse):
                call()

    def test_registration(self):
        w = self.make_worker()
        self.client.define_type("predefined", "preq", max_retries=9, priority=2)
        w.register("predefined", lambda job: None)  # keeps the definition
        w.register("routed", lambda job: None, queue="rq", max_retries=4)
        types = {t["name"]: t for t in self.client.types()}
        self.assertEqual((types["predefined"]["queue"], types["predefined"]["max_retries"],
                          types["predefined"]["priority"]), ("preq", 9, 2))
        self.assertEqual((types["routed"]["queue"], types["routed"]["max_retries"]), ("rq", 4))
        w.register("predefined", lambda job: None, max_retries=1)  # overrides one setting only
        types = {t["name"]: t for t in self.client.types()}
        self.assertEqual((types["predefined"]["queue"], types["predefined"]["max_retries"],
                          types["predefined"]["priority"]), ("preq", 1, 2))
        self.assertEqual(sorted(w.handlers), ["predefined", "routed"])
        with self.assertRaises(aipalq.InvalidQueue):
            w.register("x", lambda job: None, queue="bad queue")
        with self.assertRaises(TypeError):
            w.register("y", "not callable")

    def test_worker_errors(self):
        empty = self.make_worker()
        with self.assertRaises(aipalq.Misuse):
            empty.run(install_signal_handlers=False)
        w = self.make_worker(concurrency=5000)
        w.register("t", lambda job: None)
        with self.assertRaises(aipalq.InvalidArgument):
            w.start()
        w2 = self.make_worker(queues=["ok", "bad queue"])
        w2.register("t", lambda job: None)
        with self.assertRaises(aipalq.InvalidQueue):
            w2.start()
        w3 = self.make_worker()
        w3.register("t", lambda job: None)
        w3.start()
        with self.assertRaises(aipalq.Misuse):
            w3.start()
        with self.assertRaises(aipalq.Misuse):
            w3.register("u", lambda job: None)
        w3.stop()
        self.assertTrue(w3.join(30))
        w3.start()  # a stopped worker runs again
        w3.stop(fast=True)
        self.assertTrue(w3.join(30))

    def test_stop_before_start_applies(self):
        w = self.make_worker()
        w.register("t", lambda job: None)
        w.stop()
        t0 = time.monotonic()
        w.run(install_signal_handlers=False)
        self.assertLess(time.monotonic() - t0, 10)

    def test_run_from_a_thread_and_stop(self):
        w = self.make_worker()
        w.register("t", lambda job: job.params)
        errors = []
        th = threading.Thread(target=lambda: _catch(errors, w.run))  # not the main thread: no signals
        th.start()
        tid = self.client.enqueue("t", {"x": 1})
        self.assertEqual(self.client.wait(tid, timeout=30).result, {"x": 1})
        w.stop()
        th.join(30)
        self.assertFalse(th.is_alive())
        self.assertEqual(errors, [])

    def test_drain_2000_exactly_once_with_concurrency_4(self):
        w = self.make_worker(concurrency=4, lease=30)
        lock = threading.Lock()
        runs = collections.Counter()
        threads = set()
        active = [0, 0]  # now, max

        @w.task("drain", queue="dq", max_retries=0)
        def drain(job):
            with lock:
                runs[job.id] += 1
                threads.add(threading.get_ident())
                active[0] += 1
                active[1] = max(active[1], active[0])
            try:
                time.sleep(0.001)  # releases the GIL: handlers overlap
                return {"n": job.params["n"]}
            finally:
                with lock:
                    active[0] -= 1

        ids = produce_in_c(self.ns, "drain", 1000, queue="dq")
        ids += self.client.enqueue_many(("drain", {"n": 1000 + i}) for i in range(1000))
        self.assertEqual(len(set(ids)), 2000)
        t0 = time.monotonic()
        w.start()
        support.wait_until(lambda: w.counts().completed >= 2000 or not w.running, timeout=300,
                           what="2000 tasks to complete")
        elapsed = time.monotonic() - t0
        w.stop()
        w.join(60)
        self.assertEqual(len(runs), 2000)
        self.assertEqual(set(runs), set(ids))
        dupes = {k: v for k, v in runs.items() if v != 1}
        self.assertEqual(dupes, {}, "tasks run more than once")
        self.assertEqual(w.counts().completed, 2000)
        self.assertEqual(self.client.list(type="drain", state="completed").total, 2000)
        self.assertEqual(self.client.list(type="drain").total, 2000)
        for i in (ids[0], ids[999], ids[1000], ids[-1]):
            t = self.client.get(i)
            self.assertEqual((t.attempts, t.result["n"]), (1, t.params.get("n")))
        self.assertGreaterEqual(len(threads), 2, "handlers ran on several threads")
        self.assertGreaterEqual(active[1], 2, "handlers overlapped")
        d = self.client.queue_depth("dq")
        self.assertEqual(d.total, 0)
        print(f"\n  drained 2000 tasks in {elapsed:.1f} s, {len(threads)} handler threads, "
              f"up to {active[1]} at once", file=sys.stderr)


def _catch(errors, fn):
    try:
        fn()
    except BaseException as e:  # pragma: no cover - reported by the test
        errors.append(e)


WORKER_SCRIPT = textwrap.dedent(
    """
    import sys, time, aipalq
    client = aipalq.Client(namespace=sys.argv[1])
    worker = aipalq.Worker(client, concurrency=2, maintenance_interval=0, shutdown_timeout=float(sys.argv[2]))

    @worker.task("sig", queue="sigq", max_retries=3, backoff_base=0.1, backoff_cap=0.1)
    def sig(job):
        print("started", job.id, flush=True)
        seconds = job.params["seconds"]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if job.should_stop():
                raise RuntimeError("stopped early")
            time.sleep(0.02)
        return {"slept": seconds}

    print("ready", flush=True)
    worker.run()
    print("stopped", worker.counts().completed, flush=True)
    client.close()
    """
)


class Signals(support.ServiceTest):
    """worker.run() in the main thread of a child process, stopped by signals."""

    def start_worker(self, shutdown_timeout: float = 30.0) -> subprocess.Popen:
        env = {"PYTHONPATH": str(support.REPO / "bindings" / "python")}
        p = self.spawn([sys.executable, "-c", WORKER_SCRIPT, self.ns, str(shutdown_timeout)], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertEqual(p.stdout.readline().strip(), "ready")
        return p

    def test_sigterm_is_graceful(self):
        self.client.define_type("sig", "sigq")
        p = self.start_worker()
        tid = self.client.enqueue("sig", {"seconds": 1.5})
        line = p.stdout.readline()
        self.assertTrue(line.startswith("started"), line)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)
        self.assertIn("stopped 1", out)
        t = self.client.get(tid)
        self.assertEqual((t.state, t.result), ("completed", {"slept": 1.5}))

    def test_second_sigint_is_fast_and_loses_nothing(self):
        self.client.define_type("sig", "sigq")
        p = self.start_worker()
        tid = self.client.enqueue("sig", {"seconds": 60})
        self.assertTrue(p.stdout.readline().startswith("started"))
        p.send_signal(signal.SIGINT)
        time.sleep(0.5)
        self.assertIsNone(p.poll(), "a graceful stop waits for the running task")
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)
        self.assertIn("stopped 0", out)
        self.assertNotIn("KeyboardInterrupt", err)
        # Handed back, not failed: the attempt is not counted, and the task waits.
        t = self.client.get(tid)
        self.assertIn(t.state, (aipalq.State.PENDING, aipalq.State.RETRYING), t)
        self.assertIsNone(t.completed_at)
        # Another worker finishes it.
        self.client.cancel(tid)

    def test_shutdown_deadline_hands_back_a_slow_handler(self):
        self.client.define_type("sig", "sigq")
        p = self.start_worker(shutdown_timeout=0.5)
        tid = self.client.enqueue("sig", {"seconds": 3})
        self.assertTrue(p.stdout.readline().startswith("started"))
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)
        # run() returns once the handler has returned (Python cannot be interrupted) ...
        self.assertLess(time.monotonic() - t0, 30)
        # ... but the task was handed back at the deadline, its late result ignored.
        t = self.client.get(tid)
        self.assertNotEqual(t.state, aipalq.State.COMPLETED, t)
        self.client.cancel(tid)


if __name__ == "__main__":
    unittest.main()
