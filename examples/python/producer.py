#!/usr/bin/env python3
"""Enqueues a few tasks for examples/python/worker.py and waits for them.

    AIPALQ_REDIS_URL=... AIPALQ_DATABASE_URL=... \
    PYTHONPATH=bindings/python python3 examples/python/producer.py [--namespace NS]
"""

from __future__ import annotations

import argparse

import aipalq


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--namespace", default=None)
    ap.add_argument("--queue", default="py")
    ap.add_argument("--timeout", type=float, default=30)
    args = ap.parse_args()
    print(f"libaipalq {aipalq.library_version_string()} from {aipalq.library_path()}")

    with aipalq.Client(namespace=args.namespace) as client:
        client.migrate()
        # Producers need the types defined (routing is configuration).
        client.define_types([
            {"name": "py_echo", "queue": args.queue},
            {"name": "py_sleep", "queue": args.queue, "soft_time_limit_ms": 60000},
            {"name": "py_fail", "queue": args.queue, "max_retries": 2,
             "backoff_base_ms": 200, "backoff_cap_ms": 1000},
        ])
        ids = [
            client.enqueue("py_echo", {"hello": "world"}, priority=8),
            client.enqueue("py_sleep", {"seconds": 1.5}),
            client.enqueue("py_fail", {}),
            client.enqueue("py_fail", {"permanent": True}),
        ]
        ids += client.enqueue_many([("py_echo", {"n": i}) for i in range(5)])
        again = client.enqueue("py_echo", {"hello": "once"}, idempotency_key="example-once")
        print(f"enqueued {len(ids)} tasks; idempotent task {again} (created: {again.created})")

        for task_id in ids:
            try:
                task = client.wait(task_id, timeout=args.timeout)
            except aipalq.Timeout as e:
                print(f"  {task_id}: {e} (is examples/python/worker.py running?)")
                continue
            outcome = task.result if task.succeeded else task.error_message
            print(f"  {task.id} {task.type:9} {task.state.value:9} attempts {task.attempts}: {outcome}")
        print("queue depth:", client.queue_depth(args.queue))


if __name__ == "__main__":
    main()
