"""The step API: Worker.next() and StepJob (aipalq_worker_next,
aipalq_job_complete / _fail / _release / _free): outcomes recorded in
PostgreSQL, retries per max_retries, release and taking again, timeouts on an
empty queue, the context manager, freeing exactly once, and the library's
errors."""

from __future__ import annotations

import gc
import threading
import time
import unittest
from datetime import timedelta

import support
import aipalq


class Steps(support.ServiceTest):
    def setUp(self):
        super().setUp()
        self.client.define_types([
            {"name": "st", "queue": "stq", "priority": 7, "max_retries": 1, "backoff_base_ms": 200,
             "backoff_cap_ms": 500, "backoff_jitter_percent": 0},
        ])

    def make_worker(self, **kw) -> aipalq.Worker:
        kw.setdefault("maintenance_interval", 0)
        w = aipalq.Worker(self.client, **kw)
        self.addCleanup(w.close)
        return w

    def take(self, w: aipalq.Worker, tid: str) -> aipalq.StepJob:
        job = w.next(timeout=10)
        self.assertIsNotNone(job, "no task came")
        self.addCleanup(job.close)
        self.assertEqual(job.id, tid)
        return job

    def test_complete(self):
        c = self.client
        tid = c.enqueue("st", {"a": [1, "é"]}, user_id="user-9")
        w = self.make_worker()
        job = self.take(w, tid)
        self.assertIsInstance(job, aipalq.StepJob)
        self.assertIsInstance(job, aipalq.Job)
        self.assertEqual((job.type, job.queue, job.priority, job.attempt, job.max_retries, job.user_id),
                         ("st", "stq", 7, 1, 1, "user-9"))
        self.assertEqual(job.params, {"a": [1, "é"]})
        self.assertGreater(job.token, 0)
        self.assertFalse(job.ended)
        self.assertFalse(job.should_stop())
        self.assertEqual(c.queue_depth("stq").leased, 1)
        support.wait_until(lambda: c.get(tid).state == aipalq.State.RUNNING, what="the running record")
        job.complete({"x": 1, "text": "ünï"})
        self.assertTrue(job.ended)
        # complete returns once PostgreSQL has the outcome.
        t = c.get(tid)
        self.assertEqual(t.state, aipalq.State.COMPLETED)
        self.assertEqual(t.result, {"x": 1, "text": "ünï"})
        self.assertEqual(t.attempts, 1)
        self.assertEqual(t.worker_id, w.id)
        self.assertEqual(c.queue_depth("stq").total, 0)
        self.assertEqual(w.counts().completed, 1)
        # Ending it again is illegal, whatever the way, with the library's message.
        for end in (job.complete, job.release, lambda: job.fail("no")):
            with self.assertRaises(aipalq.IllegalTransition) as cm:
                end()
            self.assertEqual(str(cm.exception), "the job has already ended")
        job.close()
        job.close()  # idempotent
        self.assertTrue(job.closed)
        with self.assertRaises(aipalq.Misuse):
            job.complete()
        with self.assertRaises(aipalq.Misuse):
            job.progress(10)
        self.assertIsNone(w.next(0))

    def test_null_and_raw_results(self):
        c = self.client
        a, b = c.enqueue("st", {}), c.enqueue("st", {})
        w = self.make_worker()
        self.take(w, a).complete()
        self.take(w, b).complete(b'[1, {"raw": true}]')
        self.assertIsNone(c.get(a).result)
        self.assertEqual(c.get(a).state, aipalq.State.COMPLETED)
        self.assertEqual(c.get(b).result, [1, {"raw": True}])

    def test_fail_retries_then_fails(self):
        c = self.client
        tid = c.enqueue("st", {})
        w = self.make_worker()
        job = self.take(w, tid)
        job.fail("m1", "d1")
        t = c.get(tid)
        self.assertEqual((t.state, t.attempts, t.error_message, t.error_detail),
                         (aipalq.State.RETRYING, 1, "m1", "d1"))
        self.assertIsNotNone(t.run_at)
        self.assertEqual(c.queue_depth("stq").scheduled, 1)
        # next waits for the backoff (200 ms), not for its whole timeout.
        failed_at = time.monotonic()
        job = self.take(w, tid)
        self.assertLess(time.monotonic() - failed_at, 5)
        self.assertEqual(job.attempt, 2)
        self.assertTrue(job.is_last_attempt)
        job.fail("m2", "d2")  # out of retries (max_retries 1): failed
        t = c.get(tid)
        self.assertEqual((t.state, t.attempts, t.error_message, t.error_detail),
                         (aipalq.State.FAILED, 2, "m2", "d2"))
        self.assertEqual(c.queue_depth("stq").total, 0)
        # Not retryable: failed at once; a task's own max_retries counts too.
        for tid, kw, fail_kw in ((c.enqueue("st", {}), {}, {"retryable": False}),
                                 (c.enqueue("st", {}, max_retries=0), {}, {})):
            self.take(w, tid).fail(**fail_kw)
            t = c.get(tid)
            self.assertEqual((t.state, t.attempts), (aipalq.State.FAILED, 1))
            self.assertTrue(t.error_message)  # the library's default message
        counts = w.counts()
        self.assertEqual((counts.failed, counts.retried), (3, 1))

    def test_release_and_take_again(self):
        c = self.client
        tid = c.enqueue("st", {"n": 1})
        w = self.make_worker()
        first = self.take(w, tid)
        first.release()
        self.assertTrue(first.ended)
        with self.assertRaises(aipalq.IllegalTransition):
            first.release()
        t = c.get(tid)
        self.assertEqual((t.state, t.attempts), (aipalq.State.PENDING, 0))
        self.assertEqual(c.queue_depth("stq").ready, 1)
        again = self.take(w, tid)
        self.assertEqual(again.attempt, 1)  # a release does not count the attempt
        self.assertGreater(again.token, first.token)
        again.complete({"second": True})
        self.assertEqual(c.get(tid).result, {"second": True})

    def test_next_timeout_on_empty_queue(self):
        w = self.make_worker()
        self.assertIsNone(w.idle_seconds())  # no C worker yet
        t0 = time.monotonic()
        self.assertIsNone(w.next())
        self.assertLess(w.idle_seconds(), 5)
        self.assertIsNone(w.next(0))
        # Neither call waited (the first also connected: slow under ASan).
        self.assertLess(time.monotonic() - t0, 2.5)
        for timeout, secs in ((0.5, 0.5), (timedelta(milliseconds=300), 0.3), (1.2, 1.2)):
            t0 = time.monotonic()
            self.assertIsNone(w.next(timeout))
            took = time.monotonic() - t0
            self.assertGreaterEqual(took, secs - 0.05, timeout)
            self.assertLess(took, secs + 1.0, timeout)
        # A task enqueued while next waits (without end) wakes it at once.
        ids: list = []
        timer = threading.Timer(0.3, lambda: ids.append(self.client.enqueue("st", {})))
        timer.start()
        t0 = time.monotonic()
        job = w.next(None)
        timer.join()
        self.assertLess(time.monotonic() - t0, 3.0)
        self.assertEqual(job.id, ids[0])
        job.complete()
        job.close()

    def test_context_manager(self):
        c = self.client
        w = self.make_worker()
        # Ended in the block: freed at its end.
        tid = c.enqueue("st", {})
        with w.next(10) as job:
            job.complete({"in": "block"})
        self.assertTrue(job.closed)
        self.assertEqual(c.get(tid).result, {"in": "block"})
        # An exception fails the job (retried), and propagates.
        tid = c.enqueue("st", {})
        with self.assertRaisesRegex(ValueError, "boom"):
            with w.next(10) as job:
                raise ValueError("boom")
        self.assertTrue(job.closed)
        t = c.get(tid)
        self.assertEqual((t.state, t.error_message), (aipalq.State.RETRYING, "ValueError: boom"))
        self.assertIn("Traceback", t.error_detail)
        self.assertIn('raise ValueError("boom")', t.error_detail)
        # A PermanentError fails it without retry.
        with self.assertRaises(aipalq.PermanentError):
            with w.next(10) as job:  # the same task, after its backoff
                self.assertEqual((job.id, job.attempt), (tid, 2))
                raise aipalq.PermanentError("for good")
        self.assertEqual(c.get(tid).state, aipalq.State.FAILED)
        # Left unended, or interrupted: handed back, the attempt not counted.
        tid = c.enqueue("st", {})
        with w.next(10) as job:
            pass
        with self.assertRaises(KeyboardInterrupt):
            with w.next(10) as job:
                raise KeyboardInterrupt
        t = c.get(tid)
        self.assertEqual((t.state, t.attempts), (aipalq.State.PENDING, 0))
        # An exception after the job was ended leaves its outcome alone.
        with self.assertRaises(RuntimeError):
            with w.next(10) as job:
                job.complete({"done": 1})
                raise RuntimeError("after the end")
        self.assertEqual(c.get(tid).state, aipalq.State.COMPLETED)

    def test_freed_once_by_gc_and_by_the_worker(self):
        c = self.client
        w = self.make_worker()
        tid = c.enqueue("st", {})
        job = w.next(10)
        fin = job._finalizer
        self.assertIn(job._ptr, w._jobs)
        del job
        gc.collect()
        self.assertFalse(fin.alive)
        self.assertEqual(w._jobs, {})
        t = c.get(tid)
        self.assertEqual((t.state, t.attempts), (aipalq.State.PENDING, 0))  # handed back
        # Closing the worker hands back and frees the jobs still held.
        held = w.next(10)
        self.assertEqual(held.id, tid)
        w.close()
        self.assertTrue(held.closed)
        with self.assertRaises(aipalq.Misuse):
            held.complete()
        held.close()
        w.close()
        self.assertEqual(c.get(tid).state, aipalq.State.PENDING)
        self.assertEqual(c.queue_depth("stq").ready, 1)

    def test_ended_on_another_thread(self):
        c = self.client
        ids = [c.enqueue("st", {"n": i}) for i in range(6)]
        w = self.make_worker()
        jobs = [w.next(10) for _ in ids]
        errors = []

        def end(job):
            try:
                with job:
                    job.progress(50, "half")
                    job.complete({"n": job.params["n"]})
            except Exception as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=end, args=(j,)) for j in jobs]
        for t in threads:
            t.start()
        self.assertIsNone(w.next(0.2))  # next() meanwhile, on this thread
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual([c.get(i).result for i in ids], [{"n": i} for i in range(6)])
        # close() makes a next() that waits without end return None.
        out = []
        waiter = threading.Thread(target=lambda: out.append(w.next(None)))
        waiter.start()
        time.sleep(0.3)
        t0 = time.monotonic()
        w.close()
        waiter.join(10)
        self.assertFalse(waiter.is_alive())
        self.assertEqual(out, [None])
        self.assertLess(time.monotonic() - t0, 5)

    def test_bad_arguments(self):
        c = self.client
        w = self.make_worker()
        tid = c.enqueue("st", {})
        job = self.take(w, tid)
        # Refused results leave the job unended, with the library's message.
        with self.assertRaises(aipalq.BadJSON) as cm:
            job.complete(b"{bad")
        self.assertIn("not valid JSON", str(cm.exception))
        with self.assertRaises(aipalq.TooBig) as cm:
            job.complete({"x": "y" * aipalq.MAX_RESULT_BYTES})
        self.assertIn("limit", str(cm.exception))
        with self.assertRaises(aipalq.BadJSON):
            job.complete({"x": object()})
        self.assertFalse(job.ended)
        job.complete({"ok": True})
        self.assertEqual(c.get(tid).result, {"ok": True})
        with self.assertRaises(aipalq.InvalidArgument):
            w.next(-1)
        with self.assertRaises(TypeError):
            w.next("1")
        # The loop and the steps do not mix.
        with self.assertRaises(aipalq.Misuse):
            w.start()
        loop = aipalq.Worker(self.client, maintenance_interval=0, concurrency=1)
        self.addCleanup(loop.close)
        loop.register("st", lambda job: None)
        loop.start()
        self.assertGreaterEqual(loop.idle_seconds(), 0)
        with self.assertRaises(aipalq.Misuse):
            loop.next(0)
        loop.stop()
        loop.join()
        # The library's errors from next(), with its messages.
        with support.client() as empty:
            with aipalq.Worker(empty) as nothing:
                with self.assertRaises(aipalq.InvalidArgument) as cm:
                    nothing.next()
                self.assertIn("no queue to consume", str(cm.exception))
        with aipalq.Worker(c, queues="bad queue!") as bad:
            with self.assertRaises(aipalq.InvalidQueue) as cm:
                bad.next()
            self.assertIn("bad queue!", str(cm.exception))


if __name__ == "__main__":
    unittest.main()
