#!/usr/bin/env python3
"""aipal-api under wrk: the API scenarios of issue 9, as ../shared/bench's seedapi runs them.

Usage: api_bench.py --api PATH/aipal-api [options]        (JSON lines on stdout)

Starts aipal-api on a free port against AIPALQ_REDIS_URL / AIPALQ_DATABASE_URL (the
services bench/run.sh started), with one read-write API key (auth on, as deployed; wrk
sends the key), fills the table with --rows tasks through POST /api/tasks/batch and gives
them the seedapi's mix of states (70% completed with a result, 10% failed, 10% running,
10% pending), then runs, each after an unmeasured warm-up of the same load and each
`wrk -t2 -c64 -dDURATION --timeout 10s`:

  health   GET /api/tasks/health (PING Redis, SELECT 1)
  status   GET /api/tasks/status/{id}, a random existing id per request (wrk/status.lua)
  list     GET /api/tasks/list?limit=50 (a page of 50 with the total over --rows rows)
  submit   POST /api/tasks/ffe/plan-goal (wrk/submit.lua): each 2xx a committed row and a
           dispatch. Verified afterwards: the rows grew by exactly the 2xx responses the
           API logged, Redis's ready count by the same, and wrk's 2xx count is at most
           one per connection short (wrk does not wait for the requests in flight when
           it stops; the API completes them).

Each JSON line: req_per_s, p50_ms, p99_ms, errors (= non_2xx + socket errors), non_2xx,
socket_errors, the API's resident memory (api_rss_mb now, api_peak_rss_mb = VmHWM, the
peak since it started), and CPU: user+sys of the API, Redis and PostgreSQL (postmaster
and every backend) during the measured run, per request (cpu_us_per_request). A final
line, scenario "rss", has the API's peak resident memory after every scenario.

API_ARGS in the environment adds options to aipal-api's command line (trying its settings:
API_ARGS="--threads 2 --coalesce-threads 2"); the lines do not record them.

--no-seed --namespace NS uses the tasks already in the table (bench/run.sh's scale
scenario: status lookups with a million rows); ids are then sampled from the table.
Exit status 1 when a check failed (the other scenarios still run).
"""
import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
WRK_DIR = os.path.join(HERE, "wrk")
HZ = os.sysconf("SC_CLK_TCK")
SUBMIT_PATH = "/api/tasks/ffe/plan-goal"


def log(msg):
    print(f"api_bench: {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------- processes


def stat_fields(pid):
    """Fields after the command name of /proc/PID/stat (state is [0], ppid [1])."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def cpu_ticks(pid, children=False):
    f = stat_fields(pid)
    if not f:
        return 0
    t = int(f[11]) + int(f[12])  # utime, stime
    if children:
        t += int(f[13]) + int(f[14])  # cutime, cstime: its exited (waited-for) children
    return t


def postmaster_pid():
    data = os.environ.get("AIPALQ_PG_DATA")
    if not data:
        data = psql("SELECT setting FROM pg_settings WHERE name = 'data_directory'")
    with open(os.path.join(data, "postmaster.pid")) as f:
        return int(f.readline())


def pg_cpu_ticks(pm):
    """The postmaster (with its exited backends) and every live child process."""
    total = cpu_ticks(pm, children=True)
    for d in os.listdir("/proc"):
        if d.isdigit():
            f = stat_fields(d)
            if f and int(f[1]) == pm:
                total += cpu_ticks(d)
    return total


def proc_status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


class Cpu:
    """User+sys CPU of the API, Redis and PostgreSQL, in seconds, since start()."""

    def __init__(self, api_pid):
        self.api = api_pid
        self.redis = int(os.environ["AIPALQ_REDIS_PID"]) if os.environ.get("AIPALQ_REDIS_PID") else None
        self.pm = postmaster_pid()

    def sample(self):
        return {"api": cpu_ticks(self.api),
                "redis": cpu_ticks(self.redis) if self.redis else 0,
                "pg": pg_cpu_ticks(self.pm)}

    def start(self):
        self.t0 = self.sample()

    def stop(self):
        t1 = self.sample()
        return {k: (t1[k] - self.t0[k]) / HZ for k in t1}


def wait_idle(pid, max_s=20.0):
    """Until PID uses under 4% of a core for two 250 ms samples in a row: wrk stops
    without waiting for the requests in flight, which the API still completes."""
    t0 = time.monotonic()
    last, quiet = cpu_ticks(pid), 0
    while time.monotonic() - t0 < max_s:
        time.sleep(0.25)
        now = cpu_ticks(pid)
        quiet = quiet + 1 if now - last <= 0.01 * HZ else 0
        last = now
        if quiet >= 2:
            return True
    return False


# ----------------------------------------------------------------- PostgreSQL and HTTP


def psql(sql):
    out = subprocess.run(["psql", "-XqAt", "-v", "ON_ERROR_STOP=1", os.environ["AIPALQ_DATABASE_URL"],
                          "-c", sql], check=True, capture_output=True, text=True)
    return out.stdout.strip()


class Api:
    def __init__(self, binary, namespace, logdir, threads):
        self.key = secrets.token_hex(16)
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(logdir, "api.log")
        args = [binary, "--listen", f"127.0.0.1:{self.port}", "--namespace", namespace,
                # wrk's 64 connections come from one address; old ones may still be
                # closing when the next run connects
                "--max-connections-per-ip", "1024"]
        if threads:
            args += ["--threads", str(threads)]
        args += os.environ.get("API_ARGS", "").split()
        if os.geteuid() == 0:
            args.append("--allow-root")
        env = dict(os.environ, AIPALQ_API_KEYS_RW=self.key)
        env.pop("AIPALQ_API_KEYS_RO", None)
        env.pop("AIPAL_API_KEYS_FILE", None)
        env.pop("AIPAL_API_RATE_LIMIT", None)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=self.log)
        self.pid = self.proc.pid
        for _ in range(300):
            if self.proc.poll() is not None:
                raise SystemExit(f"api_bench: aipal-api exited ({self.proc.returncode}); see {self.log_path}")
            try:
                if self.http("GET", "/api/tasks/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise SystemExit("api_bench: aipal-api not healthy within 30 s")

    def http(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        hdrs = {"Authorization": "Bearer " + self.key}
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def ready(self, queue):
        st, q = self.http("GET", "/api/queues")
        if st != 200:
            raise SystemExit(f"api_bench: GET /api/queues: {st}")
        return next((x["ready"] for x in q["queues"] if x["name"] == queue), 0)

    def log_2xx_since(self, offset, path):
        """Requests to PATH the API logged with a 2xx status after byte OFFSET of its log."""
        self.log.flush()
        n = 0
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            for line in f:
                if b'"msg":"request"' not in line:
                    continue
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                if r.get("path") == path and 200 <= int(r.get("status", 0)) < 300:
                    n += 1
        return n

    def log_size(self):
        return os.path.getsize(self.log_path)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# ----------------------------------------------------------------- data


def seed(api, rows, namespace):
    """ROWS tasks through POST /api/tasks/batch, then the seedapi's mix of states."""
    have = int(psql(f"SELECT count(*) FROM aipalq_tasks WHERE namespace = '{namespace}'"))
    if have:
        raise SystemExit(f"api_bench: namespace {namespace} already has {have} tasks; "
                         "bench/run.sh starts from an empty database")
    levels = ("simple", "medium", "complex")
    i = 0
    while i < rows:
        batch = []
        for j in range(i, min(rows, i + 500)):
            batch.append({"type": "plan_ffe_goal", "priority": 1 + j % 10, "params": {
                "goal_id": f"goal-{j}", "user_id": f"user-{j % 500}",
                "goal_description": "Learn conversational Spanish well enough for a two-week trip",
                "complexity_level": levels[j % 3]}})
        st, body = api.http("POST", "/api/tasks/batch", {"tasks": batch})
        if st != 202:
            raise SystemExit(f"api_bench: seeding batch: {st} {body}")
        i += len(batch)
    # States as ../shared/bench/peers/seedapi/seed.sql gives them (by creation order).
    psql(f"""
WITH n AS (SELECT id, row_number() OVER (ORDER BY id) AS i FROM aipalq_tasks
           WHERE namespace = '{namespace}')
UPDATE aipalq_tasks t SET
  status = CASE WHEN n.i % 10 < 7 THEN 'completed' WHEN n.i % 10 = 7 THEN 'failed'
                WHEN n.i % 10 = 8 THEN 'running' ELSE 'pending' END,
  result = CASE WHEN n.i % 10 < 7 THEN jsonb_build_object('goal_id', 'goal-' || n.i,
           'blocks', 3 + n.i % 5, 'estimated_minutes', 25 * (3 + n.i % 5),
           'plan', jsonb_build_array('scope', 'practice', 'review')) END,
  error_message = CASE WHEN n.i % 10 = 7
                  THEN 'TimeoutError: model provider did not answer within 30s' END,
  attempts = CASE WHEN n.i % 10 = 9 THEN 0 WHEN n.i % 10 = 7 THEN 3 ELSE 1 END,
  started_at = CASE WHEN n.i % 10 <> 9 THEN t.created_at + interval '2 seconds' END,
  completed_at = CASE WHEN n.i % 10 <= 7 THEN t.created_at + interval '9 seconds' END
FROM n WHERE t.id = n.id""")
    psql("VACUUM ANALYZE aipalq_tasks")


def write_ids(path, namespace, sample):
    where = f"WHERE namespace = '{namespace}'"
    if sample:
        sql = f"SELECT id FROM aipalq_tasks {where} ORDER BY random() LIMIT {sample}"
    else:
        sql = f"SELECT id FROM aipalq_tasks {where}"
    ids = psql(sql)
    with open(path, "w") as f:
        f.write(ids + "\n")
    return ids.count("\n") + 1 if ids else 0


def preflight(api, ids_path, rows):
    problems = []
    with open(ids_path) as f:
        tid = f.readline().strip()
    st, t = api.http("GET", "/api/tasks/status/" + tid)
    if st != 200 or t.get("task_id") != tid:
        problems.append(f"status: {st} {t}")
    st, _ = api.http("GET", "/api/tasks/status/01a2234d-0000-7000-8000-000000000000")
    if st != 404:
        problems.append(f"status of an unknown id: {st}")
    if rows:
        st, page = api.http("GET", "/api/tasks/list?limit=50")
        if st != 200 or len(page.get("tasks", [])) != 50 or page.get("total_count") != rows:
            problems.append(f"list: {st} total_count={page.get('total_count')} (expected {rows})")
    for p in problems:
        log("preflight FAILED: " + p)
    return not problems


# ----------------------------------------------------------------- wrk


def run_wrk(args, name, secs, script, path, ids_path, logdir, api):
    out = os.path.join(logdir, f"wrk-{name}.txt")
    env = dict(os.environ, AIPALQ_BENCH_KEY=api.key, AIPALQ_BENCH_IDS=ids_path or "")
    cmd = ["wrk", f"-t{args.wrk_threads}", f"-c{args.connections}", f"-d{secs}s",
           "--timeout", "10s", "-s", os.path.join(WRK_DIR, script), api.base + path]
    with open(out, "w") as f:
        rc = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    if not wait_idle(api.pid):
        log(f"{name}: the API is still busy 20 s after wrk stopped")
    res = None
    with open(out) as f:
        for line in f:
            if line.startswith("WRK_RESULT "):
                res = json.loads(line[len("WRK_RESULT "):])
    if rc != 0 or res is None:
        log(f"{name}: wrk failed (exit {rc}); see {out}")
    return res


SCENARIOS = {
    # name: (wrk script, path, notes)
    "health": ("report.lua", "/api/tasks/health", "PING Redis + SELECT 1"),
    "status": ("status.lua", "/", "uniform random existing id per request"),
    "list": ("report.lua", "/api/tasks/list?limit=50",
             "limit=50 offset=0, newest first, with the total (index-only count)"),
    "submit": ("submit.lua", SUBMIT_PATH,
               "row committed (synchronous commit) + dispatched to Redis per request"),
}


def scenario(args, name, api, cpu, ids_path, logdir, table_rows):
    script, path, notes = SCENARIOS[name]
    if args.warmup > 0:
        run_wrk(args, name + "-warmup", args.warmup, script, path, ids_path, logdir, api)
    extra = {}
    if name == "submit":
        rows0 = int(psql(f"SELECT count(*) FROM aipalq_tasks WHERE namespace = '{args.namespace}'"))
        ready0 = api.ready("ffe_planning")
        log0 = api.log_size()
    cpu.start()
    res = run_wrk(args, name, args.duration, script, path, ids_path, logdir, api)
    used = cpu.stop()
    ok = res is not None
    out = {"system": "libaipalq", "variant": args.variant, "scenario": name}
    if res is None:
        out.update(req_per_s=None, p50_ms=None, p99_ms=None, errors=None,
                   notes="wrk produced no result")
    else:
        e, lat = res["errors"], res["latency_us"]
        secs = res["duration_us"] / 1e6
        sock = {k: e[k] for k in ("connect", "read", "write", "timeout")}
        requests = res["requests"]
        ok = e["status"] == 0 and sum(sock.values()) == 0 and requests > 0
        out.update(
            req_per_s=round(requests / secs, 1), p50_ms=round(lat["p50"] / 1000, 3),
            p99_ms=round(lat["p99"] / 1000, 3), errors=e["status"] + sum(sock.values()),
            notes=notes, non_2xx=e["status"], socket_errors=sock, requests=requests,
            ok_2xx=requests - e["status"], duration_s=round(secs, 2),
            p90_ms=round(lat["p90"] / 1000, 3), mean_ms=round(lat["mean"] / 1000, 3),
            max_ms=round(lat["max"] / 1000, 2),
            bytes_per_response=round(res["bytes"] / requests) if requests else None)
        total_cpu = sum(used.values())
        out.update(cpu_us_per_request=round(total_cpu * 1e6 / requests, 1) if requests else None,
                   api_cpu_us_per_request=round(used["api"] * 1e6 / requests, 1) if requests else None)
    if name == "submit" and res is not None:
        rows = int(psql(f"SELECT count(*) FROM aipalq_tasks WHERE namespace = '{args.namespace}'")) - rows0
        logged = api.log_2xx_since(log0, SUBMIT_PATH)
        dispatched = api.ready("ffe_planning") - ready0
        short = rows - out["ok_2xx"]
        verified = rows == logged == dispatched and 0 <= short <= args.connections
        extra = {"rows_inserted": rows, "api_logged_2xx": logged, "dispatched": dispatched,
                 "rows_minus_wrk_2xx": short, "verified": verified}
        if not verified:
            log(f"submit: verification FAILED: {extra}")
        ok = ok and verified
    out.update(extra)
    out.update(api_rss_mb=round(proc_status_kb(api.pid, "VmRSS") / 1024, 1),
               api_peak_rss_mb=round(proc_status_kb(api.pid, "VmHWM") / 1024, 1),
               api_cpu_s=round(used["api"], 2), redis_cpu_s=round(used["redis"], 2),
               pg_cpu_s=round(used["pg"], 2), rows_in_table=table_rows,
               connections=args.connections, wrk_threads=args.wrk_threads,
               api_threads=args.threads or "default", versions=args.versions)
    print(json.dumps(out), flush=True)
    if not ok:
        log(f"{name}: non-2xx responses, socket errors or no result")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--api", required=True, help="the aipal-api binary")
    ap.add_argument("--duration", type=int, default=int(os.environ.get("API_DURATION", "10")))
    ap.add_argument("--warmup", type=int, default=int(os.environ.get("API_WARMUP", "2")))
    ap.add_argument("--rows", type=int, default=int(os.environ.get("API_ROWS", "10000")))
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="aipal-api --threads (0: its default)")
    ap.add_argument("--scenarios", default="health,status,list,submit")
    ap.add_argument("--namespace", default="aipalq")
    ap.add_argument("--no-seed", action="store_true", help="use the tasks already in the table")
    ap.add_argument("--variant", default="aipal-api")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("api_bench: wrk is not installed (apt-get install wrk)")
    for v in ("AIPALQ_REDIS_URL", "AIPALQ_DATABASE_URL"):
        if not os.environ.get(v):
            raise SystemExit(f"api_bench: {v} is not set (bench/run.sh starts the services)")
    version = subprocess.run([args.api, "--version"], capture_output=True, text=True).stdout.strip()
    args.versions = version or "aipal-api"
    logdir = tempfile.mkdtemp(prefix="aipalq-api-bench.")
    api = Api(args.api, args.namespace, logdir, args.threads)
    good = True
    try:
        ids_path = os.path.join(logdir, "ids.txt")
        if args.no_seed:
            table_rows = int(psql("SELECT count(*) FROM aipalq_tasks"))
            n = write_ids(ids_path, args.namespace, 100000)
            log(f"{table_rows} rows in the table; {n} ids sampled for status")
        else:
            t0 = time.monotonic()
            seed(api, args.rows, args.namespace)
            table_rows = args.rows
            write_ids(ids_path, args.namespace, 0)
            log(f"seeded {args.rows} tasks in {time.monotonic() - t0:.1f} s")
        if not preflight(api, ids_path, 0 if args.no_seed else args.rows):
            good = False
        cpu = Cpu(api.pid)
        wait_idle(api.pid)
        for name in [s for s in args.scenarios.split(",") if s]:
            if name not in SCENARIOS:
                raise SystemExit(f"api_bench: unknown scenario {name}")
            log(f"{name}: wrk -t{args.wrk_threads} -c{args.connections} -d{args.duration}s")
            good &= scenario(args, name, api, cpu, ids_path, logdir, table_rows)
        print(json.dumps({"system": "libaipalq", "variant": args.variant, "scenario": "rss",
                          "req_per_s": None, "p50_ms": None, "p99_ms": None, "errors": None,
                          "notes": "aipal-api's peak resident memory (VmHWM) after the scenarios",
                          "api_rss_mb": round(proc_status_kb(api.pid, "VmRSS") / 1024, 1),
                          "api_peak_rss_mb": round(proc_status_kb(api.pid, "VmHWM") / 1024, 1),
                          "api_processes": 1}), flush=True)
    finally:
        api.stop()
    if api.proc.returncode not in (0, None):
        log(f"aipal-api exited with {api.proc.returncode}")
        good = False
    if good and not os.environ.get("KEEP_LOGS"):
        shutil.rmtree(logdir, ignore_errors=True)
    else:
        log(f"logs kept in {logdir}")
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
