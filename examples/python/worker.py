#!/usr/bin/env python3
"""A Python worker for libaipalq: handlers for "py_echo", "py_sleep" and "py_fail".

    AIPALQ_REDIS_URL=... AIPALQ_DATABASE_URL=... \
    PYTHONPATH=bindings/python python3 examples/python/worker.py [--concurrency N] [--namespace NS]

Ctrl-C (or SIGTERM) stops it gracefully: running handlers may finish, the
rest go back to the queue. A second Ctrl-C stops it fast, still losing nothing.
"""

from __future__ import annotations

import argparse
import logging
import time

import aipalq


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--namespace", default=None)
    ap.add_argument("--queue", default="py")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    with aipalq.Client(namespace=args.namespace) as client:
        client.migrate()
        worker = aipalq.Worker(client, concurrency=args.concurrency)

        @worker.task("py_echo", queue=args.queue)
        def echo(job: aipalq.Job):
            return {"echo": job.params, "attempt": job.attempt}

        @worker.task("py_sleep", queue=args.queue, soft_time_limit=60)
        def sleep(job: aipalq.Job):
            seconds = float(job.params.get("seconds", 1))
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                if job.should_stop():  # cancel, soft limit, fast stop
                    return None  # cancelled if a cancel was requested
                left = deadline - time.monotonic()
                job.progress(int(100 * (1 - left / seconds)) if seconds else 100, "sleeping")
                time.sleep(min(0.1, max(left, 0)))
            return {"slept": seconds}

        @worker.task("py_fail", queue=args.queue, max_retries=2, backoff_base=0.2, backoff_cap=1)
        def fail(job: aipalq.Job):
            if job.params.get("permanent"):
                raise aipalq.PermanentError("failed on purpose, do not retry")
            raise RuntimeError(f"failed on purpose (attempt {job.attempt})")

        print(f"worker {args.namespace or 'aipalq'}/{args.queue}: {sorted(worker.handlers)}", flush=True)
        worker.run()
        print(f"worker stopped: {worker.counts()}", flush=True)


if __name__ == "__main__":
    main()
