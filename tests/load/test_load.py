"""Load tests of issue 10: the API under a sustained mixed load, and many tasks through the
whole system with memory that stays flat.

Real daemons (aipal-api, aipal-worker in thread mode) against the Redis and PostgreSQL of
AIPALQ_REDIS_URL / AIPALQ_DATABASE_URL, in a Redis namespace of their own. The figures
(request rates, latency percentiles, resident sizes) are written as JSON lines to
LOAD_RESULTS (default: stdout only) for docs/RELIABILITY.md; the assertions are about
correctness (no error, no task lost, no growth per task), never about speed.

Sizes (environment):
  LOAD_SECONDS      length of the mixed load (default 20)
  LOAD_CONNECTIONS  concurrent keep-alive clients (default 16)
  LOAD_TASKS        tasks of the memory test (default 60000; the long variant: 1000000)
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import unittest
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "api"))
from test_api import RW_KEY, Daemon, _started, require_services  # noqa: E402

WORKER_BIN = os.environ.get("AIPAL_WORKER_BIN") or str(
    REPO / "build" / "daemons" / "worker" / "aipal-worker")
RESULT_TTL_S = 2
# Resident growth allowed once warmed up, for any number of tasks: allocator noise, not a
# per-task cost (60,000 tasks leaking 64 bytes each would already exceed it).
RSS_SLACK_KB = 3072
REDIS_SLACK_BYTES = 2 * 1024 * 1024


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def report(record: Dict[str, Any]) -> None:
    line = json.dumps(record, sort_keys=True)
    print(line, flush=True)
    path = os.environ.get("LOAD_RESULTS")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def percentile(sorted_ms: List[float], p: float) -> float:
    if not sorted_ms:
        return 0.0
    i = min(len(sorted_ms) - 1, int(round(p / 100.0 * (len(sorted_ms) - 1))))
    return round(sorted_ms[i], 3)


def redis_cli(*args: str) -> str:
    url = os.environ["AIPALQ_REDIS_URL"]
    return subprocess.run(["redis-cli", "-u", url, *args], check=True, capture_output=True,
                          text=True, timeout=30).stdout.strip()


def redis_used_memory() -> int:
    for line in redis_cli("INFO", "memory").splitlines():
        if line.startswith("used_memory:"):
            return int(line.split(":")[1])
    raise AssertionError("INFO memory has no used_memory")


class Worker:
    """One aipal-worker process in thread mode, in the API's namespace."""

    def __init__(self, namespace: str, log_path: Path):
        cmd = [WORKER_BIN, "--namespace", namespace, "--pool", "threads", "--concurrency", "8",
               "--queues", "default", "--no-scheduler", "--health-port", "0",
               "--result-ttl", str(RESULT_TTL_S), "--log-level", "warn"]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log)
        _started.append(self.proc)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(30)
        finally:
            self.log.close()
        return rc

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


class Client:
    """A keep-alive HTTP client of one load thread; reconnects after an error."""

    def __init__(self, port: int):
        self.port = port
        self.conn: Optional[http.client.HTTPConnection] = None
        self.headers = {"Authorization": f"Bearer {RW_KEY}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: Any = None) -> Tuple[int, Any]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        data = json.dumps(body).encode() if body is not None else None
        try:
            self.conn.request(method, path, body=data, headers=self.headers)
            resp = self.conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = None
            raise
        return resp.status, json.loads(raw) if raw else None

    def close(self) -> None:
        if self.conn:
            self.conn.close()


class LoadCase(unittest.TestCase):
    api: Daemon
    worker: Worker

    @classmethod
    def setUpClass(cls) -> None:
        require_services()
        env = dict(os.environ)
        env["AIPALQ_API_KEYS_RW"] = RW_KEY
        cls.api = Daemon(env=env).start()
        logs = Path(os.environ.get("LOAD_LOG_DIR") or "/tmp")
        cls.worker = Worker(cls.api.namespace, logs / f"load-worker-{os.getpid()}.log")

    @classmethod
    def tearDownClass(cls) -> None:
        wrc = cls.worker.stop()
        arc = cls.api.stop()
        if wrc != 0:
            raise AssertionError(f"aipal-worker exited {wrc}:\n{cls.worker.log_tail()}")
        if arc != 0:
            raise AssertionError(f"aipal-api exited {arc}:\n" + "".join(cls.api.lines[-20:]))

    def states(self) -> Dict[str, int]:
        """Task counts by state in PostgreSQL, of this namespace (exact, not the API's
        last-hour figures)."""
        out = subprocess.run(
            ["psql", "-X", "-qAt", "-F", " ", "-d", os.environ["AIPALQ_DATABASE_URL"], "-c",
             "SELECT status, count(*) FROM aipalq_tasks WHERE namespace = "
             f"'{self.api.namespace}' GROUP BY status"],
            check=True, capture_output=True, text=True, timeout=30).stdout
        return {state: int(n) for state, n in (line.split() for line in out.splitlines())}

    def wait_all_completed(self, expected: int, timeout: float) -> float:
        """Waits until `expected` tasks of the namespace are completed; returns the seconds."""
        start = time.monotonic()
        while True:
            states = self.states()
            done = states.get("completed", 0)
            others = {k: v for k, v in states.items() if k != "completed" and v}
            if done == expected and not others:
                return time.monotonic() - start
            self.assertLessEqual(done, expected, states)
            self.assertNotIn("failed", others, states)
            if time.monotonic() - start > timeout:
                raise AssertionError(f"after {timeout}s: {states}, expected {expected} completed;"
                                     f"\nworker log:\n{self.worker.log_tail()}")
            time.sleep(0.5)


class MixedApiLoadTest(LoadCase):
    """Submits, status lookups and lists from keep-alive clients for a bounded time."""

    def test_mixed_load_has_no_errors_and_loses_no_task(self) -> None:
        seconds = env_int("LOAD_SECONDS", 20)
        nconn = env_int("LOAD_CONNECTIONS", 16)
        seed = Client(self.api.port)
        ids: List[str] = []
        for i in range(100):
            status, body = seed.call("POST", "/api/tasks", {"type": "echo", "params": {"message": f"seed {i}"}})
            self.assertEqual(status, 202, body)
            ids.append(body["task_id"])
        seed.close()

        latencies: Dict[str, List[float]] = {"submit": [], "status": [], "list": []}
        errors: List[str] = []
        accepted: List[str] = []
        lock = threading.Lock()
        deadline = time.monotonic() + seconds

        def one_request(client: Client, rng: random.Random) -> Tuple[str, str]:
            roll = rng.random()
            if roll < 0.25:
                status, body = client.call("POST", "/api/tasks",
                                           {"type": "echo", "params": {"data": {"r": rng.random()}}})
                if status == 202:
                    accepted.append(body["task_id"])
                    ids.append(body["task_id"])
                    return "submit", ""
                return "submit", f"submit {status} {body}"
            if roll < 0.75:
                task_id = rng.choice(ids)
                status, body = client.call("GET", f"/api/tasks/status/{task_id}")
                ok = status == 200 and body.get("task_id") == task_id
                return "status", "" if ok else f"status {task_id}: {status} {body}"
            status, body = client.call("GET", "/api/tasks/list?limit=50")
            ok = status == 200 and isinstance(body.get("total_count"), int) and body["tasks"]
            return "list", "" if ok else f"list {status} {body}"

        def run(n: int) -> None:
            client, rng = Client(self.api.port), random.Random(n)
            mine: Dict[str, List[float]] = {k: [] for k in latencies}
            failures: List[str] = []
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                try:
                    kind, failure = one_request(client, rng)
                except (OSError, http.client.HTTPException, ValueError) as e:
                    kind, failure = "socket", f"{type(e).__name__}: {e}"
                if failure:
                    failures.append(failure)
                else:
                    mine[kind].append((time.perf_counter() - t0) * 1000.0)
            client.close()
            with lock:
                for k, v in mine.items():
                    latencies[k].extend(v)
                errors.extend(failures)

        threads = [threading.Thread(target=run, args=(n,)) for n in range(nconn)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        total = sum(len(v) for v in latencies.values())
        record: Dict[str, Any] = {"scenario": "api_mixed_load", "seconds": seconds,
                                  "connections": nconn, "requests": total,
                                  "req_per_s": round(total / seconds, 1), "errors": len(errors),
                                  "api_rss_kb": rss_kb(self.api.proc.pid)}
        for kind, values in latencies.items():
            values.sort()
            record[kind] = {"n": len(values), "p50_ms": percentile(values, 50),
                            "p95_ms": percentile(values, 95), "p99_ms": percentile(values, 99)}
        report(record)
        self.assertEqual(errors, [], f"{len(errors)} errors, first: {errors[:5]}")
        for kind, values in latencies.items():
            self.assertGreater(len(values), 0, f"no successful {kind} request")
        self.assertEqual(len(set(accepted)), len(accepted), "a task id was given twice")
        # Every acknowledged submit is a task, and every task reaches `completed`.
        self.wait_all_completed(100 + len(accepted), timeout=120)


class ManyTasksMemoryTest(LoadCase):
    """LOAD_TASKS tasks submitted through the API in batches and drained by the worker:
    the resident sizes of both daemons stay flat, and Redis returns to its baseline once
    the results' TTL has passed."""

    def sample(self) -> Tuple[int, int]:
        return rss_kb(self.worker.proc.pid), rss_kb(self.api.proc.pid)

    def redis_waiting(self) -> int:
        """Tasks Redis holds ready, scheduled or leased in the default queue."""
        prefix = f"{self.api.namespace}:{{default}}:"
        out = subprocess.run(
            ["redis-cli", "-u", os.environ["AIPALQ_REDIS_URL"]],
            input="".join(f"ZCARD {prefix}{k}\n" for k in ("ready", "sched", "leases")),
            check=True, capture_output=True, text=True, timeout=30).stdout
        return sum(int(n) for n in out.split())

    def submit_batches(self, total: int, progress: List[int]) -> None:
        client = Client(self.api.port)
        batch = 500
        for start in range(0, total, batch):
            items = [{"type": "echo", "params": {"data": {"n": n}}}
                     for n in range(start, min(total, start + batch))]
            status, body = client.call("POST", "/api/tasks/batch", {"tasks": items})
            self.assertEqual(status, 202, body)
            self.assertEqual(body["count"], len(items))
            progress[0] += len(items)
        client.close()

    def test_memory_stays_flat(self) -> None:
        total = env_int("LOAD_TASKS", 60000)
        # Warm both daemons up (allocator arenas, prepared statements, scripts) first.
        self.submit_batches(2000, [0])
        self.wait_all_completed(2000, timeout=120)
        time.sleep(RESULT_TTL_S + 2)
        redis_base = redis_used_memory()

        submitted = [0]
        producer = threading.Thread(target=self.submit_batches, args=(total, submitted))
        start = time.monotonic()
        producer.start()
        samples: List[Dict[str, int]] = []
        redis_peak = redis_base
        next_mark = 0.1
        while True:
            # Progress from Redis (cheap); PostgreSQL's exact count comes at the end, as a
            # count over a million rows several times a second would load the test itself.
            waiting = self.redis_waiting()
            done = submitted[0] - waiting
            redis_peak = max(redis_peak, redis_used_memory())
            while done >= next_mark * total and next_mark <= 1.0001:
                w, a = self.sample()
                samples.append({"done": done, "worker_kb": w, "api_kb": a})
                next_mark += 0.1
            if done >= total:
                break
            if time.monotonic() - start > 60 + total / 200:
                raise AssertionError(f"drain stalled: {done} of {total} done, {waiting} waiting"
                                     f"\n{self.worker.log_tail()}")
            time.sleep(0.5)
        producer.join()
        drain_s = time.monotonic() - start
        self.wait_all_completed(total + 2000, timeout=60)

        # Results expire from Redis after RESULT_TTL_S; idle workers purge them.
        purge_start = time.monotonic()
        done_key = f"{self.api.namespace}:{{default}}:done"
        while int(redis_cli("HLEN", done_key)) > 0:
            if time.monotonic() - purge_start > 60:
                raise AssertionError(f"{redis_cli('HLEN', done_key)} results still cached")
            time.sleep(0.5)
        purge_s = time.monotonic() - purge_start
        time.sleep(1)
        redis_after = redis_used_memory()

        warm = [s for s in samples if s["done"] >= 0.2 * total]
        record = {"scenario": "many_tasks_memory", "tasks": total,
                  "drain_s": round(drain_s, 1), "tasks_per_s": round(total / drain_s),
                  "worker_rss_kb": [s["worker_kb"] for s in samples],
                  "api_rss_kb": [s["api_kb"] for s in samples],
                  "redis_base_bytes": redis_base, "redis_peak_bytes": redis_peak,
                  "redis_after_bytes": redis_after, "results_purged_after_s": round(purge_s, 1)}
        report(record)
        self.assertGreaterEqual(len(warm), 8, samples)
        for who in ("worker_kb", "api_kb"):
            first, peak = warm[0][who], max(s[who] for s in warm)
            self.assertLessEqual(peak - first, RSS_SLACK_KB,
                                 f"{who} grew from {first} to {peak} KB over {total} tasks")
        self.assertLessEqual(redis_after, redis_base + REDIS_SLACK_BYTES,
                             f"Redis used {redis_base} bytes before, {redis_after} after "
                             f"(peak {redis_peak})")
        for suffix in ("ready", "sched", "leases", "job", "meta", "done_exp"):
            key = f"{self.api.namespace}:{{default}}:{suffix}"
            self.assertEqual(redis_cli("EXISTS", key), "0", f"{key} still exists")


if __name__ == "__main__":
    unittest.main()
