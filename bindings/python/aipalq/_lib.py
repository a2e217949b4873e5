"""Loading libaipalq and declaring the C signatures.

The library is looked up, in this order:

1. ``AIPALQ_LIBRARY``: an environment variable naming the shared object (a
   path, or a name the dynamic loader can resolve). When it is set nothing
   else is tried, so a wrong value is an error rather than a silent fallback.
2. The installed library: ``libaipalq.so.1`` through the dynamic loader
   (``LD_LIBRARY_PATH``, the ``ldconfig`` cache, the default directories),
   then ``ctypes.util.find_library("aipalq")`` and the usual prefixes
   (``/usr/local/lib``, ``/usr/lib`` and their multiarch directories).
3. The build tree of a source checkout: ``build/lib/libaipalq.so`` relative to
   the repository that contains this package (``bindings/python/aipalq``).

Whatever is found must report the same major version as the bindings were
written for (``aipalq_version()``), and at least the minor version they need;
otherwise :class:`aipalq.LibraryVersionError` is raised. Nothing is loaded at
import time: the first call that needs the library loads it (or
:func:`load` does), so ``import aipalq`` always succeeds.

Every function is declared with its exact ``argtypes`` and ``restype``.
Handles are ``c_void_p``; strings the library owns are returned as
``c_char_p`` (copied into Python bytes at once); strings the caller must free
are returned as ``c_void_p`` and released with ``aipalq_free``. The library is
loaded with :class:`ctypes.CDLL`, so every call releases the GIL while it runs
in C: a call blocked on Redis or PostgreSQL does not stop other Python
threads.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from ctypes import (
    CFUNCTYPE,
    POINTER,
    c_char_p,
    c_int,
    c_int64,
    c_size_t,
    c_uint,
    c_void_p,
)
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .errors import LibraryNotFoundError, LibraryVersionError

#: The major version of the C ABI these bindings are written for.
EXPECTED_MAJOR = 1
#: The oldest minor version (within EXPECTED_MAJOR) that has every function used here.
MINIMUM_MINOR = 0

ENV_VAR = "AIPALQ_LIBRARY"
SONAME = "libaipalq.so.1"

#: Buffer size for a task id (36 characters and the NUL).
ID_SIZE = 37

# aipalq_status codes used by the bindings themselves.
OK = 0
EMPTY = 1

# void (*aipalq_handler_fn)(aipalq_job *job, void *userdata)
HANDLER_FN = CFUNCTYPE(None, c_void_p, c_void_p)
# void (*aipalq_soft_limit_fn)(aipalq_job *job, void *userdata)
SOFT_LIMIT_FN = CFUNCTYPE(None, c_void_p, c_void_p)

_i64p = POINTER(c_int64)
_intp = POINTER(c_int)

# name: (restype, argtypes). The order follows the headers.
_SIGNATURES = {
    # version, status, states
    "aipalq_version": (c_uint, []),
    "aipalq_version_string": (c_char_p, []),
    "aipalq_strerror": (c_char_p, [c_int]),
    "aipalq_status_name": (c_char_p, [c_int]),
    "aipalq_state_name": (c_char_p, [c_int]),
    "aipalq_state_parse": (c_int, [c_char_p, _intp]),
    "aipalq_state_is_final": (c_int, [c_int]),
    "aipalq_state_transition_allowed": (c_int, [c_int, c_int]),
    # client
    "aipalq_client_new": (c_void_p, [c_char_p, c_char_p]),
    "aipalq_client_free": (None, [c_void_p]),
    "aipalq_client_errmsg": (c_char_p, [c_void_p]),
    "aipalq_client_errcode": (c_int, [c_void_p]),
    "aipalq_client_set_namespace": (c_int, [c_void_p, c_char_p]),
    "aipalq_client_set_timeouts": (c_int, [c_void_p, c_int64, c_int64]),
    "aipalq_client_set_synchronous_commit": (c_int, [c_void_p, c_int]),
    "aipalq_client_set_list_total_max_age": (c_int, [c_void_p, c_int64]),
    "aipalq_client_connect": (c_int, [c_void_p]),
    "aipalq_ping": (c_int, [c_void_p, _intp, _intp]),
    "aipalq_migrate": (c_int, [c_void_p]),
    "aipalq_schema_version": (c_int, [c_void_p, _intp]),
    # task types
    "aipalq_type_define": (c_int, [c_void_p, c_char_p, c_char_p]),
    "aipalq_type_set_priority": (c_int, [c_void_p, c_char_p, c_int]),
    "aipalq_type_set_max_retries": (c_int, [c_void_p, c_char_p, c_int]),
    "aipalq_type_set_backoff": (c_int, [c_void_p, c_char_p, c_int64, c_int64, c_int]),
    "aipalq_type_set_time_limits": (c_int, [c_void_p, c_char_p, c_int64, c_int64]),
    "aipalq_type_set_result_ttl": (c_int, [c_void_p, c_char_p, c_int64]),
    "aipalq_types_define_json": (c_int, [c_void_p, c_char_p]),
    "aipalq_types_json": (c_void_p, [c_void_p]),
    "aipalq_free": (None, [c_void_p]),
    # enqueue options
    "aipalq_opts_new": (c_void_p, []),
    "aipalq_opts_free": (None, [c_void_p]),
    "aipalq_opts_set_priority": (c_int, [c_void_p, c_int]),
    "aipalq_opts_set_queue": (c_int, [c_void_p, c_char_p]),
    "aipalq_opts_set_delay_ms": (c_int, [c_void_p, c_int64]),
    "aipalq_opts_set_run_at_ms": (c_int, [c_void_p, c_int64]),
    "aipalq_opts_set_idempotency_key": (c_int, [c_void_p, c_char_p]),
    "aipalq_opts_set_max_retries": (c_int, [c_void_p, c_int]),
    "aipalq_opts_set_user_id": (c_int, [c_void_p, c_char_p]),
    # enqueue
    "aipalq_enqueue": (c_int, [c_void_p, c_char_p, c_char_p, c_void_p, c_char_p, _intp]),
    "aipalq_batch_new": (c_void_p, []),
    "aipalq_batch_free": (None, [c_void_p]),
    "aipalq_batch_add": (c_int, [c_void_p, c_char_p, c_char_p, c_void_p]),
    "aipalq_batch_size": (c_size_t, [c_void_p]),
    "aipalq_batch_id": (c_char_p, [c_void_p, c_size_t]),
    "aipalq_batch_created": (c_int, [c_void_p, c_size_t]),
    "aipalq_batch_clear": (None, [c_void_p]),
    "aipalq_enqueue_batch": (c_int, [c_void_p, c_void_p]),
    # (client, PGconn *, ...): the caller's libpq connection, as an address
    "aipalq_enqueue_tx": (c_int, [c_void_p, c_void_p, c_char_p, c_char_p, c_void_p, c_char_p, _intp]),
    "aipalq_enqueue_batch_tx": (c_int, [c_void_p, c_void_p, c_void_p]),
    "aipalq_relay_outbox": (c_int, [c_void_p, c_int, _i64p]),
    "aipalq_reconcile": (c_int, [c_void_p, c_int64, _i64p, _i64p]),
    # task records
    "aipalq_get": (c_int, [c_void_p, c_char_p, POINTER(c_void_p)]),
    "aipalq_get_many": (c_int, [c_void_p, POINTER(c_char_p), c_size_t, POINTER(c_void_p)]),
    "aipalq_task_free": (None, [c_void_p]),
    "aipalq_task_id": (c_char_p, [c_void_p]),
    "aipalq_task_type": (c_char_p, [c_void_p]),
    "aipalq_task_queue": (c_char_p, [c_void_p]),
    "aipalq_task_state": (c_int, [c_void_p]),
    "aipalq_task_priority": (c_int, [c_void_p]),
    "aipalq_task_params": (c_char_p, [c_void_p]),
    "aipalq_task_result": (c_char_p, [c_void_p]),
    "aipalq_task_error_message": (c_char_p, [c_void_p]),
    "aipalq_task_error_detail": (c_char_p, [c_void_p]),
    "aipalq_task_attempts": (c_int, [c_void_p]),
    "aipalq_task_max_retries": (c_int, [c_void_p]),
    "aipalq_task_created_ms": (c_int64, [c_void_p]),
    "aipalq_task_started_ms": (c_int64, [c_void_p]),
    "aipalq_task_completed_ms": (c_int64, [c_void_p]),
    "aipalq_task_updated_ms": (c_int64, [c_void_p]),
    "aipalq_task_run_at_ms": (c_int64, [c_void_p]),
    "aipalq_task_worker_id": (c_char_p, [c_void_p]),
    "aipalq_task_user_id": (c_char_p, [c_void_p]),
    "aipalq_task_idempotency_key": (c_char_p, [c_void_p]),
    "aipalq_task_progress": (c_int, [c_void_p]),
    "aipalq_task_progress_message": (c_char_p, [c_void_p]),
    "aipalq_task_cancel_requested": (c_int, [c_void_p]),
    "aipalq_task_json": (c_char_p, [c_void_p]),
    # lists
    "aipalq_filter_new": (c_void_p, []),
    "aipalq_filter_free": (None, [c_void_p]),
    "aipalq_filter_add_state": (c_int, [c_void_p, c_int]),
    "aipalq_filter_set_type": (c_int, [c_void_p, c_char_p]),
    "aipalq_filter_set_queue": (c_int, [c_void_p, c_char_p]),
    "aipalq_filter_set_user_id": (c_int, [c_void_p, c_char_p]),
    "aipalq_filter_set_page": (c_int, [c_void_p, c_int64, c_int64]),
    "aipalq_filter_set_oldest_first": (c_int, [c_void_p, c_int]),
    "aipalq_list_tasks": (c_int, [c_void_p, c_void_p, POINTER(c_void_p)]),
    "aipalq_list_pending": (c_int, [c_void_p, c_int64, c_int64, POINTER(c_void_p)]),
    "aipalq_list_failed": (c_int, [c_void_p, c_int64, c_int64, POINTER(c_void_p)]),
    "aipalq_list_free": (None, [c_void_p]),
    "aipalq_list_count": (c_size_t, [c_void_p]),
    "aipalq_list_at": (c_void_p, [c_void_p, c_size_t]),
    "aipalq_list_total": (c_int64, [c_void_p]),
    "aipalq_list_total_ms": (c_int64, [c_void_p]),
    # cancel, retry, queues
    "aipalq_cancel": (c_int, [c_void_p, c_char_p, _intp]),
    "aipalq_retry": (c_int, [c_void_p, c_char_p]),
    "aipalq_queue_depth": (c_int, [c_void_p, c_char_p, _i64p, _i64p, _i64p]),
    "aipalq_state_counts_json": (c_int, [c_void_p, POINTER(c_void_p)]),
    # worker
    "aipalq_worker_new": (c_void_p, [c_void_p]),
    "aipalq_worker_free": (None, [c_void_p]),
    "aipalq_worker_errmsg": (c_char_p, [c_void_p]),
    "aipalq_worker_handle": (c_int, [c_void_p, c_char_p, HANDLER_FN, c_void_p]),
    "aipalq_worker_set_queues": (c_int, [c_void_p, c_char_p, c_int]),
    "aipalq_worker_set_concurrency": (c_int, [c_void_p, c_int]),
    "aipalq_worker_set_mode": (c_int, [c_void_p, c_int]),
    "aipalq_worker_set_prefetch": (c_int, [c_void_p, c_int]),
    "aipalq_worker_set_lease_ms": (c_int, [c_void_p, c_int64]),
    "aipalq_worker_set_shutdown_timeout_ms": (c_int, [c_void_p, c_int64]),
    "aipalq_worker_set_recycle": (c_int, [c_void_p, c_int, c_int64]),
    "aipalq_worker_set_id": (c_int, [c_void_p, c_char_p]),
    "aipalq_worker_set_maintenance_ms": (c_int, [c_void_p, c_int64]),
    "aipalq_worker_on_soft_limit": (c_int, [c_void_p, SOFT_LIMIT_FN, c_void_p]),
    "aipalq_worker_run": (c_int, [c_void_p]),
    "aipalq_worker_stop": (None, [c_void_p, c_int]),
    "aipalq_worker_id": (c_int, [c_void_p, c_char_p, c_size_t]),
    "aipalq_worker_counts": (None, [c_void_p, _i64p, _i64p, _i64p, _i64p, _i64p, _i64p]),
    "aipalq_worker_idle_ms": (c_int64, [c_void_p]),
    # steps
    "aipalq_worker_next": (c_int, [c_void_p, c_int64, POINTER(c_void_p)]),
    "aipalq_job_complete": (c_int, [c_void_p, c_char_p]),
    "aipalq_job_fail": (c_int, [c_void_p, c_char_p, c_char_p, c_int]),
    "aipalq_job_release": (c_int, [c_void_p]),
    "aipalq_job_free": (None, [c_void_p]),
    # jobs (handlers)
    "aipalq_job_id": (c_char_p, [c_void_p]),
    "aipalq_job_type": (c_char_p, [c_void_p]),
    "aipalq_job_queue": (c_char_p, [c_void_p]),
    "aipalq_job_params": (c_char_p, [c_void_p]),
    "aipalq_job_user_id": (c_char_p, [c_void_p]),
    "aipalq_job_priority": (c_int, [c_void_p]),
    "aipalq_job_attempt": (c_int, [c_void_p]),
    "aipalq_job_max_retries": (c_int, [c_void_p]),
    "aipalq_job_token": (c_int64, [c_void_p]),
    "aipalq_job_progress": (None, [c_void_p, c_int, c_char_p]),
    "aipalq_job_soft_limit_passed": (c_int, [c_void_p]),
    "aipalq_job_cancel_requested": (c_int, [c_void_p]),
    "aipalq_job_should_stop": (c_int, [c_void_p]),
    "aipalq_job_set_result": (c_int, [c_void_p, c_char_p]),
    "aipalq_job_set_error": (c_int, [c_void_p, c_char_p, c_char_p, c_int]),
    "aipalq_job_errmsg": (c_char_p, [c_void_p]),
    "aipalq_workers_json": (c_int, [c_void_p, c_int64, POINTER(c_void_p)]),
}

_lock = threading.Lock()
_lib: Optional[ctypes.CDLL] = None
_path: Optional[str] = None


def _repo_build_tree() -> Optional[Path]:
    """build/lib/libaipalq.so of the checkout this package sits in, or None
    when it is not in one (an installed package)."""
    here = Path(__file__).resolve().parent  # .../bindings/python/aipalq
    if here.parent.name != "python" or here.parent.parent.name != "bindings":
        return None
    repo = here.parents[2]
    if not (repo / "meson.build").exists():
        return None
    return repo / "build" / "lib" / "libaipalq.so"


def candidates() -> List[Tuple[str, str]]:
    """The places tried, in order, as (description, name or path) pairs."""
    env = os.environ.get(ENV_VAR)
    if env:
        return [(f"${ENV_VAR}", env)]
    found: List[Tuple[str, str]] = [("the dynamic loader", SONAME)]
    name = ctypes.util.find_library("aipalq")
    if name:
        found.append(("ctypes.util.find_library", name))
    for d in (
        "/usr/local/lib",
        "/usr/local/lib64",
        "/usr/local/lib/x86_64-linux-gnu",
        "/usr/local/lib/aarch64-linux-gnu",
        "/usr/lib",
        "/usr/lib64",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
    ):
        p = os.path.join(d, SONAME)
        if os.path.exists(p):
            found.append(("a standard library directory", p))
    build = _repo_build_tree()
    if build is not None:
        found.append(("the build tree", str(build)))
    return found


def declare(lib: ctypes.CDLL, signatures: Dict[str, Tuple[Any, List[Any]]]) -> None:
    """Sets restype and argtypes of every function named in signatures."""
    for name, (restype, argtypes) in signatures.items():
        fn = getattr(lib, name)  # AttributeError names a missing symbol
        fn.restype = restype
        fn.argtypes = argtypes


def _check_version(lib: ctypes.CDLL, where: str) -> None:
    fn = lib.aipalq_version
    fn.restype, fn.argtypes = c_uint, []
    v = fn()
    major, minor, patch = v >> 16, (v >> 8) & 0xFF, v & 0xFF
    if major != EXPECTED_MAJOR or minor < MINIMUM_MINOR:
        raise LibraryVersionError(
            f"{where} is libaipalq {major}.{minor}.{patch}, but these bindings need "
            f"{EXPECTED_MAJOR}.x with x >= {MINIMUM_MINOR} (set {ENV_VAR} to a matching "
            f"libaipalq.so)"
        )


def load() -> ctypes.CDLL:
    """Loads the library once (thread-safe) and returns it.

    Raises :class:`aipalq.LibraryNotFoundError` when no candidate loads, and
    :class:`aipalq.LibraryVersionError` when the one found has another major
    version (or too old a minor one).
    """
    global _lib, _path
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is not None:
            return _lib
        tried = []
        for how, name in candidates():
            try:
                lib = ctypes.CDLL(name)
            except OSError as e:
                tried.append(f"  {name} ({how}): {e}")
                continue
            where = f"{name} (found via {how})"
            _check_version(lib, where)
            try:
                declare(lib, _SIGNATURES)
            except AttributeError as e:
                raise LibraryVersionError(f"{where} lacks a function these bindings use: {e}")
            _path = name
            _lib = lib
            return lib
        raise LibraryNotFoundError(
            "libaipalq not found; tried:\n" + "\n".join(tried) + f"\nSet {ENV_VAR} to the path "
            "of libaipalq.so, install the library, or build it (meson compile -C build)."
        )


def path() -> str:
    """The name or path the library was loaded from (loads it if needed)."""
    load()
    assert _path is not None
    return _path


def text(b: Optional[bytes]) -> Optional[str]:
    """Decodes a C string the library returned (None stays None)."""
    return None if b is None else b.decode("utf-8", "replace")


def take_string(ptr: Optional[int]) -> Optional[str]:
    """Copies a malloc'd C string into Python and frees it with aipalq_free."""
    if not ptr:
        return None
    lib = load()
    try:
        return ctypes.string_at(ptr).decode("utf-8", "replace")
    finally:
        lib.aipalq_free(ptr)


def encode(s: Optional[str]) -> Optional[bytes]:
    """Encodes a Python string for the C API (None stays None)."""
    if s is None:
        return None
    if not isinstance(s, str):
        raise TypeError(f"expected str, got {type(s).__name__}")
    if "\x00" in s:
        from .errors import InvalidArgument

        raise InvalidArgument("strings passed to libaipalq must not contain NUL characters")
    return s.encode("utf-8")
