"""Python producer -> the C example worker (build/examples/worker: echo, sleep
and fail on queue "default"): results, errors, retries, cancel.

The C worker always uses the default namespace ("aipalq"), so it gets a Redis
database of its own (db 9 of the test Redis) besides the suite's scratch
PostgreSQL database: nothing else sees its keys.
"""

from __future__ import annotations

import os
import subprocess
import time
import unittest

import support
import aipalq

REDIS_DB = 9


class CWorker(support.ServiceTest):
    @classmethod
    def setUpClass(cls):
        support.scratch_db()
        cls.redis_url = support.redis_url_with_db(os.environ["AIPALQ_REDIS_URL"], REDIS_DB)

    def setUp(self):
        super().setUp()
        # The client speaks to the C worker: same Redis database, default namespace.
        self.c = aipalq.Client(self.redis_url, namespace="aipalq")
        self.addCleanup(self.c.close)
        self.c.define_types([
            {"name": "echo", "queue": "default"},
            {"name": "sleep", "queue": "default"},
            {"name": "fail", "queue": "default", "max_retries": 2, "backoff_base_ms": 200,
             "backoff_cap_ms": 1000},
        ])
        self.worker = self.spawn([str(support.example("worker")), "threads", "4"],
                                 env={"AIPALQ_REDIS_URL": self.redis_url},
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        support.wait_until(lambda: any(w["alive"] for w in self.c.workers()) or self.worker.poll() is not None,
                           what="the C worker to register")
        self.assertIsNone(self.worker.poll(), "the C worker exited")

    def stop_worker(self) -> str:
        self.worker.terminate()
        _, err = self.worker.communicate(timeout=60)
        self.assertEqual(self.worker.returncode, 0, err)
        return err.decode()

    def test_echo_results(self):
        params = [{"n": i, "text": "ünïcode", "nested": {"a": [1, None, True]}} for i in range(20)]
        ids = [self.c.enqueue("echo", p) for p in params]
        ids += self.c.enqueue_many(("echo", {"batch": i}) for i in range(20))
        for i, tid in enumerate(ids):
            t = self.c.wait(tid, timeout=30)
            self.assertEqual(t.state, aipalq.State.COMPLETED, t)
            self.assertTrue(t.succeeded)
            expected = params[i] if i < 20 else {"batch": i - 20}
            self.assertEqual(t.result, expected)
            self.assertEqual(t.attempts, 1)
            self.assertIsNotNone(t.worker_id)
            self.assertIsNotNone(t.completed_at)
            self.assertGreaterEqual(t.duration, 0)
        self.assertIn("40 completed", self.stop_worker())

    def test_errors_and_retries(self):
        retryable = self.c.enqueue("fail", {"retryable": True})
        final = self.c.enqueue("fail", {"retryable": False})
        t = self.c.wait(final, timeout=30)
        self.assertEqual(t.state, aipalq.State.FAILED)
        self.assertEqual(t.attempts, 1)
        self.assertEqual(t.error_message, "failed on purpose")
        self.assertEqual(t.error_detail, '{"retryable":false}')
        t = self.c.wait(retryable, timeout=60)
        self.assertEqual(t.state, aipalq.State.FAILED)
        self.assertEqual(t.attempts, 3)  # max_retries 2: three runs
        self.assertIn(retryable, [x.id for x in self.c.list_failed(limit=100)])
        # A failed task can be retried, with a fresh budget.
        self.c.retry(final)
        t = self.c.wait(final, timeout=30)
        self.assertEqual(t.state, aipalq.State.FAILED)
        self.assertEqual(t.attempts, 1)
        with self.assertRaises(aipalq.IllegalTransition):
            self.c.cancel(final)

    def test_cancel_running_task(self):
        tid = self.c.enqueue("sleep", {"ms": 20000})
        support.wait_until(lambda: self.c.get(tid).state == "running", what="the sleep task to start")
        self.assertEqual(self.c.cancel(tid), aipalq.State.RUNNING)
        t = self.c.wait(tid, timeout=30)
        self.assertEqual(t.state, aipalq.State.CANCELLED)
        self.assertTrue(t.cancel_requested)
        self.assertLess(t.duration, 15)
        with self.assertRaises(aipalq.IllegalTransition):
            self.c.cancel(tid)

    def test_cancel_waiting_task(self):
        tid = self.c.enqueue("echo", {"later": True}, delay=3600)
        self.assertEqual(self.c.cancel(tid), aipalq.State.CANCELLED)
        self.assertEqual(self.c.get(tid).state, aipalq.State.CANCELLED)
        self.c.retry(tid)  # now pending, no delay: the worker runs it
        t = self.c.wait(tid, timeout=30)
        self.assertEqual(t.result, {"later": True})

    def test_graceful_stop_finishes_running_task(self):
        tid = self.c.enqueue("sleep", {"ms": 1500})
        support.wait_until(lambda: self.c.get(tid).state == "running", what="the sleep task to start")
        self.stop_worker()
        t = self.c.get(tid)
        self.assertEqual(t.state, aipalq.State.COMPLETED)
        self.assertEqual(t.result, {"slept": True})


if __name__ == "__main__":
    unittest.main()
