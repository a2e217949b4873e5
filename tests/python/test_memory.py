"""Every C object the bindings obtain is freed exactly once: by close()
(idempotent), by a context manager, or when the Python object is collected.

"At most once" is checked by running the whole suite against the ASan build
(scripts/test.sh's sanitizer pass; a double free aborts the process). "At
least once" is checked there too, by test_no_leaks_under_leak_sanitizer: a
workload runs in a child interpreter with LeakSanitizer on, and every leak
report whose allocation stack passes through libaipalq fails the test (the
interpreter's own leaks at exit are ignored). In a plain build, a process-size
check stands in for it.
"""

from __future__ import annotations

import gc
import glob
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import unittest
import weakref

import support
import aipalq

SANITIZED = "libasan" in os.environ.get("LD_PRELOAD", "")
# A stack frame in libaipalq: a public function (ctypes calls only those), or
# an unsymbolised address in the library.
OUR_FRAME = re.compile(r" in aipalq_\w+ |libaipalq\.so")


class Lifetimes(unittest.TestCase):
    def setUp(self):
        support.scratch_db()

    def test_close_is_idempotent(self):
        c = support.client()
        fin = c._finalizer
        self.assertTrue(fin.alive)
        c.close()
        self.assertFalse(fin.alive)
        c.close()
        with c:
            pass
        self.assertTrue(c.closed)

    def test_context_manager_closes(self):
        with support.client() as c:
            c.ping()
            fin = c._finalizer
        self.assertFalse(fin.alive)

    def test_garbage_collection_frees(self):
        freed = []
        for _ in range(50):
            c = support.client()
            c.ping()
            weakref.finalize(c, freed.append, 1)
            fin = c._finalizer
            del c
            gc.collect()
            self.assertFalse(fin.alive)
        self.assertEqual(len(freed), 50)

    def test_worker_freed_after_run_and_by_gc(self):
        with support.client() as c:
            w = aipalq.Worker(c, concurrency=1, maintenance_interval=0)
            w.register("gc_t", lambda job: job.params)
            w.start()
            fin = w._finalizer
            self.assertTrue(fin.alive)
            tid = c.enqueue("gc_t", {"a": 1})
            self.assertEqual(c.wait(tid, 30).result, {"a": 1})
            w.stop()
            w.join()
            self.assertFalse(fin.alive, "the C worker is freed when the loop ends")
            w.close()
            w.close()
            # A worker that is dropped while running: its atexit hook keeps it
            # alive until stopped; close() stops and frees it.
            w2 = aipalq.Worker(c, concurrency=1, maintenance_interval=0)
            w2.register("gc_t", lambda job: None)
            w2.start()
            fin2 = w2._finalizer
            w2.close()
            self.assertFalse(fin2.alive)
            del w, w2
            gc.collect()

    @unittest.skipIf(SANITIZED, "ASan's quarantine makes the process size meaningless")
    def test_no_growth_over_many_calls(self):
        # A leak of ~1 KiB per call would show as several MiB here.
        with support.client() as c:
            c.define_type("mem", "memq")
            tid = c.enqueue("mem", {"pad": "x" * 2000})

            def burst():
                for _ in range(300):
                    c.get(tid)
                    c.list(type="mem", limit=5)
                    c.enqueue_many([("mem", {"pad": "y" * 2000})], priority=3)
                    c.types()
                    try:
                        c.get("01900000-0000-7000-8000-000000000000")
                    except aipalq.NotFound:
                        pass

            burst()
            before = _rss_kb()
            burst()
            burst()
            grown = _rss_kb() - before
        self.assertLess(grown, 4096, f"RSS grew by {grown} KiB")


WORKLOAD = textwrap.dedent(
    """
    import gc, sys, time
    sys.path.insert(0, sys.argv[1])
    import support, aipalq

    c = support.client()                      # closed explicitly
    c.define_types([{"name": "m", "queue": "mq", "max_retries": 1, "backoff_base_ms": 10,
                     "backoff_cap_ms": 10}])
    ids = [c.enqueue("m", {"n": i}, priority=3, idempotency_key=f"k{i}", user_id="u",
                     max_retries=0) for i in range(5)]
    ids += c.enqueue_many([("m", {"n": 5}), {"type": "m", "params": {"bad": 1}, "delay": 60}])
    c.get(ids[0]); c.list(type="m", state=["pending", "scheduled"]); c.list_pending(); c.list_failed()
    c.get_many(ids + ["01900000-0000-7000-8000-000000000000"]); c.set_list_total_max_age(60); c.list(type="m")
    c.types(); c.state_counts(); c.workers(); c.queue_depth("mq"); c.ping(); c.schema_version()
    for bad in (lambda: c.enqueue("m", [1]), lambda: c.enqueue("m", {}, priority=99),
                lambda: c.enqueue_many([("m", {}), ("m", "{")]), lambda: c.get("x"),
                lambda: c.cancel(ids[0]) or c.cancel(ids[0])):
        try:
            bad()
        except aipalq.AipalqError:
            pass

    w = aipalq.Worker(c, concurrency=2, maintenance_interval=0, lease=2)
    @w.task("m")
    def m(job):
        job.progress(50, "half")
        if job.params.get("n") == 1:
            raise ValueError("fails")
        return {"ok": job.params}
    w.start()
    for i in ids[1:6]:
        c.wait(i, 30)
    w.stop(); w.join()

    with aipalq.PgConnection() as conn:       # transactional enqueue, then the step API
        with conn.transaction():
            c.enqueue_tx(conn, "m", {"tx": 1}, priority=4)
            c.enqueue_many_tx(conn, [("m", {"tx": 2}), ("m", {"tx": 3})])
        for bad in (lambda: c.enqueue_tx(conn, "m", [1]), lambda: c.enqueue_many_tx(conn, [("m", "{")])):
            try:
                bad()
            except aipalq.AipalqError:
                pass
    c.relay_outbox()
    sw = aipalq.Worker(c, maintenance_interval=0)
    job = sw.next(10)
    job.complete({"step": job.params})
    job.close()
    with sw.next(10) as job:
        job.fail("no", "detail", retryable=False)
    held = sw.next(10)                        # handed back and freed by sw.close()
    sw.close()

    leaked = support.client()                 # never closed: freed when collected
    leaked.ping()
    del leaked
    gc.collect()
    at_exit = support.client()                # never closed: freed at exit by its finalizer
    at_exit.ping()
    c.close()
    print("workload done", flush=True)
    """
)


class LeakSanitizer(unittest.TestCase):
    @unittest.skipUnless(SANITIZED, "needs the ASan build (scripts/test.sh's sanitizer pass)")
    def test_no_leaks_under_leak_sanitizer(self):
        support.scratch_db()
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ)
            # The slow unwinder: the interpreter has no frame pointers, and the fast
            # one would stop before the frames that tell whose allocation it was.
            env["ASAN_OPTIONS"] = (f"detect_leaks=1:exitcode=0:log_path={tmp}/lsan:"
                                   "fast_unwind_on_malloc=0:malloc_context_size=40")
            r = subprocess.run([sys.executable, "-c", WORKLOAD, str(support.HERE)], env=env,
                               capture_output=True, text=True, timeout=300)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("workload done", r.stdout, r.stderr)
            reports = ""
            for name in glob.glob(f"{tmp}/lsan*"):
                with open(name) as f:
                    reports += f.read()
        ours = [block for block in re.split(r"\n(?=(?:Direct|Indirect) leak)", reports)
                if "leak of" in block and OUR_FRAME.search(block)]
        self.assertEqual(ours, [], "libaipalq objects leaked:\n" + "\n".join(ours)[:6000])


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


if __name__ == "__main__":
    unittest.main()
