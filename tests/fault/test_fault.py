"""Daemon-level fault suite (issue 10, "Faults"): real drains under real faults, nothing lost.

Each scenario enqueues a few thousand tasks of the diagnostic types (`sleep` with a few ms, so
that the drain lasts long enough for faults to land mid-drain), drains them with the real
aipal-worker daemon(s) (and aipal-api where the scenario is about the API), injects its fault
(FAULT_REPS times where it makes sense), waits (bounded) until every task is final and asserts:

* every task reached exactly one final state in PostgreSQL, and that state is `completed`
  (tasks are enqueued with max_retries 10, so that faults alone never exhaust their attempts);
* no task's completion was recorded twice: exactly one `completed` event per task (handlers may
  run more than once under at-least-once delivery; those re-runs are counted, not refused);
* Redis holds nothing stale: the queue's ready, sched, leases, job, meta and cancel structures are
  empty (the result cache `done`/`done_exp`, `seq` and `wake` may stay).

The suite starts its OWN Redis and PostgreSQL with scripts/services.sh in a fresh temporary
directory (never the servers of AIPALQ_REDIS_URL / AIPALQ_DATABASE_URL: the scenarios kill
them) and stops them at the end; every daemon it starts is killed in tearDown.

Settings (environment): FAULT_TASKS (tasks per drain, default 3000), FAULT_REPS (faults per
scenario, default 3), FAULT_SLEEP_MS (ms per task with 4 slots, default 25; scaled by the
slots of the scenario so that every drain lasts about as long), FAULT_DRAIN_TIMEOUT (seconds a
drain may take, default 240), FAULT_LONG=1 (the long variant: 10000 tasks, 5 repetitions, unless
set otherwise), FAULT_RESULTS (file that gets one JSON line per scenario), FAULT_KEEP=1 (keep the
temporary directory with the daemons' logs).

Run: tests/fault/run.sh [BUILD] [test_fault.FaultTest.test_api_sigkill ...]
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bindings" / "python"))
import aipalq  # noqa: E402  (the bindings of this checkout)

BUILD = Path(os.environ.get("FAULT_BUILD") or REPO / "build")
WORKER_BIN = os.environ.get("AIPAL_WORKER_BIN") or str(BUILD / "daemons/worker/aipal-worker")
API_BIN = os.environ.get("AIPAL_API_BIN") or str(BUILD / "daemons/api/aipal-api")
SERVICES = str(REPO / "scripts" / "services.sh")

LONG = os.environ.get("FAULT_LONG") == "1"
TASKS = int(os.environ.get("FAULT_TASKS") or (10000 if LONG else 3000))
REPS = int(os.environ.get("FAULT_REPS") or (5 if LONG else 3))
SLEEP_MS = int(os.environ.get("FAULT_SLEEP_MS") or 25)  # per task, for 4 slots
DRAIN_TIMEOUT = float(os.environ.get("FAULT_DRAIN_TIMEOUT") or 240)
RESULTS = os.environ.get("FAULT_RESULTS") or str(BUILD / "meson-logs" / "fault-results.jsonl")
KEEP = os.environ.get("FAULT_KEEP") == "1"

# Long enough that the handlers are still running when SIGTERM comes, although PostgreSQL
# shows them running only after the recorder's next batch.
LONG_TASK_MS = 4000
LEASE_S = 2  # short leases keep the recovery from a killed worker bounded
CONCURRENCY = 4
NAMESPACE = "aipalq"
QUEUE = "default"
RW_KEY = "fault-" + secrets.token_hex(12)
FINAL = ("completed", "failed", "cancelled")
# The dispatch structures of a queue (lib/redis_scripts.c); all must be empty after a drain.
DISPATCH_KEYS = {"ready": "ZCARD", "sched": "ZCARD", "leases": "ZCARD", "job": "HLEN",
                 "meta": "HLEN", "cancel": "SCARD"}


# ------------------------------------------------------------------ services (Redis, PostgreSQL)

class Services:
    """Redis + PostgreSQL of this suite, started and faulted through scripts/services.sh."""

    def __init__(self, root: Path):
        self.dir = root / "svc"
        out = subprocess.run([SERVICES, "start", str(self.dir)], capture_output=True, text=True,
                             timeout=180)
        if out.returncode != 0:
            raise RuntimeError(f"services.sh start failed:\n{out.stderr}")
        self.reload()

    def reload(self) -> None:
        """Reads DIR/env again (a restarted Redis has a new pid)."""
        self.env: Dict[str, str] = {}
        for line in (self.dir / "env").read_text().splitlines():
            if line.startswith("export ") and "=" in line:
                name, value = line[len("export "):].split("=", 1)
                self.env[name] = value.strip("'\"")

    @property
    def redis_port(self) -> int:
        return int(self.env["AIPALQ_REDIS_PORT"])

    @property
    def redis_pid(self) -> int:
        return int(self.env["AIPALQ_REDIS_PID"])

    @property
    def database_url(self) -> str:
        return self.env["AIPALQ_DATABASE_URL"]

    @property
    def redis_url(self) -> str:
        return self.env["AIPALQ_REDIS_URL"]

    def call(self, *function: str, reload: bool = True) -> None:
        """Runs one function of scripts/services.sh against this suite's services."""
        script = 'source "$1" && source "$2/env" && shift 2 && "$@"'
        out = subprocess.run(["bash", "-c", script, "svc", SERVICES, str(self.dir), *function],
                             capture_output=True, text=True, timeout=180)
        if reload:
            self.reload()
        if out.returncode != 0:
            raise RuntimeError(f"services.sh {' '.join(function)} failed:\n{out.stderr}")

    def redis_alive(self) -> bool:
        try:
            return redis_command(self.redis_port, "PING", timeout=2) == "PONG"
        except OSError:
            return False

    def pg_alive(self) -> bool:
        try:
            psql(self.database_url.rsplit("/", 1)[0] + "/postgres", "SELECT 1", timeout=5)
            return True
        except (RuntimeError, subprocess.TimeoutExpired):
            return False

    def heal(self) -> None:
        """Brings both servers back after a test that failed mid-fault."""
        try:
            os.kill(self.redis_pid, signal.SIGCONT)
        except OSError:
            pass
        if not self.redis_alive():
            self.call("services_redis_start_again")
        if not self.pg_alive():
            self.call("services_pg_start_again")

    def reset(self) -> None:
        """Empty Redis and a new, empty database."""
        self.heal()
        self.call("services_reset")

    def stop(self) -> None:
        self.call("services_stop", str(self.dir), reload=False)


def redis_command(port: int, *args: str, timeout: float = 10) -> object:
    """One command over RESP; returns the decoded reply (errors raise RuntimeError)."""
    payload = f"*{len(args)}\r\n".encode()
    for a in args:
        data = str(a).encode()
        payload += b"$%d\r\n%s\r\n" % (len(data), data)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        return _resp_read(s.makefile("rb"))


def _resp_read(f) -> object:  # type: ignore[no-untyped-def]
    line = f.readline()
    if not line:
        raise OSError("Redis closed the connection")
    kind, rest = line[:1], line[1:-2].decode()
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RuntimeError(rest)
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2].decode()
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_resp_read(f) for _ in range(n)]
    raise OSError(f"bad RESP reply {line!r}")


def psql(url: str, sql: str, timeout: float = 30) -> str:
    # On stdin: lists of thousands of ids would pass the limit of one argument.
    out = subprocess.run(["psql", url, "-XqtA", "-v", "ON_ERROR_STOP=1", "-f", "-"], input=sql,
                         capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"psql {sql!r}: {out.stderr.strip()}")
    return out.stdout.strip()


# ------------------------------------------------------------------------------------- daemons

class Daemon:
    """A daemon process with its log (stderr and stdout) in a file."""

    def __init__(self, name: str, argv: List[str], env: Dict[str, str], log: Path):
        self.name, self.log = name, log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=out, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def wait_for(self, needle: str, timeout: float = 60) -> str:
        """Waits until the log has a line containing needle; returns that line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log_text().splitlines():
                if needle in line:
                    return line
            if not self.alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: no {needle!r} in its log within {timeout} s "
                             f"(exit {self.proc.poll()}); last lines:\n{self.log_text()[-3000:]}")

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL to the process and its process group (prefork children included)."""
        for target in (lambda: os.killpg(self.pid, signal.SIGKILL),
                       lambda: os.kill(self.pid, signal.SIGKILL)):
            try:
                target()
            except OSError:
                pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def children(self) -> List[int]:
        out = subprocess.run(["pgrep", "-P", str(self.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]


# ----------------------------------------------------------------------------- drain monitor

class Monitor(threading.Thread):
    """Samples the drain's progress in PostgreSQL every 0.2 s: (time, completed, final), and
    resolves "hit sets": the tasks running when a fault landed, until all of them are final."""

    def __init__(self, url: str, total: int):
        super().__init__(daemon=True)
        self.url, self.total = url, total
        self.samples: List[Tuple[float, int, int]] = []
        self.faults: List[Dict[str, object]] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.2):
            try:
                completed, final = counts_of(self.url)
            except (RuntimeError, subprocess.TimeoutExpired):
                continue  # PostgreSQL down: the scenario's own fault
            now = time.monotonic()
            with self.lock:
                self.samples.append((now, completed, final))
                for fault in self.faults:
                    try:
                        self._resolve(fault, now, completed, final)
                    except (RuntimeError, subprocess.TimeoutExpired):
                        pass  # next sample

    def _resolve(self, fault: Dict[str, object], now: float, completed: int, final: int) -> None:
        at = float(fault["at"])  # type: ignore[arg-type]
        # Progress beyond the tasks that were in flight (those may end without any new take).
        hit: Sequence[str] = fault["hit"]  # type: ignore[assignment]
        progressed = (completed > int(fault["completed"]) + len(hit)  # type: ignore[arg-type]
                      or final >= self.total)
        if fault.get("resume_s") is None and progressed:
            fault["resume_s"] = round(now - at, 2)
        if fault.get("hit_final_s") is None:
            if not hit or unfinished_among(self.url, hit) == 0:
                fault["hit_final_s"] = round(now - at, 2)

    def fault(self, hit: Sequence[str], completed: int, at: float, took: float) -> None:
        """Notes a fault at `at` that took `took` s to inject (a restart: until the server was
        up again); hit: the ids it hit; completed: the count just before."""
        with self.lock:
            self.faults.append({"at": at, "hit": list(hit), "completed": completed,
                                "fault_s": round(took, 2)})

    def stop(self) -> None:
        self.stopping.set()
        self.join(5)

    def summary(self) -> List[Dict[str, object]]:
        with self.lock:
            return [{k: v for k, v in f.items() if k not in ("hit", "at")} | {"hit": len(f["hit"])}
                    for f in self.faults]  # type: ignore[arg-type]

    def recovery(self) -> Dict[str, Optional[float]]:
        """Worst case over the faults: progress resumed after, and hit tasks final after (s)."""
        def worst(key: str) -> Optional[float]:
            vals = [f.get(key) for f in self.faults]
            if any(v is None for v in vals):
                return None
            return max(vals) if vals else None  # type: ignore[type-var, return-value]
        with self.lock:
            for f in self.faults:
                parts = [f.get("resume_s"), f.get("hit_final_s")]
                f["recovery_s"] = None if None in parts else max(parts)  # type: ignore
            return {"recovery_s": worst("recovery_s"), "resume_s": worst("resume_s"),
                    "hit_final_s": worst("hit_final_s"), "fault_s": worst("fault_s")}


def counts_of(url: str) -> Tuple[int, int]:
    row = psql(url, "SELECT count(*) FILTER (WHERE status = 'completed'),"
                    " count(*) FILTER (WHERE status IN ('completed', 'failed', 'cancelled'))"
                    " FROM aipalq_tasks", timeout=5)
    completed, final = row.split("|")
    return int(completed), int(final)


def unfinished_among(url: str, ids: Sequence[str]) -> int:
    array = "'{" + ",".join(ids) + "}'::uuid[]"
    return int(psql(url, f"SELECT count(*) FROM aipalq_tasks WHERE id = ANY({array})"
                         " AND status NOT IN ('completed', 'failed', 'cancelled')", timeout=5))


# --------------------------------------------------------------------------------- the tests

_root: Optional[Path] = None
_services: Optional[Services] = None


def setUpModule() -> None:
    global _root, _services
    for binary in (WORKER_BIN, API_BIN):
        if not os.access(binary, os.X_OK):
            raise AssertionError(f"{binary} is not built (set AIPAL_WORKER_BIN / AIPAL_API_BIN)")
    _root = Path(tempfile.mkdtemp(prefix="aipalq-fault."))
    os.chmod(_root, 0o755)  # PostgreSQL runs as user postgres when we are root
    (_root / "logs").mkdir()
    _services = Services(_root)


def tearDownModule() -> None:
    if _services:
        try:
            _services.heal()
            _services.stop()
        except Exception as e:  # noqa: BLE001 - report, but remove what we can
            print(f"fault: stopping the services: {e}", file=sys.stderr)
    if _root and not KEEP:
        shutil.rmtree(_root, ignore_errors=True)
    elif _root:
        print(f"fault: logs kept in {_root}", file=sys.stderr)


class FaultTest(unittest.TestCase):
    """One scenario per test; each starts from empty servers."""

    svc: Services

    def setUp(self) -> None:
        assert _services is not None and _root is not None
        self.svc = _services
        self.svc.reset()
        self.daemons: List[Daemon] = []
        self.monitor: Optional[Monitor] = None
        self.client: Optional[aipalq.Client] = None
        self.env = dict(os.environ)
        self.env.update(AIPALQ_REDIS_URL=self.svc.redis_url,
                        AIPALQ_DATABASE_URL=self.svc.database_url,
                        AIPALQ_API_KEYS_RW=RW_KEY)
        for var in ("AIPALQ_NAMESPACE", "AIPALQ_API_KEYS_RO", "AIPAL_API_KEYS_FILE"):
            self.env.pop(var, None)

    def tearDown(self) -> None:
        if self.monitor:
            self.monitor.stop()
        for d in self.daemons:
            d.kill()
        if self.client:
            self.client.close()
        self.svc.heal()

    # -- daemons

    def log_path(self, name: str) -> Path:
        assert _root is not None
        return _root / "logs" / f"{self.id().rsplit('.', 1)[-1]}.{name}.{len(self.daemons)}.log"

    def start_worker(self, pool: str = "threads", concurrency: int = CONCURRENCY,
                     extra: Sequence[str] = ()) -> Daemon:
        argv = [WORKER_BIN, "--queues", QUEUE, "--pool", pool, "--concurrency", str(concurrency),
                "--lease", str(LEASE_S), "--health-port", "0", "--no-scheduler",
                "--retry-backoff", "0.5", "--maintenance-interval", "1", *extra]
        if os.geteuid() == 0:
            argv.append("--allow-root")
        d = Daemon("aipal-worker", argv, self.env, self.log_path("worker"))
        self.daemons.append(d)
        d.wait_for('"worker.started"')
        return d

    def start_api(self) -> Tuple[Daemon, int]:
        argv = [API_BIN, "--listen", "127.0.0.1:0", "--rate-limit", "0"]
        if os.geteuid() == 0:
            argv.append("--allow-root")
        d = Daemon("aipal-api", argv, self.env, self.log_path("api"))
        self.daemons.append(d)
        line = d.wait_for('"listening"')
        return d, int(json.loads(line)["port"])

    # -- tasks

    def enqueue(self, n: int, ms: int = SLEEP_MS, priority: Optional[int] = None,
                slots: int = CONCURRENCY) -> List[str]:
        """n sleep tasks of ms milliseconds (times slots / 4: as long a drain for more slots)."""
        ms = ms * slots // CONCURRENCY
        if self.client is None:
            self.client = aipalq.Client(self.svc.redis_url, self.svc.database_url)
            self.client.migrate()  # the workers migrate too; the tasks may come first
            for name in ("sleep", "echo"):
                self.client.define_type(name, QUEUE, max_retries=10)
        ids: List[str] = []
        for start in range(0, n, 1000):
            batch = [("sleep", {"ms": ms}) for _ in range(start, min(n, start + 1000))]
            ids += [str(i) for i in self.client.enqueue_many(batch, priority=priority)]
        return ids

    def sql(self, query: str) -> str:
        return psql(self.svc.database_url, query)

    def completed(self) -> int:
        return counts_of(self.svc.database_url)[0]

    def running_ids(self) -> List[str]:
        out = self.sql("SELECT id FROM aipalq_tasks WHERE status = 'running'")
        return out.split() if out else []

    def start_monitor(self, total: int = TASKS) -> Monitor:
        self.monitor = Monitor(self.svc.database_url, total)
        self.monitor.start()
        return self.monitor

    def wait_completed(self, at_least: int, timeout: float = 120) -> None:
        """Waits until at least this many tasks are completed (the fault's moment)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.completed() >= at_least:
                    return
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
            time.sleep(0.1)
        self.fail(f"the drain did not reach {at_least} completed tasks in {timeout} s")

    def fault_point(self, rep: int, reps: int, total: int) -> int:
        """The completed count at which fault rep (0-based) of reps lands: spread over the
        first 80 % of the drain."""
        return int(total * 0.8 * (rep + 1) / (reps + 1))

    def in_flight(self) -> Tuple[Set[str], int]:
        """The tasks leased in Redis or running in PostgreSQL now, and the completed count
        (what answers; a server down answers nothing)."""
        hit: Set[str] = set()
        done = -1
        try:
            hit.update(redis_command(self.svc.redis_port, "ZRANGE",  # type: ignore[arg-type]
                                     f"{NAMESPACE}:{{{QUEUE}}}:leases", "0", "-1", timeout=2))
        except (OSError, RuntimeError):
            pass
        try:
            hit.update(self.running_ids())
            done = self.completed()
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        return hit, done

    def fault(self) -> "FaultMark":
        """`with self.fault():` around the injection: notes the moment and the tasks the fault
        hits (in flight just before or just after it); the monitor times how long until the
        drain progresses again and until all of them are final."""
        return FaultMark(self)

    def wait_all_final(self, total: int) -> float:
        """Waits (bounded by FAULT_DRAIN_TIMEOUT) until there are at least `total` tasks and
        every one is final; returns when."""
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while time.monotonic() < deadline:
            try:
                rows, final = self.sql("SELECT count(*), count(*) FILTER (WHERE status IN"
                                       " ('completed', 'failed', 'cancelled'))"
                                       " FROM aipalq_tasks").split("|")
                if int(rows) >= total and rows == final:
                    return time.monotonic()
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
            time.sleep(0.2)
        self.fail(f"not every task was final after {DRAIN_TIMEOUT} s: {self.state_counts()}; "
                  f"logs in {_root}/logs")

    def state_counts(self) -> Dict[str, int]:
        out = self.sql("SELECT status, count(*) FROM aipalq_tasks GROUP BY 1")
        return {k: int(v) for k, v in (row.split("|") for row in out.splitlines() if row)}

    def stale_in_redis(self) -> Dict[str, int]:
        port, found = self.svc.redis_port, {}
        for key, command in DISPATCH_KEYS.items():
            n = redis_command(port, command, f"{NAMESPACE}:{{{QUEUE}}}:{key}")
            if n:
                found[key] = int(n)  # type: ignore[arg-type]
        return found

    def check_drain(self, scenario: str, reps: int, ids: Sequence[str],
                    extra: Optional[Dict[str, object]] = None) -> Dict[str, object]:
        """Every task final and completed once, nothing stale in Redis; writes the JSON line."""
        total = len(ids)
        self.wait_all_final(total)
        time.sleep(0.6)  # the monitor's next samples resolve the faults hit at the very end
        recovery = self.monitor.recovery() if self.monitor else {}
        if self.monitor:
            print(f"faults: {self.monitor.summary()}", flush=True)
        states = self.state_counts()
        dup = int(self.sql("SELECT count(*) FROM (SELECT task_id FROM aipalq_events"
                           " WHERE to_status = 'completed' GROUP BY task_id"
                           " HAVING count(*) > 1) d"))
        without_event = int(self.sql(
            "SELECT count(*) FROM aipalq_tasks t WHERE t.status = 'completed' AND NOT EXISTS"
            " (SELECT 1 FROM aipalq_events e WHERE e.task_id = t.id"
            " AND e.to_status = 'completed')"))
        # A delivery's start is its own 'running' event, or, when its start and
        # outcome were recorded together, the outcome event's started_at.
        runs = int(self.sql("SELECT count(*) FROM aipalq_events WHERE to_status = 'running'"
                            " OR (to_status <> 'running' AND started_at IS NOT NULL)"))
        id_array = "'{" + ",".join(ids) + "}'::uuid[]"
        missing = int(self.sql(f"SELECT count(*) FROM unnest({id_array}) i"
                               " WHERE NOT EXISTS (SELECT 1 FROM aipalq_tasks t WHERE t.id = i)"))
        done = int(self.sql(f"SELECT count(*) FROM aipalq_tasks WHERE id = ANY({id_array})"
                            " AND status = 'completed'"))
        reconciled = int(self.sql("SELECT count(*) FROM aipalq_events"
                                  " WHERE message = 'dispatched again by the reconciler'"))
        if os.environ.get("FAULT_DEBUG"):
            print(self.sql("SELECT task_id, at, from_status, to_status, attempt, message"
                           " FROM aipalq_events WHERE task_id IN (SELECT task_id FROM"
                           " aipalq_events WHERE to_status NOT IN ('running', 'completed')"
                           " LIMIT 10) ORDER BY task_id, id"), flush=True)
        stale = self.wait_redis_clean()
        line = {"scenario": scenario, "repetitions": reps, "tasks": total,
                "lost": total - done, "missing_rows": missing,
                "duplicated_completions": dup, "handler_reruns": max(runs - total, 0),
                "reconciled": reconciled,
                "states": states, "stale_redis": stale, **recovery, **(extra or {}),
                "date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count()}
        write_result(line)
        print(json.dumps(line), flush=True)
        self.assertEqual(missing, 0, f"task rows missing: {line}")
        self.assertEqual(done, total, f"not all completed: {line}")
        # Tasks of unanswered API requests may exist too; they must end completed as well.
        self.assertEqual(set(states), {"completed"}, f"not all completed: {line}")
        self.assertEqual(dup, 0, f"completion recorded twice: {line}")
        self.assertEqual(without_event, 0, f"completed without a completed event: {line}")
        self.assertEqual(stale, {}, f"stale dispatch entries in Redis: {line}")
        return line

    def wait_redis_clean(self, timeout: float = 15) -> Dict[str, int]:
        """The settle follows the PostgreSQL record: give it a moment, bounded."""
        deadline = time.monotonic() + timeout
        stale = self.stale_in_redis()
        while stale and time.monotonic() < deadline:
            time.sleep(0.25)
            stale = self.stale_in_redis()
        return stale

    # ------------------------------------------------------------------------- scenarios

    def worker_sigkill(self, pool: str) -> None:
        ids = self.enqueue(TASKS)
        self.start_monitor()
        worker = self.start_worker(pool)
        for rep in range(REPS):
            self.wait_completed(self.fault_point(rep, REPS, TASKS))
            children = worker.children()
            with self.fault():
                worker.signal(signal.SIGKILL)
                worker.proc.wait(10)
            self.assert_gone(children, "prefork children outlived their killed parent")
            worker = self.start_worker(pool)
        self.check_drain(f"worker SIGKILL ({pool})", REPS, ids)

    def assert_gone(self, pids: Sequence[int], what: str, timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        alive = list(pids)
        while alive and time.monotonic() < deadline:
            alive = [p for p in alive if Path(f"/proc/{p}").exists()
                     and " Z " not in Path(f"/proc/{p}/stat").read_text()]
            time.sleep(0.05)
        self.assertEqual(alive, [], what)

    def test_worker_sigkill_threads(self) -> None:
        """A thread-mode worker SIGKILLed mid-drain, a new one started after each kill."""
        self.worker_sigkill("threads")

    def test_worker_sigkill_prefork(self) -> None:
        """The same in prefork mode (the children die with their parent)."""
        self.worker_sigkill("prefork")

    def test_prefork_child_sigkill(self) -> None:
        """A prefork child SIGKILLed mid-task: its task is retried, the worker carries on."""
        ids = self.enqueue(TASKS, ms=max(SLEEP_MS, 20))
        self.start_monitor()
        worker = self.start_worker("prefork")
        self.assert_child_sockets_private(worker)
        kills: List[Tuple[int, float]] = []  # (child pid, wall time of the kill)
        for rep in range(REPS):
            self.wait_completed(self.fault_point(rep, REPS, TASKS))
            with self.fault():
                kills.append((self.kill_a_child(worker, rep), time.time()))
        self.assertTrue(worker.alive(), "the worker died with its child")
        retried = int(self.sql("SELECT count(*) FROM aipalq_events WHERE to_status = 'retrying'"))
        self.check_drain("prefork child SIGKILL", len(kills), ids, {"retried": retried})
        # Regression (lib/prefork.c spawn_lock): the task of a killed child is recorded as
        # crashed at once, not when some sibling that inherited its socket exits.
        for pid, at in kills:
            task = self.task_of_child(worker, pid)
            if task is None:
                continue  # the child was between tasks
            crashed = self.sql("SELECT extract(epoch FROM at) FROM aipalq_events WHERE task_id ="
                               f" '{task}' AND message = 'handler crashed' ORDER BY id LIMIT 1")
            self.assertTrue(crashed, f"the crash of task {task} (child {pid}) was not recorded")
            self.assertLess(float(crashed) - at, 5.0,
                            f"the crash of task {task} (child {pid}) was recorded late")

    def assert_child_sockets_private(self, worker: Daemon) -> None:
        """Regression (lib/prefork.c spawn_lock): a child's end of its socket pair is held by
        that child only. Sockets the parent holds too (its own ends, inherited by children
        forked later) are not at issue; a child end inherited by a sibling kept a dead child's
        slot from seeing end of file. Checked while all children are the first ones (the ends
        of a killed child, closed by the parent, may stay open in older siblings: harmless)."""
        def sockets(pid: int) -> Set[str]:
            found = set()
            for fd in Path(f"/proc/{pid}/fd").glob("*"):
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:"):
                    found.add(target)
            return found
        deadline = time.monotonic() + 10
        while len(worker.children()) < CONCURRENCY and time.monotonic() < deadline:
            time.sleep(0.05)
        parent = sockets(worker.pid)
        # Unix sockets only (socket pairs): TCP connections the parent closed after a fork
        # (start-up clients) stay open in the children of that time, harmlessly.
        with open("/proc/net/unix") as f:
            unix = {f"socket:[{line.split()[6]}]" for line in list(f)[1:] if len(line.split()) > 6}
        holders: Dict[str, List[int]] = {}
        for child in worker.children():
            for sock in (sockets(child) & unix) - parent:
                holders.setdefault(sock, []).append(child)
        shared = {s: pids for s, pids in holders.items() if len(pids) > 1}
        self.assertEqual(shared, {}, "prefork children share a child's socket end")

    def kill_a_child(self, worker: Daemon, rep: int) -> int:
        """SIGKILLs one child of the worker (another one each time); returns its pid. A child
        may exit by itself meanwhile (recycled after --max-tasks-per-child): then another."""
        for _ in range(20):
            children = worker.children()
            if children:
                pid = children[rep % len(children)]
                try:
                    os.kill(pid, signal.SIGKILL)
                    return pid
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        self.fail("the prefork worker has no child to kill")

    @staticmethod
    def task_of_child(worker: Daemon, pid: int) -> Optional[str]:
        """The task a prefork child was running when it died (its last log line says it
        started one and nothing after), else None."""
        last: Optional[dict] = None
        for line in worker.log_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("pid") == pid and str(entry.get("event", "")).startswith("task."):
                last = entry
        if last and last["event"] == "task.started":
            return str(last["task_id"])
        return None

    def test_redis_kill9_aof(self) -> None:
        """Redis SIGKILLed and restarted from its AOF (everysec) mid-drain."""
        self.start_monitor()
        self.start_worker("threads")
        self.start_worker("prefork")
        ids = self.enqueue(TASKS, slots=2 * CONCURRENCY)
        for rep in range(REPS):
            self.wait_completed(self.fault_point(rep, REPS, TASKS))
            with self.fault():
                self.svc.call("services_redis_kill9")
                time.sleep(0.5)
                self.svc.call("services_redis_start_again")
        self.check_drain("Redis SIGKILL + AOF restart", REPS, ids)

    def test_redis_flushall(self) -> None:
        """Redis emptied mid-drain: the reconciler dispatches the tasks again from PostgreSQL."""
        self.start_monitor()
        self.start_worker("threads")
        self.start_worker("threads")
        ids = self.enqueue(TASKS, slots=2 * CONCURRENCY)
        for rep in range(REPS):
            self.wait_completed(self.fault_point(rep, REPS, TASKS), timeout=DRAIN_TIMEOUT)
            with self.fault():
                redis_command(self.svc.redis_port, "FLUSHALL")
        line = self.check_drain("Redis FLUSHALL", REPS, ids)
        self.assertGreater(int(line["reconciled"]), 0, f"nothing was dispatched again: {line}")  # type: ignore[arg-type]

    def test_redis_sigstop(self) -> None:
        """Redis paused (SIGSTOP) longer than the lease, then resumed (SIGCONT)."""
        self.start_monitor()
        self.start_worker("threads")
        self.start_worker("prefork")
        ids = self.enqueue(TASKS, slots=2 * CONCURRENCY)
        pause = LEASE_S + 1.5
        for rep in range(REPS):
            self.wait_completed(self.fault_point(rep, REPS, TASKS))
            with self.fault():
                os.kill(self.svc.redis_pid, signal.SIGSTOP)
                try:
                    time.sleep(pause)
                finally:
                    os.kill(self.svc.redis_pid, signal.SIGCONT)
        self.check_drain("Redis SIGSTOP > lease", REPS, ids, {"pause_s": pause})

    def pg_restart(self, mode: str) -> None:
        self.start_monitor(TASKS + TASKS // 3)
        self.start_worker("threads")
        self.start_worker("prefork")
        ids = self.enqueue(TASKS, slots=2 * CONCURRENCY)
        _, port = self.start_api()
        load = SubmitLoad(self, port, limit=TASKS // 3)
        load.start()
        for rep in range(REPS):
            self.wait_completed(self.fault_point(rep, REPS, TASKS))
            with self.fault():
                self.svc.call("services_pg_restart", mode)
        load.finish()
        self.assert_api_healthy(port)
        extra = {"api_answered": len(load.answered), "api_unanswered": load.unanswered}
        self.check_drain(f"PostgreSQL restart ({mode})", REPS, ids + load.answered, extra)

    def assert_api_healthy(self, port: int, timeout: float = 30) -> None:
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            last = http_request(port, "GET", "/api/tasks/health")
            if last and last[0] == 200:
                return
            time.sleep(0.2)
        self.fail(f"aipal-api not healthy {timeout} s after the fault: {last}")

    def test_pg_restart_fast(self) -> None:
        """PostgreSQL stopped (-m fast) and started mid-drain; worker and API reconnect."""
        self.pg_restart("fast")

    def test_pg_restart_immediate(self) -> None:
        """The same with -m immediate (crash recovery at start)."""
        self.pg_restart("immediate")

    def test_api_sigkill(self) -> None:
        """aipal-api SIGKILLed mid-load of submits: every answered task id has its task."""
        self.start_worker("threads")
        api, port = self.start_api()
        load = SubmitLoad(self, port, limit=TASKS)
        self.start_monitor()
        load.start()
        for rep in range(REPS):
            load.wait_answered(self.fault_point(rep, REPS, TASKS))
            with self.fault():
                api.signal(signal.SIGKILL)
                api.proc.wait(10)
            api, port = self.start_api()
            load.port = port
        load.finish()
        extra = {"api_unanswered": load.unanswered}
        self.check_drain("aipal-api SIGKILL mid-submit", REPS, load.answered, extra)

    def test_sigterm_handover(self) -> None:
        """SIGTERM to workers with 4 s tasks in flight and a short shutdown timeout: the
        unfinished ones are handed back (not failed, not lost) and a later worker ends them."""
        long_ids: List[str] = []
        stop_s = 0.0  # the longest time from SIGTERM to the worker's exit
        short_ids = self.enqueue(TASKS)
        self.start_monitor(TASKS + REPS * CONCURRENCY)
        for rep in range(REPS):
            # Urgent long tasks, so that the worker is busy with them when SIGTERM comes.
            long_ids += self.enqueue(CONCURRENCY, ms=LONG_TASK_MS, priority=10)
            worker = self.start_worker("prefork" if rep % 2 else "threads",
                                       extra=["--shutdown-timeout", "0.5"])
            self.wait_long_running(long_ids)
            with self.fault():
                sent = time.monotonic()
                worker.signal(signal.SIGTERM)
                try:
                    code = worker.proc.wait(15)
                except subprocess.TimeoutExpired:
                    self.fail("the worker did not stop within 15 s of SIGTERM")
                stop_s = max(stop_s, time.monotonic() - sent)
            self.assertEqual(code, 0, worker.log_text()[-2000:])
        handed_back = int(self.sql("SELECT count(*) FROM aipalq_events"
                                   " WHERE from_status = 'running' AND to_status = 'pending'"))
        self.start_worker("threads", concurrency=CONCURRENCY * 2)
        line = self.check_drain("worker SIGTERM, long tasks handed back", REPS,
                                short_ids + long_ids,
                                {"handed_back": handed_back, "stop_s": round(stop_s, 2)})
        self.assertGreater(handed_back, 0, f"no task was handed back: {line}")

    def wait_long_running(self, long_ids: Sequence[str], timeout: float = 30) -> None:
        array = "'{" + ",".join(long_ids) + "}'::uuid[]"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = int(self.sql(f"SELECT count(*) FROM aipalq_tasks WHERE id = ANY({array})"
                             " AND status = 'running'"))
            if n >= CONCURRENCY:
                time.sleep(0.3)  # well into the 2 s
                return
            time.sleep(0.05)
        self.fail("the long tasks did not start")


class FaultMark:
    def __init__(self, test: FaultTest):
        self.test = test

    def __enter__(self) -> None:
        self.hit, self.done = self.test.in_flight()
        self.at = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        took = time.monotonic() - self.at
        after, done = self.test.in_flight()
        assert self.test.monitor is not None
        self.test.monitor.fault(sorted(self.hit | after), max(self.done, 0), self.at, took)


# ---------------------------------------------------------------------------- API submit load

def http_request(port: int, method: str, path: str, body: Optional[dict] = None,
                 timeout: float = 10) -> Optional[Tuple[int, dict]]:
    """One request; None when there was no answer (refused, reset, timed out)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Authorization": f"Bearer {RW_KEY}", "Content-Type": "application/json"}
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers=headers)
        r = conn.getresponse()
        data = r.read()
        try:
            parsed = json.loads(data) if data else {}
        except ValueError:
            parsed = {"raw": data[:200].decode(errors="replace")}
        return r.status, parsed
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


class SubmitLoad:
    """Two threads POSTing sleep tasks to /api/tasks until `limit` are answered with an id.
    `answered` holds those ids; `unanswered` counts requests without an answer or with an
    error status (those may or may not have created a task)."""

    def __init__(self, test: FaultTest, port: int, limit: int):
        self.test, self.port, self.limit = test, port, limit
        self.answered: List[str] = []
        self.unanswered = 0
        self.errors: Set[str] = set()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(2)]
        self.deadline = time.monotonic() + DRAIN_TIMEOUT

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def _run(self) -> None:
        body = {"type": "sleep", "params": {"ms": SLEEP_MS}, "max_retries": 10}
        while time.monotonic() < self.deadline:
            with self.lock:
                if len(self.answered) >= self.limit:
                    return
            r = http_request(self.port, "POST", "/api/tasks", body)
            with self.lock:
                if r and r[0] in (200, 202) and r[1].get("task_id"):
                    self.answered.append(r[1]["task_id"])
                    continue
                self.unanswered += 1
                if r:
                    self.errors.add(f"{r[0]} {json.dumps(r[1])[:200]}")
            time.sleep(0.05)

    def wait_answered(self, n: int) -> None:
        while time.monotonic() < self.deadline:
            with self.lock:
                if len(self.answered) >= n:
                    return
            time.sleep(0.02)
        self.test.fail(f"only {len(self.answered)} submits answered, {n} expected")

    def finish(self) -> None:
        for t in self.threads:
            t.join(max(self.deadline - time.monotonic(), 1))
        self.test.assertGreaterEqual(len(self.answered), self.limit,
                                     f"submits not all answered; errors: {self.errors}")


def write_result(line: Dict[str, object]) -> None:
    path = Path(RESULTS)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    unittest.main(verbosity=2)
