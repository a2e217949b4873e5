"""Tests of the aipal-api daemon over real sockets (Python standard library only).

Each test class starts its own aipal-api (AIPAL_API_BIN, default build/daemons/api/aipal-api)
on a free port, against the Redis and PostgreSQL of AIPALQ_REDIS_URL / AIPALQ_DATABASE_URL,
in a Redis namespace of its own. No worker runs: the tests check what the API itself does.
The tests fail (they do not skip) when the services are not set: run them through
scripts/test.sh, or after `source scripts/services.sh; services_start DIR`.
"""

from __future__ import annotations

import atexit
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("AIPAL_API_BIN") or str(REPO / "build" / "daemons" / "api" / "aipal-api")
WORKER_BIN = os.environ.get("AIPAL_WORKER_BIN") or str(
    Path(BIN).resolve().parents[1] / "worker" / "aipal-worker")
RW_KEY = "rw-test-key-0123456789abcdef"
RO_KEY = "ro-test-key-0123456789abcdef"
ORIGIN = "https://dashboard.example"
QUEUES = ["default", "ari_analysis", "ffe_planning", "edm_analysis", "model_training", "maintenance"]
SEED_PATHS = [
    ("POST", "/api/tasks/ari/aggregate-snapshots"),
    ("POST", "/api/tasks/ffe/plan-goal"),
    ("POST", "/api/tasks/edm/batch-analysis"),
    ("GET", "/api/tasks/status/{task_id}"),
    ("GET", "/api/tasks/list"),
    ("GET", "/api/tasks/pending"),
    ("GET", "/api/tasks/failed"),
    ("GET", "/api/tasks/health"),
    ("DELETE", "/api/tasks/{task_id}"),
    ("POST", "/api/tasks/{task_id}/retry"),
]
MORE_PATHS = [
    ("POST", "/api/tasks"),
    ("POST", "/api/tasks/batch"),
    ("GET", "/api/workers"),
    ("GET", "/api/queues"),
    ("GET", "/api/tasks/events"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/"),
]
_unset = object()
_started: List[subprocess.Popen] = []


@atexit.register
def _kill_leftovers() -> None:
    """No daemon outlives the suite, whatever failed."""
    for proc in _started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def require_services() -> None:
    missing = [v for v in ("AIPALQ_REDIS_URL", "AIPALQ_DATABASE_URL") if not os.environ.get(v)]
    if missing:
        raise AssertionError(
            f"{', '.join(missing)} not set: start the services (source scripts/services.sh; "
            "services_start DIR) or run scripts/test.sh"
        )
    if not os.access(BIN, os.X_OK):
        raise AssertionError(f"{BIN} is not built (set AIPAL_API_BIN)")


def unique(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:10]}"


class Response:
    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body
        try:
            self.json: Any = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def header(self, name: str) -> Optional[str]:
        return self.headers.get(name)

    def __repr__(self) -> str:
        return f"<{self.status} {self.body[:300]!r}>"


class Daemon:
    """One aipal-api process."""

    def __init__(self, *args: str, env: Optional[Dict[str, str]] = None,
                 key: Optional[str] = RW_KEY, root_flag: bool = True):
        self.args = list(args)
        self.env = dict(os.environ if env is None else env)
        self.key = key
        self.root_flag = root_flag
        self.namespace = unique("apitest").replace("-", "_")
        self.lines: List[str] = []
        self.port = 0
        self.proc: Optional[subprocess.Popen] = None
        self._ready = threading.Event()

    def command(self) -> List[str]:
        cmd = [BIN, "--listen", "127.0.0.1:0", "--namespace", self.namespace, *self.args]
        if self.root_flag and os.geteuid() == 0:
            cmd.append("--allow-root")
        return cmd

    def start(self) -> "Daemon":
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=self.env)
        _started.append(self.proc)
        threading.Thread(target=self._read_log, daemon=True).start()
        if not self._ready.wait(20) or not self.port:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("aipal-api did not start:\n" + "".join(self.lines[-30:]))
        return self

    def _read_log(self) -> None:
        assert self.proc and self.proc.stderr
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace")
            self.lines.append(line)
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("msg") == "listening":
                self.port = int(entry["port"])
                self._ready.set()
        self._ready.set()

    def log_entries(self) -> List[Dict[str, Any]]:
        out = []
        for line in list(self.lines):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM; returns the exit status (1000 when a sanitizer reported anything)."""
        if not self.proc:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        time.sleep(0.05)  # the log reader drains the pipe
        if any("runtime error:" in line or "Sanitizer" in line for line in self.lines):
            return 1000
        return rc

    def connection(self, timeout: float = 15) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method: str, path: str, body: Any = None, *, key: Any = _unset,
                headers: Optional[Dict[str, str]] = None, raw: Optional[bytes] = None,
                content_type: Optional[str] = "application/json") -> Response:
        hdrs: Dict[str, str] = {}
        key = self.key if key is _unset else key
        if key:
            hdrs["Authorization"] = f"Bearer {key}"
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None and content_type:
            hdrs["Content-Type"] = content_type
        hdrs.update(headers or {})
        conn = self.connection()
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            return Response(resp.status, resp.headers, resp.read())
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Response:
        return self.request("POST", path, body, **kw)

    def submit(self, type_: str, params: Optional[dict] = None, **extra: Any) -> str:
        body = {"type": type_, "params": params or {}, **extra}
        r = self.post("/api/tasks", body)
        if r.status not in (200, 202):
            raise AssertionError(f"submit {type_}: {r}")
        return r.json["task_id"]


class ApiTestCase(unittest.TestCase):
    """A daemon with read-write and read-only keys, CORS for ORIGIN, no rate limit."""

    daemon: Daemon
    daemon_args: List[str] = ["--cors-origins", ORIGIN]

    @classmethod
    def setUpClass(cls) -> None:
        require_services()
        env = dict(os.environ)
        env["AIPALQ_API_KEYS_RW"] = RW_KEY
        env["AIPALQ_API_KEYS_RO"] = RO_KEY
        cls.daemon = Daemon(*cls.daemon_args, env=env).start()

    @classmethod
    def tearDownClass(cls) -> None:
        rc = cls.daemon.stop()
        if rc != 0:
            raise AssertionError(f"aipal-api exited {rc}:\n" + "".join(cls.daemon.lines[-20:]))

    def assertFieldError(self, r: Response, field: str, error: Optional[str] = None) -> None:
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.json["error"], "validation_error", r)
        fields = {d["field"]: d["error"] for d in r.json["detail"]}
        self.assertIn(field, fields, r)
        if error is not None:
            self.assertEqual(fields[field], error, r)

    def assertError(self, r: Response, status: int, code: Optional[str] = None) -> None:
        self.assertEqual(r.status, status, r)
        self.assertIsInstance(r.json, dict, r)
        self.assertIn("error", r.json)
        self.assertIn("request_id", r.json)
        self.assertEqual(r.json["request_id"], r.header("X-Request-Id"))
        if code:
            self.assertEqual(r.json["error"], code, r)


class SeedEndpointsTest(ApiTestCase):
    """The ten endpoints of the original, with its request and response models."""

    def test_submit_ari_aggregate(self) -> None:
        user = unique("u")
        r = self.daemon.post("/api/tasks/ari/aggregate-snapshots",
                             {"task_type": "ari_snapshot", "user_id": user, "priority": 7,
                              "parameters": {"time_window_hours": 48}})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(set(r.json) >= {"task_id", "status", "created_at", "message"}, True)
        self.assertEqual(r.json["status"], "pending")
        uuid.UUID(r.json["task_id"])
        t = self.daemon.get(f"/api/tasks/status/{r.json['task_id']}").json
        self.assertEqual(t["task_name"], "aggregate_ari_snapshots")
        self.assertEqual(t["queue"], "ari_analysis")
        self.assertEqual(t["priority"], 7)
        self.assertEqual(t["user_id"], user)
        self.assertEqual(t["params"], {"user_id": user, "time_window_hours": 48})

    def test_submit_ari_defaults(self) -> None:
        r = self.daemon.post("/api/tasks/ari/aggregate-snapshots",
                             {"task_type": "ari_snapshot", "parameters": {}})
        self.assertEqual(r.status, 200, r)
        t = self.daemon.get(f"/api/tasks/status/{r.json['task_id']}").json
        self.assertEqual(t["params"], {"time_window_hours": 24})
        self.assertEqual(t["priority"], 5)

    def test_submit_ari_validation(self) -> None:
        r = self.daemon.post("/api/tasks/ari/aggregate-snapshots",
                             {"task_type": "ari_snapshot",
                              "parameters": {"time_window_hours": "x", "bogus": 1}})
        self.assertFieldError(r, "parameters.time_window_hours",
                              "must be an integer between 1 and 8760")
        self.assertFieldError(r, "parameters.bogus", "unknown field")
        r = self.daemon.post("/api/tasks/ari/aggregate-snapshots",
                             {"task_type": "ari_snapshot", "parameters": {"time_window_hours": 0}})
        self.assertFieldError(r, "parameters.time_window_hours")

    def test_submit_request_model(self) -> None:
        path = "/api/tasks/edm/batch-analysis"
        self.assertFieldError(self.daemon.post(path, {"parameters": {}}), "task_type", "is required")
        self.assertFieldError(self.daemon.post(path, {"task_type": "edm", "priority": 11}),
                              "priority")
        self.assertFieldError(self.daemon.post(path, {"task_type": "edm", "priority": 0}),
                              "priority")
        self.assertFieldError(self.daemon.post(path, {"task_type": "edm", "extra": 1}), "extra",
                              "unknown field")
        self.assertFieldError(self.daemon.post(path, {"task_type": "edm", "parameters": []}),
                              "parameters", "must be an object")
        self.assertFieldError(self.daemon.post(path, [1, 2]), "body")

    def test_submit_ffe_plan_goal(self) -> None:
        user = unique("u")
        path = "/api/tasks/ffe/plan-goal"
        r = self.daemon.post(path, {"task_type": "ffe_planning", "user_id": user,
                                    "parameters": {"goal_id": "g1", "goal_description": "Ship it"}})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["message"], "FFE goal planning task submitted")
        t = self.daemon.get(f"/api/tasks/{r.json['task_id']}").json
        self.assertEqual(t["task_type"], "plan_ffe_goal")
        self.assertEqual(t["category"], "ffe_planning")
        self.assertEqual(t["params"]["user_id"], user)  # copied from the request
        self.assertEqual(t["params"]["complexity_level"], "medium")
        r = self.daemon.post(path, {"task_type": "ffe_planning", "user_id": user,
                                    "parameters": {"goal_id": "g1"}})
        self.assertFieldError(r, "parameters.goal_description", "is required")
        r = self.daemon.post(path, {"task_type": "ffe_planning", "user_id": user,
                                    "parameters": {"goal_id": "g1", "goal_description": "x",
                                                   "complexity_level": "huge"}})
        self.assertFieldError(r, "parameters.complexity_level",
                              "must be one of: simple, medium, complex")

    def test_submit_edm_batch_analysis(self) -> None:
        r = self.daemon.post("/api/tasks/edm/batch-analysis",
                             {"task_type": "edm_analysis",
                              "parameters": {"time_window_days": 3, "min_severity": "high"}})
        self.assertEqual(r.status, 200, r)
        t = self.daemon.get(f"/api/tasks/status/{r.json['task_id']}").json
        self.assertEqual(t["queue"], "edm_analysis")
        self.assertEqual(t["params"], {"time_window_days": 3, "min_severity": "high"})

    def test_status(self) -> None:
        tid = self.daemon.submit("echo", {"message": "hi"})
        r = self.daemon.get(f"/api/tasks/status/{tid}")
        self.assertEqual(r.status, 200, r)
        for field in ("task_id", "task_name", "task_type", "status", "user_id", "created_at",
                      "started_at", "completed_at", "result", "error_message", "attempts",
                      "duration_seconds", "queue", "progress", "error_detail"):
            self.assertIn(field, r.json)
        self.assertEqual(r.json["status"], "pending")
        self.assertEqual(r.json["attempts"], 0)
        self.assertIsNone(r.json["result"])
        self.assertIsNone(r.json["duration_seconds"])

    def test_status_unknown(self) -> None:
        self.assertError(self.daemon.get(f"/api/tasks/status/{uuid.uuid4()}"), 404, "not_found")
        self.assertError(self.daemon.get("/api/tasks/status/not-a-uuid"), 404, "not_found")
        self.assertError(self.daemon.get(f"/api/tasks/{uuid.uuid4()}"), 404, "not_found")

    def test_list_pagination(self) -> None:
        user = unique("u")
        ids = [self.daemon.submit("sleep", {"ms": i}, user_id=user) for i in range(5)]
        r = self.daemon.get(f"/api/tasks/list?user_id={user}&limit=2")
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["total_count"], r.json["limit"], r.json["offset"]), (5, 2, 0))
        self.assertEqual([t["task_id"] for t in r.json["tasks"]], ids[::-1][:2])
        r = self.daemon.get(f"/api/tasks/list?user_id={user}&limit=2&offset=4").json
        self.assertEqual([t["task_id"] for t in r["tasks"]], [ids[0]])
        r = self.daemon.get(f"/api/tasks/list?user_id={user}&offset=5").json
        self.assertEqual((r["tasks"], r["total_count"], r["limit"]), ([], 5, 20))
        r = self.daemon.get(f"/api/tasks/list?user_id={user}&order=oldest&limit=100").json
        self.assertEqual([t["task_id"] for t in r["tasks"]], ids)
        r = self.daemon.get(f"/api/tasks?user_id={user}&limit=1").json  # the REST alias
        self.assertEqual(r["total_count"], 5)

    def test_list_bad_query(self) -> None:
        for query, field in (("limit=0", "limit"), ("limit=101", "limit"), ("limit=x", "limit"),
                             ("offset=-1", "offset"), ("status=sleeping", "status"),
                             ("order=sideways", "order"), ("queue=bad%20name", "queue"),
                             ("task_type=a%2Fb", "task_type")):
            with self.subTest(query=query):
                self.assertFieldError(self.daemon.get(f"/api/tasks/list?{query}"), field)
        self.assertEqual(self.daemon.get("/api/tasks/list?limit=100").status, 200)
        self.assertEqual(self.daemon.get("/api/tasks/list?limit=1").status, 200)

    def test_list_filters(self) -> None:
        user = unique("u")
        a = self.daemon.submit("sleep", {"ms": 1}, user_id=user)
        b = self.daemon.submit("echo", {}, user_id=user)
        c = self.daemon.submit("cleanup_cache", {}, user_id=user)
        self.assertEqual(self.daemon.request("DELETE", f"/api/tasks/{b}").status, 200)
        q = f"/api/tasks/list?user_id={user}&limit=100"
        ids = lambda r: {t["task_id"] for t in r.json["tasks"]}  # noqa: E731
        self.assertEqual(ids(self.daemon.get(q + "&status=cancelled")), {b})
        self.assertEqual(ids(self.daemon.get(q + "&status=pending,cancelled")), {a, b, c})
        self.assertEqual(ids(self.daemon.get(q + "&task_type=sleep")), {a})
        self.assertEqual(ids(self.daemon.get(q + "&type=echo")), {b})
        self.assertEqual(ids(self.daemon.get(q + "&queue=maintenance")), {c})

    def test_pending_and_failed(self) -> None:
        self.daemon.submit("echo", {})
        r = self.daemon.get("/api/tasks/pending")
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["limit"], r.json["offset"]), (10, 0))
        self.assertGreaterEqual(r.json["total_count"], 1)
        self.assertTrue(all(t["status"] in ("pending", "scheduled", "retrying")
                            for t in r.json["tasks"]))
        r = self.daemon.get("/api/tasks/pending?limit=1&offset=0")
        self.assertEqual(len(r.json["tasks"]), 1)
        r = self.daemon.get("/api/tasks/failed?limit=5")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["limit"], 5)
        self.assertTrue(all(t["status"] == "failed" for t in r.json["tasks"]))
        self.assertFieldError(self.daemon.get("/api/tasks/failed?limit=500"), "limit")
        self.assertFieldError(self.daemon.get("/api/tasks/pending?offset=x"), "offset")

    def test_health(self) -> None:
        r = self.daemon.get("/api/tasks/health", key=None)
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["status"], r.json["redis"], r.json["postgres"]),
                         ("healthy", "ok", "ok"))

    def test_cancel_and_retry(self) -> None:
        tid = self.daemon.submit("sleep", {"ms": 10})
        r = self.daemon.request("DELETE", f"/api/tasks/{tid}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["task_id"], r.json["status"]), (tid, "cancelled"))
        self.assertIn("message", r.json)
        self.assertEqual(self.daemon.get(f"/api/tasks/{tid}").json["status"], "cancelled")
        r = self.daemon.request("DELETE", f"/api/tasks/{tid}")
        self.assertError(r, 409, "illegal_transition")
        self.assertIn("cancelled", r.json["detail"])
        r = self.daemon.post(f"/api/tasks/{tid}/retry")
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["task_id"], r.json["status"]), (tid, "pending"))
        self.assertEqual(self.daemon.get(f"/api/tasks/{tid}").json["status"], "pending")
        self.assertError(self.daemon.post(f"/api/tasks/{tid}/retry"), 409, "illegal_transition")
        self.assertError(self.daemon.request("DELETE", f"/api/tasks/{uuid.uuid4()}"), 404)
        self.assertError(self.daemon.post(f"/api/tasks/{uuid.uuid4()}/retry"), 404)


class GenericSubmitTest(ApiTestCase):
    """POST /api/tasks and /api/tasks/batch, and the catalog behind them."""

    def types(self) -> List[dict]:
        r = self.daemon.get("/api/tasks/types")
        self.assertEqual(r.status, 200, r)
        return r.json["types"]

    def test_types(self) -> None:
        types = {t["name"]: t for t in self.types()}
        self.assertEqual(len(types), 17)
        for name in ("aggregate_ari_snapshots", "analyze_ari_trends", "plan_ffe_goal",
                     "track_ffe_progress", "edm_batch_analysis", "edm_track_resolutions",
                     "edm_detect_misinformation", "finetune_model", "evaluate_model",
                     "benchmark_model", "archive_audit_logs", "maintain_database",
                     "cleanup_cache", "enforce_retention_policy", "echo", "sleep", "fail"):
            self.assertIn(name, types)
        self.assertEqual(types["finetune_model"]["hard_time_limit_ms"], 3600000)
        self.assertEqual(types["track_ffe_progress"]["max_retries"], 2)
        self.assertEqual(types["track_ffe_progress"]["backoff_base_ms"], 30000)
        self.assertEqual(types["sleep"]["params_schema"]["properties"]["ms"]["maximum"], 3600000)

    def test_every_type_example_is_accepted_and_routed(self) -> None:
        for t in self.types():
            with self.subTest(type=t["name"]):
                r = self.daemon.post("/api/tasks", {"type": t["name"], "params": t["example"]})
                self.assertEqual(r.status, 202, r)
                self.assertEqual((r.json["type"], r.json["queue"], r.json["status"]),
                                 (t["name"], t["queue"], "pending"))
                task = self.daemon.get(f"/api/tasks/{r.json['task_id']}").json
                self.assertEqual(task["queue"], t["queue"])
                self.assertEqual(task["priority"], t["priority"])

    def test_options(self) -> None:
        user = unique("u")
        r = self.daemon.post("/api/tasks", {"type": "echo", "params": {}, "priority": 9,
                                            "queue": "maintenance", "delay_ms": 60000,
                                            "user_id": user, "max_retries": 0})
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json["status"], "scheduled")
        t = self.daemon.get(f"/api/tasks/{r.json['task_id']}").json
        self.assertEqual((t["priority"], t["queue"], t["status"], t["user_id"], t["max_retries"]),
                         (9, "maintenance", "scheduled", user, 0))

    def test_aliases(self) -> None:
        r = self.daemon.post("/api/tasks", {"task_type": "sleep", "parameters": {"ms": 5}})
        self.assertEqual(r.status, 202, r)
        r = self.daemon.post("/api/tasks", {"type": "sleep", "task_type": "sleep"})
        self.assertFieldError(r, "type")

    def test_idempotency(self) -> None:
        key = unique("k")
        first = self.daemon.post("/api/tasks", {"type": "echo", "params": {},
                                                "idempotency_key": key})
        self.assertEqual((first.status, first.json["created"]), (202, True))
        again = self.daemon.post("/api/tasks", {"type": "echo", "params": {},
                                                "idempotency_key": key})
        self.assertEqual((again.status, again.json["created"]), (200, False), again)
        self.assertEqual(again.json["task_id"], first.json["task_id"])
        self.assertEqual(again.json["status"], "pending")
        hkey = unique("h")
        a = self.daemon.post("/api/tasks", {"type": "echo"}, headers={"Idempotency-Key": hkey})
        b = self.daemon.post("/api/tasks", {"type": "echo"}, headers={"Idempotency-Key": hkey})
        self.assertEqual((a.status, b.status), (202, 200))
        self.assertEqual(a.json["task_id"], b.json["task_id"])

    def test_validation(self) -> None:
        cases = [
            ({"params": {}}, "type", "is required"),
            ({"type": "nope"}, "type", None),
            ({"type": "sleep", "params": {"ms": -1}}, "params.ms",
             "must be an integer between 0 and 3600000"),
            ({"type": "sleep", "params": {"ms": 1, "x": 2}}, "params.x", "unknown field"),
            ({"type": "sleep", "bogus": 1}, "bogus", "unknown field"),
            ({"type": "sleep", "priority": 11}, "priority", None),
            ({"type": "cleanup_cache", "priority": 6}, "priority",
             "must be an integer between 1 and 5"),
            ({"type": "sleep", "queue": "nowhere"}, "queue", None),
            ({"type": "sleep", "delay_ms": -5}, "delay_ms", None),
            ({"type": "sleep", "params": "x"}, "params", "must be an object"),
            ({"type": "fail", "params": {"retryable": "yes"}}, "params.retryable",
             "must be true or false"),
            ({"type": "edm_detect_misinformation",
              "params": {"user_id": "u", "interaction_ids": ["a", 7]}},
             "params.interaction_ids[1]", "must be a string of 1 to 128 characters"),
            ({"type": "enforce_retention_policy", "params": {"policy": {"cats": 1}}},
             "params.policy.cats", "unknown field"),
            ({"type": "finetune_model", "params": {"user_id": "u"}}, "params.model_name",
             "is required"),
            ({"type": "sleep", "idempotency_key": ""}, "idempotency_key", None),
        ]
        for body, field, error in cases:
            with self.subTest(body=body):
                self.assertFieldError(self.daemon.post("/api/tasks", body), field, error)

    def test_multiple_errors_listed(self) -> None:
        r = self.daemon.post("/api/tasks", {"type": "finetune_model", "priority": 0,
                                            "params": {"training_samples": 0, "zzz": 1}})
        fields = {d["field"] for d in r.json["detail"]}
        self.assertTrue({"priority", "params.training_samples", "params.zzz", "params.user_id",
                         "params.model_name"} <= fields, r)

    def test_body_errors(self) -> None:
        self.assertFieldError(self.daemon.request("POST", "/api/tasks"), "body")
        self.assertError(self.daemon.post("/api/tasks", raw=b'{"type":'), 400, "invalid_json")
        self.assertError(self.daemon.post("/api/tasks", raw=b'{"type":"echo"} x'), 400,
                         "invalid_json")
        self.assertError(self.daemon.post("/api/tasks", raw=b'{"type":"echo\xff"}'), 400,
                         "invalid_json")
        self.assertFieldError(self.daemon.post("/api/tasks", [1]), "body")

    def test_batch(self) -> None:
        user = unique("u")
        items = [{"type": "sleep", "params": {"ms": i}, "user_id": user} for i in range(3)]
        r = self.daemon.post("/api/tasks/batch", {"tasks": items})
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.json["count"], 3)
        ids = [t["task_id"] for t in r.json["tasks"]]
        self.assertEqual(len(set(ids)), 3)
        listed = self.daemon.get(f"/api/tasks/list?user_id={user}").json
        self.assertEqual(listed["total_count"], 3)

    def test_batch_all_or_nothing(self) -> None:
        user = unique("u")
        items = [
            {"type": "sleep", "params": {"ms": 1}, "user_id": user},
            {"type": "sleep", "params": {"ms": "slow"}, "user_id": user},
            {"type": "nope", "user_id": user},
        ]
        r = self.daemon.post("/api/tasks/batch", {"tasks": items})
        self.assertFieldError(r, "tasks[1].params.ms", "must be an integer between 0 and 3600000")
        self.assertFieldError(r, "tasks[2].type")
        self.assertEqual(self.daemon.get(f"/api/tasks/list?user_id={user}").json["total_count"], 0)
        self.assertFieldError(self.daemon.post("/api/tasks/batch", {"tasks": []}), "tasks")
        self.assertFieldError(self.daemon.post("/api/tasks/batch",
                                               {"tasks": [{"type": "echo"}] * 501}), "tasks")
        self.assertFieldError(self.daemon.post("/api/tasks/batch", {"tasks": [], "x": 1}), "tasks")
        self.assertFieldError(self.daemon.post("/api/tasks/batch", {"tasks": [3]}), "tasks[0]")


class CoalescingTest(ApiTestCase):
    """Status lookups and submissions that arrive together are served by one query or one
    commit (daemons/api/coalesce.h): each request still gets its own answer. Two threads per
    kind here, so that batches also run side by side."""

    daemon_args = ["--coalesce-threads", "2"]

    def burst(self, calls: List[Any]) -> List[Response]:
        """Runs the calls (each a function of no argument returning a Response) at once."""
        gate = threading.Barrier(len(calls))
        out: List[Any] = [None] * len(calls)

        def run(i: int) -> None:
            gate.wait()
            try:
                out[i] = calls[i]()
            except Exception as e:  # noqa: BLE001 - reported as the result
                out[i] = e
        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for r in out:
            self.assertIsInstance(r, Response, r)
        return out

    def coalesced(self, kind: str) -> Dict[str, int]:
        text = self.daemon.get("/metrics").body.decode()
        counts = {}
        for name in ("batches", "requests"):
            prefix = f'aipal_api_coalesced_{name}_total{{kind="{kind}"}} '
            line = next(l for l in text.splitlines() if l.startswith(prefix))
            counts[name] = int(line[len(prefix):])
        return counts

    def test_lookups_together_each_get_their_task(self) -> None:
        ids = [self.daemon.submit("echo", {"data": {"n": i}}) for i in range(24)]
        missing = str(uuid.uuid4())
        before = self.coalesced("status")
        for _ in range(3):
            paths = [f"/api/tasks/status/{i}" for i in ids] + [
                f"/api/tasks/status/{ids[0].upper()}", f"/api/tasks/status/{missing}",
                "/api/tasks/status/not-a-uuid", f"/api/tasks/{ids[5]}"]
            rs = self.burst([lambda p=p: self.daemon.get(p) for p in paths])
            for n, (i, r) in enumerate(zip(ids, rs)):
                self.assertEqual(r.status, 200, r)
                self.assertEqual((r.json["task_id"], r.json["params"]), (i, {"data": {"n": n}}))
            self.assertEqual((rs[24].status, rs[24].json["task_id"]), (200, ids[0]))
            self.assertError(rs[25], 404, "not_found")
            self.assertError(rs[26], 404, "not_found")
            self.assertEqual(rs[27].json["task_id"], ids[5])
        after = self.coalesced("status")
        served = after["requests"] - before["requests"]
        # every well-formed lookup went through the coalescer (the malformed ones do not)
        self.assertGreaterEqual(served, 3 * 27)
        self.assertGreater(after["batches"], before["batches"])

    def test_submissions_together_each_committed(self) -> None:
        key = unique("idem")
        calls: List[Any] = []
        for i in range(30):
            calls.append(lambda i=i: self.daemon.post(
                "/api/tasks/ffe/plan-goal",
                {"task_type": "ffe_planning", "user_id": f"u{i}",
                 "parameters": {"goal_id": f"g{i}", "goal_description": "together"}}))
            calls.append(lambda i=i: self.daemon.post(
                "/api/tasks", {"type": "echo", "params": {"data": {"i": i}}}))
        for _ in range(4):  # the same idempotency key in one burst: one task
            calls.append(lambda: self.daemon.post("/api/tasks", {"type": "echo", "params": {}},
                                                  headers={"Idempotency-Key": key}))
        before = self.coalesced("submit")
        rs = self.burst(calls)
        seed_ids, echo_ids = [], []
        for i in range(30):
            seed, echo = rs[2 * i], rs[2 * i + 1]
            self.assertEqual(seed.status, 200, seed)
            self.assertEqual(seed.json["status"], "pending")
            self.assertEqual(echo.status, 202, echo)
            seed_ids.append(seed.json["task_id"])
            echo_ids.append(echo.json["task_id"])
        idem = rs[60:]
        self.assertEqual(len({r.json["task_id"] for r in idem}), 1, idem)
        self.assertEqual(sorted(r.status for r in idem), [200, 200, 200, 202], idem)
        self.assertEqual(len(set(seed_ids + echo_ids)), 60)
        for i, (a, b) in enumerate(zip(seed_ids, echo_ids)):
            t = self.daemon.get(f"/api/tasks/status/{a}").json
            self.assertEqual((t["task_type"], t["params"]["goal_id"], t["params"]["user_id"]),
                             ("plan_ffe_goal", f"g{i}", f"u{i}"))
            self.assertEqual(self.daemon.get(f"/api/tasks/status/{b}").json["params"],
                             {"data": {"i": i}})
        after = self.coalesced("submit")
        self.assertEqual(after["requests"] - before["requests"], 64)
        self.assertGreater(after["batches"], before["batches"])

    def test_a_refused_submission_among_others(self) -> None:
        # \u0000 is valid JSON, but a NUL character cannot be stored in PostgreSQL (nor kept
        # by the JSON parser): it is refused up front, and the others are accepted.
        calls = [lambda i=i: self.daemon.post(
            "/api/tasks", {"type": "echo", "params": {"data": {"i": i}}}) for i in range(12)]
        calls.append(lambda: self.daemon.post("/api/tasks", raw=b'{"type": "echo", '
                                              b'"params": {"message": "a\\u0000b"}}'))
        # an escaped backslash before u0000 is plain text, accepted
        calls.append(lambda: self.daemon.post("/api/tasks", raw=b'{"type": "echo", '
                                              b'"params": {"message": "a\\\\u0000b"}}'))
        for _ in range(3):
            rs = self.burst(calls)
            for r in rs[:12]:
                self.assertEqual(r.status, 202, r)
            self.assertError(rs[12], 400, "invalid_json")
            self.assertIn("u0000", rs[12].json["detail"])
            self.assertEqual(rs[13].status, 202, rs[13])
            t = self.daemon.get(f"/api/tasks/{rs[13].json['task_id']}").json
            self.assertEqual(t["params"]["message"], "a\\u0000b")


class UncoalescedTest(ApiTestCase):
    """--coalesce-max 0: every request makes its own round trip, with the same answers."""

    daemon_args = ["--coalesce-max", "0"]

    def test_lookup_and_submit(self) -> None:
        r = self.daemon.post("/api/tasks/ari/aggregate-snapshots",
                             {"task_type": "aggregate_ari_snapshots", "parameters": {}})
        self.assertEqual(r.status, 200, r)
        t = self.daemon.get(f"/api/tasks/status/{r.json['task_id']}")
        self.assertEqual((t.status, t.json["task_type"]), (200, "aggregate_ari_snapshots"))
        self.assertError(self.daemon.get(f"/api/tasks/status/{uuid.uuid4()}"), 404, "not_found")
        r = self.daemon.post("/api/tasks", {"type": "echo", "params": {"data": {"x": 1}}},
                             headers={"Idempotency-Key": unique("k")})
        self.assertEqual(r.status, 202, r)
        text = self.daemon.get("/metrics").body.decode()
        self.assertNotIn('aipal_api_coalesced_batches_total{kind="status"}', text)


class SystemEndpointsTest(ApiTestCase):
    def test_workers(self) -> None:
        r = self.daemon.get("/api/workers")
        self.assertEqual(r.status, 200, r)
        self.assertIsInstance(r.json["workers"], list)
        self.assertEqual(r.json["count"], len(r.json["workers"]))
        self.assertFieldError(self.daemon.get("/api/workers?dead_after_ms=5"), "dead_after_ms")

    def test_queues(self) -> None:
        self.daemon.submit("sleep", {"ms": 1})
        r = self.daemon.get("/api/queues")
        self.assertEqual(r.status, 200, r)
        by_name = {q["name"]: q for q in r.json["queues"]}
        for q in QUEUES:
            self.assertIn(q, by_name)
            for field in ("ready", "scheduled", "leased", "states"):
                self.assertIn(field, by_name[q])
        self.assertGreaterEqual(by_name["default"]["ready"], 1)
        self.assertGreaterEqual(by_name["default"]["states"].get("pending", 0), 1)

    def test_metrics(self) -> None:
        self.daemon.get("/api/tasks/list")
        self.daemon.submit("sleep", {"ms": 1})
        r = self.daemon.get("/metrics", key=None)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.header("Content-Type").startswith("text/plain"))
        text = r.body.decode()
        self.assertIn('aipal_api_requests_total{route="/api/tasks/list",method="GET",status="200"}',
                      text)
        self.assertIn("# TYPE aipal_api_request_duration_seconds histogram", text)
        self.assertIn('aipal_api_request_duration_seconds_bucket{route="/api/tasks/list",le="+Inf"}',
                      text)
        for q in QUEUES:
            self.assertIn(f'aipal_queue_depth{{queue="{q}",kind="ready"}}', text)
        # the task counts are refreshed in the background once metrics are scraped
        deadline = time.time() + 10
        while 'aipal_tasks{type="sleep",state="pending"}' not in text and time.time() < deadline:
            time.sleep(0.3)
            text = self.daemon.get("/metrics").body.decode()
        self.assertIn('aipal_tasks{type="sleep",state="pending"}', text)
        for line in text.splitlines():  # every sample line is NAME{labels} VALUE or NAME VALUE
            if line and not line.startswith("#"):
                float(line.rsplit(" ", 1)[1])

    def test_request_id_and_log(self) -> None:
        r = self.daemon.get("/api/tasks/list", headers={"X-Request-Id": "my-request-42"})
        self.assertEqual(r.header("X-Request-Id"), "my-request-42")
        r = self.daemon.get("/api/queues")
        rid = r.header("X-Request-Id")
        self.assertTrue(rid and len(rid) >= 16)
        deadline = time.time() + 5
        while time.time() < deadline:
            hits = [e for e in self.daemon.log_entries() if e.get("request_id") == rid]
            if hits:
                break
            time.sleep(0.05)
        self.assertEqual(len(hits), 1)
        e = hits[0]
        self.assertEqual((e["method"], e["path"], e["status"]), ("GET", "/api/queues", 200))
        self.assertIsInstance(e["duration_ms"], (int, float))
        self.assertNotIn(RW_KEY, "".join(self.daemon.lines))

    def test_index_and_docs_pages(self) -> None:
        r = self.daemon.get("/", key=None)
        self.assertEqual(r.status, 200)
        self.assertIn(b'href="/docs"', r.body)
        r = self.daemon.get("/docs", key=None)
        self.assertEqual(r.status, 200)
        self.assertTrue(r.header("Content-Type").startswith("text/html"))
        self.assertIn(b"/openapi.json", r.body)
        # self-contained: no external scripts or styles
        self.assertNotIn(b"<script src", r.body)
        self.assertNotIn(b"https://", r.body)
        self.assertNotIn(b"http://", r.body)

    def test_head(self) -> None:
        r = self.daemon.request("HEAD", "/api/tasks/health")
        self.assertEqual((r.status, r.body), (200, b""))


class HttpErrorsTest(ApiTestCase):
    def test_unknown_route(self) -> None:
        for path in ("/nope", "/api/tasks/status", "/api/taskss", "/api/tasks/x/y/z"):
            with self.subTest(path=path):
                self.assertError(self.daemon.get(path), 404, "not_found")

    def test_method_not_allowed(self) -> None:
        for method, path, allowed in (("PUT", "/api/tasks/list", "GET"),
                                      ("DELETE", "/api/tasks/health", "GET"),
                                      ("PATCH", "/api/tasks", "POST"),
                                      ("GET", "/api/tasks/batch", "POST"),
                                      ("PUT", f"/api/tasks/{uuid.uuid4()}", "DELETE")):
            with self.subTest(method=method, path=path):
                r = self.daemon.request(method, path)
                self.assertError(r, 405, "method_not_allowed")
                self.assertIn(allowed, r.header("Allow"))

    def test_unsupported_media_type(self) -> None:
        r = self.daemon.post("/api/tasks", raw=b'{"type":"echo"}', content_type="text/plain")
        self.assertError(r, 415, "unsupported_media_type")
        r = self.daemon.post("/api/tasks", raw=b'{"type":"echo"}', content_type=None)
        self.assertError(r, 415, "unsupported_media_type")
        r = self.daemon.post("/api/tasks", raw=b'{"type":"echo"}',
                             content_type="application/json; charset=utf-8")
        self.assertEqual(r.status, 202, r)

    def raw_exchange(self, head: bytes, body: bytes = b"") -> bytes:
        with socket.create_connection(("127.0.0.1", self.daemon.port), timeout=15) as s:
            s.sendall(head)
            try:
                s.sendall(body)
            except OSError:
                pass  # the server may answer and close before reading a body it refuses
            out = b""
            while b"\r\n\r\n" not in out:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
            return out

    def test_body_limit_from_headers(self) -> None:
        # refused from the headers alone: the body is never read
        head = (b"POST /api/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Authorization: Bearer " + RW_KEY.encode() + b"\r\n"
                b"Content-Length: 50000000\r\n\r\n")
        out = self.raw_exchange(head)
        self.assertTrue(out.startswith(b"HTTP/1.1 413"), out[:200])

    def test_body_limit_content_length(self) -> None:
        # somewhat over the limit: read and dropped, so the client gets its 413 cleanly
        big = b'{"type":"echo","params":{"message":"' + b"a" * (2 << 20) + b'"}}'
        r = self.daemon.post("/api/tasks", raw=big)
        self.assertError(r, 413, "payload_too_large")
        big = b'{"type":"echo","params":{"message":"' + b"a" * (1 << 20) + b'"}}'
        self.assertEqual(self.daemon.post("/api/tasks", raw=big).status, 400)  # params > 1 MiB

    def test_body_limit_chunked(self) -> None:
        conn = self.daemon.connection()
        chunks = [b"[" + b"1," * 65536 for _ in range(20)]  # about 2.6 MB, no length given
        try:
            conn.request("POST", "/api/tasks", body=iter(chunks), encode_chunked=True,
                         headers={"Content-Type": "application/json",
                                  "Authorization": f"Bearer {RW_KEY}",
                                  "Transfer-Encoding": "chunked"})
            resp = conn.getresponse()
            self.assertEqual(resp.status, 413)
            resp.read()
        finally:
            conn.close()

    def test_params_within_limit(self) -> None:
        r = self.daemon.post("/api/tasks", {"type": "echo",
                                            "params": {"message": "a" * 10000}})
        self.assertEqual(r.status, 202, r)


class AuthTest(ApiTestCase):
    def test_missing_key(self) -> None:
        r = self.daemon.get("/api/tasks/list", key=None)
        self.assertError(r, 401, "unauthorized")
        self.assertTrue(r.header("WWW-Authenticate").startswith("Bearer"))
        self.assertError(self.daemon.post("/api/tasks", {"type": "echo"}, key=None), 401)

    def test_wrong_key(self) -> None:
        self.assertError(self.daemon.get("/api/tasks/list", key="not-a-key"), 401, "unauthorized")
        self.assertError(self.daemon.get("/api/tasks/list", key=RW_KEY + "x"), 401)
        self.assertError(self.daemon.get("/api/tasks/list", key=RW_KEY[:-1]), 401)
        r = self.daemon.get("/api/tasks/list", key=None, headers={"Authorization": f"Basic {RW_KEY}"})
        self.assertError(r, 401)

    def test_read_only_key(self) -> None:
        self.assertEqual(self.daemon.get("/api/tasks/list", key=RO_KEY).status, 200)
        self.assertEqual(self.daemon.get("/api/queues", key=RO_KEY).status, 200)
        r = self.daemon.post("/api/tasks", {"type": "echo"}, key=RO_KEY)
        self.assertError(r, 403, "forbidden")
        tid = self.daemon.submit("echo", {})
        self.assertError(self.daemon.request("DELETE", f"/api/tasks/{tid}", key=RO_KEY), 403)
        self.assertError(self.daemon.post(f"/api/tasks/{tid}/retry", key=RO_KEY), 403)
        self.assertError(self.daemon.post("/api/tasks/ari/aggregate-snapshots",
                                          {"task_type": "x"}, key=RO_KEY), 403)

    def test_read_write_key(self) -> None:
        self.assertEqual(self.daemon.get("/api/tasks/list", key=RW_KEY).status, 200)
        self.assertEqual(self.daemon.post("/api/tasks", {"type": "echo"}, key=RW_KEY).status, 202)

    def test_open_endpoints(self) -> None:
        for path in ("/api/tasks/health", "/metrics", "/openapi.json", "/docs", "/"):
            with self.subTest(path=path):
                self.assertEqual(self.daemon.get(path, key=None).status, 200)

    def test_keys_file_and_closed_metrics(self) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".keys", delete=False) as f:
            f.write("# keys\n\nro:file-ro-key-1234567890\nrw:file-rw-key-1234567890\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIPALQ_API_KEYS")}
        d = Daemon("--keys-file", f.name, "--open-metrics=false", env=env,
                   key="file-rw-key-1234567890").start()
        try:
            self.assertError(d.get("/metrics", key=None), 401)
            self.assertError(d.get("/api/tasks/health", key=None), 401)
            self.assertEqual(d.get("/metrics", key="file-ro-key-1234567890").status, 200)
            self.assertEqual(d.get("/api/tasks/health", key="file-ro-key-1234567890").status, 200)
            self.assertEqual(d.post("/api/tasks", {"type": "echo"}).status, 202)
            self.assertError(d.post("/api/tasks", {"type": "echo"},
                                    key="file-ro-key-1234567890"), 403)
            self.assertEqual(d.get("/docs", key=None).status, 200)
        finally:
            self.assertEqual(d.stop(), 0)
            os.unlink(f.name)
        log = "".join(d.lines)
        self.assertNotIn("file-rw-key", log)
        self.assertNotIn("file-ro-key", log)

    def test_bad_keys_file(self) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".keys", delete=False) as f:
            f.write("rw:good-key-123456\nadmin:secret-value-99\n")
        d = Daemon("--keys-file", f.name)
        proc = subprocess.run(d.command(), capture_output=True, timeout=30)
        os.unlink(f.name)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn(b"line 2", proc.stderr)
        self.assertNotIn(b"secret-value-99", proc.stderr)

    def test_auth_off_without_keys(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIPALQ_API_KEYS")}
        d = Daemon(env=env, key=None).start()
        try:
            self.assertEqual(d.get("/api/tasks/list").status, 200)
            self.assertEqual(d.post("/api/tasks", {"type": "echo"}).status, 202)
        finally:
            self.assertEqual(d.stop(), 0)
        warnings = [e for e in d.log_entries() if e.get("level") == "warning"]
        self.assertTrue(any("authentication is OFF" in e["msg"] for e in warnings), warnings)


class CorsTest(ApiTestCase):
    def test_preflight_allowed(self) -> None:
        r = self.daemon.request("OPTIONS", "/api/tasks", key=None, headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), ORIGIN)
        self.assertIn("POST", r.header("Access-Control-Allow-Methods"))
        self.assertIn("Authorization", r.header("Access-Control-Allow-Headers"))
        self.assertIn("Content-Type", r.header("Access-Control-Allow-Headers"))

    def test_preflight_refused(self) -> None:
        r = self.daemon.request("OPTIONS", "/api/tasks", key=None, headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        self.assertEqual(r.status, 403, r)
        self.assertIsNone(r.header("Access-Control-Allow-Origin"))

    def test_simple_requests(self) -> None:
        r = self.daemon.get("/api/tasks/list", headers={"Origin": ORIGIN})
        self.assertEqual(r.header("Access-Control-Allow-Origin"), ORIGIN)
        self.assertIn("X-Request-Id", r.header("Access-Control-Expose-Headers"))
        r = self.daemon.get("/api/tasks/list", headers={"Origin": "https://evil.example"})
        self.assertEqual(r.status, 200)
        self.assertIsNone(r.header("Access-Control-Allow-Origin"))
        # errors carry the CORS headers too, so a browser can read them
        r = self.daemon.get("/api/tasks/list", key=None, headers={"Origin": ORIGIN})
        self.assertEqual((r.status, r.header("Access-Control-Allow-Origin")), (401, ORIGIN))

    def test_plain_options(self) -> None:
        r = self.daemon.request("OPTIONS", "/api/tasks/list", key=None)
        self.assertEqual(r.status, 204)
        self.assertIn("GET", r.header("Allow"))
        self.assertError(self.daemon.request("OPTIONS", "/nope", key=None), 404)


class RateLimitTest(ApiTestCase):
    daemon_args = ["--rate-limit", "2", "--rate-burst", "4"]

    def test_limit(self) -> None:
        statuses = []
        retry_after = None
        for _ in range(12):
            r = self.daemon.get("/api/tasks/types")
            statuses.append(r.status)
            if r.status == 429:
                retry_after = r.header("Retry-After")
                self.assertError(r, 429, "rate_limited")
        self.assertIn(200, statuses)
        self.assertIn(429, statuses)
        self.assertLessEqual(statuses.count(200), 6)
        self.assertTrue(retry_after and int(retry_after) >= 1)
        # per client: another key has its own bucket
        self.assertEqual(self.daemon.get("/api/tasks/types", key=RO_KEY).status, 200)
        # probes are not limited
        for _ in range(8):
            self.assertEqual(self.daemon.get("/api/tasks/health").status, 200)
        time.sleep(1.6)
        self.assertEqual(self.daemon.get("/api/tasks/types").status, 200)

    def test_unauthenticated_clients_limited_by_address(self) -> None:
        statuses = [self.daemon.get("/api/tasks/list", key="wrong-%d" % i).status
                    for i in range(12)]
        self.assertIn(401, statuses)
        self.assertIn(429, statuses)


class OpenApiTest(ApiTestCase):
    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        r = cls.daemon.get("/openapi.json", key=None)
        assert r.status == 200, r
        cls.doc = r.json

    def test_document(self) -> None:
        doc = self.doc
        self.assertEqual(doc["openapi"], "3.0.3")
        self.assertIn("version", doc["info"])
        self.assertEqual(doc["components"]["securitySchemes"]["bearerAuth"]["scheme"], "bearer")
        # every $ref resolves
        def walk(node: Any) -> None:
            if isinstance(node, dict):
                ref = node.get("$ref")
                if ref:
                    target: Any = doc
                    for part in ref[2:].split("/"):
                        self.assertIn(part, target, ref)
                        target = target[part]
                for v in node.values():
                    walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)
        walk(doc)

    def test_every_route_is_documented(self) -> None:
        for method, path in SEED_PATHS + MORE_PATHS:
            with self.subTest(path=path, method=method):
                self.assertIn(path, self.doc["paths"])
                self.assertIn(method.lower(), self.doc["paths"][path])

    def concrete(self, path: str, task_id: str) -> str:
        return path.replace("{task_id}", task_id)

    def test_every_documented_path_answers(self) -> None:
        for path, item in self.doc["paths"].items():
            for method, op in item.items():
                with self.subTest(method=method, path=path):
                    tid = self.daemon.submit("sleep", {"ms": 1})
                    body = None
                    if "requestBody" in op:
                        media = op["requestBody"]["content"]["application/json"]
                        schema = self.resolve(media["schema"])
                        body = schema.get("example")
                        if body is None and "examples" in media:
                            body = next(iter(media["examples"].values()))["value"]
                        if body is None and "oneOf" in schema:
                            body = self.resolve(schema["oneOf"][0])["example"]
                        if body is None and path.endswith("/batch"):
                            body = {"tasks": [{"type": "echo", "params": {}}]}
                        self.assertIsNotNone(body, f"no example body for {method} {path}")
                    if path == "/api/tasks/events":
                        r = self.stream_head(self.concrete(path, tid))
                    else:
                        r = self.daemon.request(method.upper(), self.concrete(path, tid), body)
                    self.assertNotEqual(r.status, 404, r)
                    self.assertLess(r.status, 500, r)
                    self.assertIn(str(r.status), op["responses"], r)
                    # another method on a documented path is a 405, never a 404
                    r = self.daemon.request("PUT", self.concrete(path, tid))
                    if "put" not in item:
                        self.assertEqual(r.status, 405, r)

    def stream_head(self, path: str) -> Response:
        conn = self.daemon.connection(timeout=5)
        conn.request("GET", path, headers={"Authorization": f"Bearer {RW_KEY}"})
        resp = conn.getresponse()
        status, headers = resp.status, resp.headers
        conn.close()
        return Response(status, headers, b"")

    def resolve(self, node: Dict[str, Any]) -> Dict[str, Any]:
        while "$ref" in node:
            target: Any = self.doc
            for part in node["$ref"][2:].split("/"):
                target = target[part]
            node = target
        return node

    def test_examples_for_every_type(self) -> None:
        schemas = self.doc["components"]["schemas"]
        types = self.daemon.get("/api/tasks/types").json["types"]
        examples = self.doc["paths"]["/api/tasks"]["post"]["requestBody"]["content"][
            "application/json"]["examples"]
        self.assertEqual(len(types), 17)
        for t in types:
            with self.subTest(type=t["name"]):
                params = schemas[f"Params_{t['name']}"]
                self.assertIn("example", params)
                self.assertEqual(params["additionalProperties"], False)
                self.assertIn(t["name"], examples)
                r = self.daemon.post("/api/tasks", examples[t["name"]]["value"])
                self.assertEqual(r.status, 202, r)
                r = self.daemon.post("/api/tasks", {"type": t["name"], "params": params["example"]})
                self.assertEqual(r.status, 202, r)

    def test_errors_documented(self) -> None:
        post = self.doc["paths"]["/api/tasks"]["post"]["responses"]
        for status in ("202", "200", "400", "401", "403", "413", "415", "500", "503"):
            self.assertIn(status, post)
        cancel = self.doc["paths"]["/api/tasks/{task_id}"]["delete"]["responses"]
        for status in ("200", "404", "409"):
            self.assertIn(status, cancel)
        self.assertIn("503", self.doc["paths"]["/api/tasks/health"]["get"]["responses"])


class EventStreamTest(ApiTestCase):
    def open_stream(self, query: str, key: Optional[str] = RW_KEY,
                    use_query_key: bool = False) -> "Stream":
        return Stream(self.daemon, query, key, use_query_key)

    def test_cancel_is_streamed(self) -> None:
        tid = self.daemon.submit("sleep", {"ms": 1000})
        with self.open_stream(f"task_id={tid}") as s:
            r = self.daemon.request("DELETE", f"/api/tasks/{tid}")
            self.assertEqual(r.status, 200, r)
            # The task's "created" event may come later than its transitions
            # (new tasks are polled apart, with the status they have by then).
            ev = s.wait_for(lambda e: e.get("kind") == "transition" and e.get("status") == "cancelled")
            self.assertEqual((ev["task_id"], ev["kind"], ev["from"], ev["type"], ev["queue"]),
                             (tid, "transition", "pending", "sleep", "default"))
            self.assertIsInstance(ev["event_id"], int)
            self.daemon.post(f"/api/tasks/{tid}/retry")
            ev = s.wait_for(lambda e: e.get("kind") == "transition" and e.get("status") == "pending")
            self.assertEqual(ev["from"], "cancelled")

    def test_a_short_task_streams_its_start_with_its_outcome(self) -> None:
        """A task run by a real aipal-worker: one that ends within the worker's
        start hold has one event, its outcome, which carries when the delivery
        started; one recorded apart has it on its running event."""
        cmd = [WORKER_BIN, "--namespace", self.daemon.namespace, "--pool", "threads",
               "--concurrency", "2", "--queues", "default", "--no-scheduler",
               "--health-port", "0", "--log-level", "warn"]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        worker = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _started.append(worker)
        self.addCleanup(lambda: (worker.kill(), worker.wait()))
        with self.open_stream("queue=default") as s:
            tid = self.daemon.submit("echo", {"message": "hi"})
            ev = s.wait_for(lambda e: e.get("task_id") == tid and e.get("status") == "completed")
            runs = [e for e in s.events if e.get("task_id") == tid and e.get("status") == "running"]
            if runs:  # recorded apart: the running event has the start
                self.assertIsNotNone(runs[0]["started_at"])
                self.assertIsNone(ev["started_at"])
            else:
                self.assertEqual(ev["from"], "pending")
                self.assertIsNotNone(ev["started_at"])
                self.assertLessEqual(ev["started_at"], ev["at"])

    def test_new_tasks_are_streamed(self) -> None:
        queue_filter = "queue=model_training"
        with self.open_stream(queue_filter, use_query_key=True) as s:
            tid = self.daemon.submit("evaluate_model", {"user_id": "u", "model_name": "m"})
            ev = s.wait_for(lambda e: e.get("task_id") == tid)
            self.assertEqual((ev["kind"], ev["status"], ev["type"]),
                             ("created", "pending", "evaluate_model"))
            other = self.daemon.submit("echo", {})  # another queue: filtered out
            self.daemon.request("DELETE", f"/api/tasks/{tid}")
            ev = s.wait_for(lambda e: e.get("task_id") == tid and e.get("status") == "cancelled")
            self.assertNotIn(other, [e.get("task_id") for e in s.events])

    def test_stream_needs_key(self) -> None:
        r = self.daemon.get("/api/tasks/events", key=None)
        self.assertError(r, 401)
        self.assertFieldError(self.daemon.get("/api/tasks/events?task_id=abc"), "task_id")

    def test_shutdown_ends_streams(self) -> None:
        env = dict(os.environ, AIPALQ_API_KEYS_RW=RW_KEY)
        d = Daemon(env=env).start()
        try:
            s = Stream(d, "", RW_KEY, False)
            time.sleep(0.3)
            started = time.time()
            self.assertEqual(d.stop(), 0)
            self.assertLess(time.time() - started, 10)
            s.close()
        finally:
            d.stop()
        self.assertTrue(any(e.get("msg") == "stopped" for e in d.log_entries()))


class Stream:
    """A client of the event stream, read on a thread."""

    def __init__(self, daemon: Daemon, query: str, key: Optional[str], use_query_key: bool):
        self.events: List[Dict[str, Any]] = []
        self.raw = ""
        self.cond = threading.Condition()
        self.conn = daemon.connection(timeout=30)
        headers = {}
        path = "/api/tasks/events?" + query
        if key and use_query_key:
            path += f"&access_token={key}"
        elif key:
            headers["Authorization"] = f"Bearer {key}"
        self.conn.request("GET", path, headers=headers)
        self.resp = self.conn.getresponse()
        if self.resp.status != 200:
            raise AssertionError(f"stream: {self.resp.status} {self.resp.read()!r}")
        assert self.resp.getheader("Content-Type").startswith("text/event-stream")
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        self.wait_raw(": connected")

    def _read(self) -> None:
        try:
            while True:
                chunk = self.resp.read1(4096)
                if not chunk:
                    break
                with self.cond:
                    self.raw += chunk.decode()
                    while "\n\n" in self.raw:
                        frame, self.raw = self.raw.split("\n\n", 1)
                        self._frame(frame)
                        self.cond.notify_all()
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            pass  # closed by the test
        with self.cond:
            self.cond.notify_all()

    def _frame(self, frame: str) -> None:
        lines = frame.split("\n")
        data = [line[6:] for line in lines if line.startswith("data: ")]
        if "event: task" in lines and data:
            self.events.append(json.loads("".join(data)))
        for line in lines:
            if line.startswith(":"):
                self.events.append({"comment": line})

    def wait_raw(self, text: str, timeout: float = 10) -> None:
        deadline = time.time() + timeout
        with self.cond:
            while not any(text in e.get("comment", "") for e in self.events):
                if time.time() > deadline:
                    raise AssertionError(f"stream never sent {text!r}")
                self.cond.wait(0.2)

    def wait_for(self, pred, timeout: float = 10) -> Dict[str, Any]:
        deadline = time.time() + timeout
        with self.cond:
            while True:
                for e in self.events:
                    if "comment" not in e and pred(e):
                        return e
                if time.time() > deadline:
                    raise AssertionError(f"no matching event; got {self.events}")
                self.cond.wait(0.2)

    def close(self) -> None:
        try:
            self.conn.sock and self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.conn.close()

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class DegradedTest(unittest.TestCase):
    """Redis unreachable: health names it, and nothing internal leaks."""

    @classmethod
    def setUpClass(cls) -> None:
        require_services()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed_port = s.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIPALQ_API_KEYS")}
        cls.daemon = Daemon("--redis-url", f"redis://127.0.0.1:{closed_port}/0", env=env,
                            key=None).start()

    @classmethod
    def tearDownClass(cls) -> None:
        assert cls.daemon.stop() == 0, "".join(cls.daemon.lines[-20:])

    def test_health_names_redis(self) -> None:
        r = self.daemon.get("/api/tasks/health")
        self.assertEqual(r.status, 503, r)
        self.assertEqual((r.json["status"], r.json["redis"], r.json["postgres"]),
                         ("unhealthy", "down", "ok"))

    def test_backend_errors_do_not_leak(self) -> None:
        r = self.daemon.get("/api/queues")
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.json["error"], "service_unavailable")
        self.assertEqual(set(r.json), {"error", "detail", "request_id"})
        self.assertNotIn("127.0.0.1", r.json["detail"])
        deadline = time.time() + 5
        while True:
            logged = [e for e in self.daemon.log_entries()
                      if e.get("request_id") == r.json["request_id"]]
            if any(e.get("level") == "error" for e in logged) or time.time() > deadline:
                break
            time.sleep(0.05)
        self.assertTrue(any(e.get("level") == "error" for e in logged), logged)


class StartupTest(unittest.TestCase):
    def setUp(self) -> None:
        require_services()

    def test_help(self) -> None:
        out = subprocess.run([BIN, "--help"], capture_output=True, timeout=10)
        self.assertEqual(out.returncode, 0)
        for flag in (b"--listen", b"--keys-file", b"--rate-limit", b"--cors-origins",
                     b"--threads", b"--allow-root", b"--open-metrics"):
            self.assertIn(flag, out.stdout)

    def test_bad_flag(self) -> None:
        out = subprocess.run([BIN, "--listen", "nonsense"], capture_output=True, timeout=10)
        self.assertEqual(out.returncode, 2)

    @unittest.skipUnless(os.geteuid() == 0, "only meaningful as root")
    def test_refuses_root(self) -> None:
        d = Daemon(root_flag=False)
        out = subprocess.run(d.command(), capture_output=True, timeout=10)
        self.assertEqual(out.returncode, 2)
        self.assertIn(b"--allow-root", out.stderr)

    def test_refuses_without_database(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        d = Daemon("--database-url", f"postgresql://nobody@127.0.0.1:{port}/none")
        out = subprocess.run(d.command(), capture_output=True, timeout=30)
        self.assertEqual(out.returncode, 1)
        self.assertIn(b"refusing to start", out.stderr)

    def test_sigterm_drains_and_exits_zero(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIPALQ_API_KEYS")}
        d = Daemon(env=env, key=None).start()
        results: List[int] = []

        def slow_client() -> None:
            # a request whose body arrives slowly is open when SIGTERM comes
            conn = d.connection()
            body = json.dumps({"type": "echo", "params": {}}).encode()
            conn.putrequest("POST", "/api/tasks")
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders()
            conn.send(body[:5])
            time.sleep(1.0)
            conn.send(body[5:])
            results.append(conn.getresponse().status)
            conn.close()

        t = threading.Thread(target=slow_client)
        t.start()
        time.sleep(0.4)
        self.assertEqual(d.stop(), 0)
        t.join(10)
        self.assertEqual(results, [202])
        msgs = [e.get("msg") for e in d.log_entries()]
        self.assertIn("SIGTERM received: draining open requests", msgs)
        self.assertEqual(msgs[-1], "stopped")


if __name__ == "__main__":
    unittest.main(verbosity=2)
