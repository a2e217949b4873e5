"""Shared helpers of the Python binding tests.

Like the C integration tests, the suite works in a scratch PostgreSQL database
of its own (created from AIPALQ_DATABASE_URL through libpq, migrated, dropped
at exit) and every test in Redis namespaces of its own. Tests that need the
servers fail (they do not skip) when AIPALQ_REDIS_URL / AIPALQ_DATABASE_URL
are unset: run them through scripts/test.sh or after services_start.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import itertools
import os
import re
import subprocess
import sys
import threading
import time
import unittest
from pathlib import Path
from typing import Callable, List, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "bindings" / "python"))

import aipalq  # noqa: E402

# The schema version the library under test migrates to, as its header says.
SCHEMA_VERSION = int(
    re.search(r"#define AIPALQ_SCHEMA_VERSION (\d+)",
              (REPO / "include" / "aipal" / "version.h").read_text()).group(1))

_counter = itertools.count(1)
_lock = threading.Lock()
_scratch_url: Optional[str] = None
_original_url: Optional[str] = None


def require_services() -> None:
    missing = [v for v in ("AIPALQ_REDIS_URL", "AIPALQ_DATABASE_URL") if not os.environ.get(v)]
    if missing:
        raise AssertionError(
            f"{', '.join(missing)} not set: start the services (source scripts/services.sh; "
            "services_start DIR) or run scripts/test.sh"
        )


def unique(prefix: str) -> str:
    """A name unique to this process and call: namespaces, types, keys."""
    return f"{prefix}{os.getpid()}x{next(_counter)}"


def build_dir() -> Path:
    """The meson build directory: AIPALQ_BUILD_DIR, else the one holding the
    library named by AIPALQ_LIBRARY (BUILD/lib/libaipalq.so), else build/."""
    if os.environ.get("AIPALQ_BUILD_DIR"):
        return Path(os.environ["AIPALQ_BUILD_DIR"])
    lib = os.environ.get("AIPALQ_LIBRARY")
    if lib and os.path.sep in lib:
        return Path(lib).resolve().parent.parent
    return REPO / "build"


def example(name: str) -> Path:
    p = build_dir() / "examples" / name
    if not p.exists():
        raise AssertionError(f"{p} is not built (meson compile -C {build_dir()})")
    return p


def url_with_db(url: str, dbname: str) -> str:
    """The database URL (or conninfo string) with another database name."""
    if "://" not in url:
        return f"{url} dbname={dbname}"
    scheme, rest = url.split("://", 1)
    m = re.match(r"([^/?]*)(/[^?]*)?(\?.*)?$", rest)
    assert m
    return f"{scheme}://{m.group(1)}/{dbname}{m.group(3) or ''}"


def redis_url_with_db(url: str, db: int) -> str:
    m = re.match(r"(redis://[^/]*)(/\d*)?$", url)
    if not m:
        raise AssertionError(f"cannot change the database of Redis URL {url}")
    return f"{m.group(1)}/{db}"


class _PQ:
    """The few libpq calls the tests need (standard library only: ctypes)."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("pq") or "libpq.so.5"
        self.lib = ctypes.CDLL(name)
        self.lib.PQconnectdb.restype = ctypes.c_void_p
        self.lib.PQconnectdb.argtypes = [ctypes.c_char_p]
        self.lib.PQstatus.argtypes = [ctypes.c_void_p]
        self.lib.PQerrorMessage.restype = ctypes.c_char_p
        self.lib.PQerrorMessage.argtypes = [ctypes.c_void_p]
        self.lib.PQexec.restype = ctypes.c_void_p
        self.lib.PQexec.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        self.lib.PQresultStatus.argtypes = [ctypes.c_void_p]
        self.lib.PQresultErrorMessage.restype = ctypes.c_char_p
        self.lib.PQresultErrorMessage.argtypes = [ctypes.c_void_p]
        self.lib.PQclear.argtypes = [ctypes.c_void_p]
        self.lib.PQfinish.argtypes = [ctypes.c_void_p]
        self.lib.PQsetNoticeProcessor.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]

    def execute(self, url: str, *sqls: str) -> None:
        conn = self.lib.PQconnectdb(url.encode())
        try:
            if self.lib.PQstatus(conn) != 0:  # CONNECTION_OK
                raise AssertionError(f"cannot connect to {url}: {self.lib.PQerrorMessage(conn).decode()}")
            for sql in ("SET client_min_messages = warning",) + sqls:
                res = self.lib.PQexec(conn, sql.encode())
                st = self.lib.PQresultStatus(res)
                err = self.lib.PQresultErrorMessage(res).decode()
                self.lib.PQclear(res)
                if st not in (1, 2):  # PGRES_COMMAND_OK, PGRES_TUPLES_OK
                    raise AssertionError(f"{sql}: {err}")
        finally:
            self.lib.PQfinish(conn)


_pq: Optional[_PQ] = None


def sql(url: str, *statements: str) -> None:
    """Runs SQL statements on the database at url."""
    global _pq
    if _pq is None:
        _pq = _PQ()
    _pq.execute(url, *statements)


def create_db(tag: str) -> str:
    """Creates an empty database named after tag and this process; returns its URL."""
    require_services()
    base = _original_url or os.environ["AIPALQ_DATABASE_URL"]
    name = f"aipalq_t_py{tag}_{os.getpid()}"
    sql(base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}")
    return url_with_db(base, name)


def drop_db(url: str) -> None:
    base = _original_url or os.environ["AIPALQ_DATABASE_URL"]
    name = re.split(r"[/ ]dbname=|/", url)[-1].split("?")[0]
    try:
        sql(base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    except AssertionError as e:
        print(f"warning: {e}", file=sys.stderr)


def scratch_db() -> str:
    """The suite's scratch database (created and migrated once per process,
    dropped at exit); AIPALQ_DATABASE_URL points to it from then on, so that
    child processes (the C examples) use it too."""
    global _scratch_url, _original_url
    with _lock:
        if _scratch_url is None:
            require_services()
            _original_url = os.environ["AIPALQ_DATABASE_URL"]
            url = create_db("main")
            os.environ["AIPALQ_DATABASE_URL"] = url
            _scratch_url = url
            atexit.register(_drop_scratch)
            with aipalq.Client() as c:
                c.migrate()
        return _scratch_url


def _drop_scratch() -> None:
    global _scratch_url
    if _scratch_url and _original_url:
        os.environ["AIPALQ_DATABASE_URL"] = _original_url
        drop_db(_scratch_url)
        _scratch_url = None


def client(ns: Optional[str] = None, **kw) -> aipalq.Client:
    """A client on the scratch database in a namespace of its own."""
    scratch_db()
    return aipalq.Client(namespace=ns or unique("py"), **kw)


def wait_until(cond: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


class ServiceTest(unittest.TestCase):
    """A test case on the servers: self.ns is a fresh namespace per test and
    self.client a client in it."""

    def setUp(self) -> None:
        scratch_db()
        self.ns = unique("py")
        self.client = aipalq.Client(namespace=self.ns)
        self.addCleanup(self.client.close)
        self.procs: List[subprocess.Popen] = []
        self.addCleanup(self._stop_procs)

    def spawn(self, args: List[str], env: Optional[dict] = None, **kw) -> subprocess.Popen:
        p = subprocess.Popen(args, env={**os.environ, **(env or {})}, **kw)
        self.procs.append(p)
        return p

    def _stop_procs(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            for f in (p.stdout, p.stderr):
                if f:
                    f.close()
