"""Workers: Python functions as task handlers inside the C worker loop.

::

    worker = aipalq.Worker(concurrency=4)

    @worker.task("resize_image", queue="images", max_retries=5)
    def resize(job: aipalq.Job):
        job.progress(10, "downloading")
        ...
        return {"width": 640}          # the task's result (JSON-serialisable)

    worker.run()                       # until SIGTERM / SIGINT

How it runs
-----------
:meth:`Worker.run` drives ``aipalq_worker_run`` in thread mode. The C
library owns the loop: a dispatcher thread takes tasks from Redis, a recorder
writes outcomes to PostgreSQL, a heartbeat thread extends leases and delivers
cancel requests, and ``concurrency`` handler threads run handlers. Each
handler thread calls one ``ctypes.CFUNCTYPE`` trampoline, which takes the GIL
(``PyGILState_Ensure``, done by ctypes), wraps the ``aipalq_job *`` in a
:class:`Job`, calls your function, and turns what it returns or raises into
``aipalq_job_set_result`` / ``aipalq_job_set_error``. Nothing escapes the
trampoline: an exception there would be printed and ignored by ctypes, and the
task would silently complete.

Outcomes
--------
* return a JSON-serialisable value: the task completes with it as its result;
* return None: completed with a null result, or *cancelled* if a cancel was
  requested meanwhile (poll :meth:`Job.should_stop` and return early);
* raise: the attempt fails with ``"ExceptionType: message"`` as the error
  message and the Python traceback as the error detail. It is retried after
  the type's backoff while attempts remain, unless the exception is an
  :class:`aipalq.PermanentError` (or one of the ``permanent_errors`` given to
  :meth:`Worker.task`), which fails the task at once. If a cancel was
  requested, a raising handler ends the task as cancelled;
* a result that is not JSON-serialisable, or larger than 4 MiB, fails the
  task without retry (retrying cannot fix it).

Concurrency and the GIL
-----------------------
With ``concurrency`` above one, several C handler threads call into Python at
once. They take turns on the GIL exactly like Python threads do: a handler
holds it while it runs bytecode and releases it whenever it blocks (I/O,
``time.sleep``, and every call into libaipalq, which ctypes makes with the GIL
released), and the interpreter switches between them every few milliseconds.
So concurrency gives real overlap for I/O-bound handlers, and none for
CPU-bound pure-Python code (run several worker processes for that). The C
side never needs the GIL: dispatching, leases, heartbeats and recording go on
while handlers hold it, so a busy handler does not lose its lease. Handlers
must be thread-safe in the ordinary Python sense (guard shared state with a
lock). Each :class:`Job` belongs to one handler call and is only valid during
it.

Signals and shutdown
--------------------
Python runs signal handlers only in the main thread, between bytecodes. A
main thread blocked inside ``aipalq_worker_run`` (a C call) would never get
to run them, so ``SIGINT``/``SIGTERM`` would do nothing. :meth:`run`
therefore calls ``aipalq_worker_run`` on a background thread and keeps the
main thread in a loop of short ``Thread.join(timeout)`` calls; between them
(and on EINTR) the interpreter runs the Python signal handlers installed by
:meth:`run`, which call ``aipalq_worker_stop``: the first signal asks for a
graceful stop (running handlers may finish within ``shutdown_timeout``, the
rest are handed back to the queue), a second one for a fast stop (every
running task is handed back at once; nothing is lost). The previous signal
handlers are restored when :meth:`run` returns. (``signal.set_wakeup_fd``
would also work, but is not needed: the timed join already bounds the delay
to ``poll_interval``.) From a non-main thread :meth:`run` installs no signal
handlers; call :meth:`stop` from elsewhere.

A handler still running after the shutdown deadline has its task handed back
(its late outcome is ignored), but Python code cannot be interrupted: the
worker is freed only once that handler returns, so :meth:`run` returns after
it. Handlers that may run long should poll :meth:`Job.should_stop`, which
becomes true on a fast stop, a cancel request, a passed soft time limit, or a
lost lease.

No prefork mode
---------------
The C library's prefork mode (``AIPALQ_MODE_PREFORK``) forks child processes
from a process whose dispatcher, recorder and heartbeat threads are running.
Forking a Python interpreter that has other threads leaves the child with the
GIL, the import lock, allocator and ``logging`` locks possibly held by threads
that do not exist there, so the child can deadlock the first time it runs
Python code; and the C child would call the ctypes trampoline from a process
whose interpreter state is a copy taken mid-flight. It is not offered. To use
several cores, or to isolate crashing handlers, run several worker processes
(each its own ``Worker``); the queue spreads tasks among them.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import logging
import signal
import threading
import time
import traceback
import weakref
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Callable, Dict, Iterable, Optional, Tuple, Type, Union

from . import _lib
from .client import Client, Duration, duration_ms, type_definition
from .errors import Misuse, PermanentError, error_for

log = logging.getLogger("aipalq.worker")

Handler = Callable[["Job"], Any]

_UNSET = object()


def _cstr(s: Optional[str]) -> Optional[bytes]:
    """Text for the C side, never failing: NULs escaped, bad surrogates replaced."""
    if s is None:
        return None
    return s.replace("\x00", "\\0").encode("utf-8", "replace")


class Job:
    """One delivery of a task to a handler (``aipalq_job``).

    Identity and settings are plain attributes, read when the delivery starts:
    ``id``, ``type``, ``queue``, ``priority``, ``attempt`` (1 on the first
    delivery), ``max_retries``, ``user_id`` and ``token`` (the fencing token:
    it grows with every delivery of the task, for guarding side effects).
    ``params`` is the decoded JSON object.

    The methods talk to the running worker and are valid only while the
    handler runs; afterwards they raise :class:`aipalq.Misuse`.
    """

    __slots__ = (
        "_ptr",
        "id",
        "type",
        "queue",
        "priority",
        "attempt",
        "max_retries",
        "user_id",
        "token",
        "_params_text",
        "_params",
    )

    def __init__(self, ptr: int) -> None:
        lib = _lib.load()
        t = _lib.text
        self._ptr: Optional[int] = ptr
        self.id: str = t(lib.aipalq_job_id(ptr)) or ""
        self.type: str = t(lib.aipalq_job_type(ptr)) or ""
        self.queue: str = t(lib.aipalq_job_queue(ptr)) or ""
        self.priority: int = lib.aipalq_job_priority(ptr)
        self.attempt: int = lib.aipalq_job_attempt(ptr)
        self.max_retries: int = lib.aipalq_job_max_retries(ptr)
        self.user_id: Optional[str] = t(lib.aipalq_job_user_id(ptr))
        self.token: int = lib.aipalq_job_token(ptr)
        self._params_text: str = t(lib.aipalq_job_params(ptr)) or "{}"
        self._params: Any = _UNSET

    @property
    def params(self) -> Dict[str, Any]:
        """The task's params (decoded once, on first use)."""
        if self._params is _UNSET:
            self._params = json.loads(self._params_text)
        return self._params

    @property
    def is_last_attempt(self) -> bool:
        """True when a retryable failure now would fail the task for good."""
        return self.attempt > self.max_retries

    def _p(self) -> int:
        if self._ptr is None:
            raise Misuse("this Job's handler has returned; a Job is valid only during its handler")
        return self._ptr

    def progress(self, percent: int, message: Optional[str] = None) -> None:
        """Reports progress (0..100, clamped) and an optional message; recorded
        in PostgreSQL in the background (coalesced)."""
        _lib.load().aipalq_job_progress(self._p(), int(percent), _cstr(message))

    def soft_limit_passed(self) -> bool:
        """True once the type's soft time limit has passed."""
        return bool(_lib.load().aipalq_job_soft_limit_passed(self._p()))

    def cancel_requested(self) -> bool:
        """True once a cancel was requested (seen within a second)."""
        return bool(_lib.load().aipalq_job_cancel_requested(self._p()))

    def should_stop(self) -> bool:
        """True when the handler should wrap up: soft limit passed, cancel
        requested, the worker is stopping fast, or the lease was lost."""
        return bool(_lib.load().aipalq_job_should_stop(self._p()))

    def __repr__(self) -> str:
        return f"<aipalq.Job {self.type} {self.id} attempt {self.attempt}>"


@dataclass
class _Registration:
    fn: Handler
    permanent: Tuple[Type[BaseException], ...] = ()


def _run_handler(registry: Dict[str, _Registration], job_ptr: int) -> None:
    """The body of the trampoline: runs one job. Never raises."""
    lib = _lib.load()
    job: Optional[Job] = None
    try:
        job = Job(job_ptr)
        reg = registry.get(job.type)
        if reg is None:  # the C worker only calls registered types; be safe anyway
            lib.aipalq_job_set_error(job_ptr, b"no Python handler for this task type", None, 1)
            return
        try:
            result = reg.fn(job)
        except BaseException as e:  # noqa: B902 - a handler's SystemExit fails its task too
            retryable = not isinstance(e, (PermanentError,) + reg.permanent)
            message = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            detail = traceback.format_exc()
            log.info("task %s (%s) attempt %d failed: %s", job.id, job.type, job.attempt, message)
            lib.aipalq_job_set_error(job_ptr, _cstr(message[:2000]), _cstr(detail), int(retryable))
            return
        if result is None:
            return  # completed with null, or cancelled if a cancel was requested
        try:
            text = json.dumps(result, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as e:
            lib.aipalq_job_set_error(
                job_ptr,
                _cstr(f"the handler's result is not JSON-serialisable: {e}"),
                _cstr(traceback.format_exc()),
                0,
            )
            return
        st = lib.aipalq_job_set_result(job_ptr, text.encode("utf-8"))
        if st != _lib.OK:
            why = _lib.text(lib.aipalq_job_errmsg(job_ptr)) or ""
            lib.aipalq_job_set_error(job_ptr, _cstr(f"result refused: {why}"), None, 0)
    except BaseException:
        try:
            lib.aipalq_job_set_error(
                job_ptr, b"internal error in the aipalq Python bindings", _cstr(traceback.format_exc()), 1
            )
        except BaseException:
            pass
    finally:
        if job is not None:
            job._ptr = None


def _make_trampoline(registry: Dict[str, _Registration]) -> Any:
    # The closure holds the registry, not the Worker, so that a Worker can be
    # garbage-collected while its trampoline is still referenced.
    def trampoline(job_ptr: int, userdata: int) -> None:
        _run_handler(registry, job_ptr)

    return _lib.HANDLER_FN(trampoline)


def _free_worker(lib: ctypes.CDLL, handle: int, keepalive: Any) -> None:
    # keepalive (the trampoline) is an argument so that it lives until the C
    # worker, which holds its function pointer, is gone.
    lib.aipalq_worker_free(handle)


@dataclass(frozen=True)
class WorkerCounts:
    """Counters since the worker started."""

    completed: int = 0
    failed: int = 0
    retried: int = 0
    cancelled: int = 0
    stale: int = 0
    running: int = 0


class Worker:
    """Runs Python task handlers in the C worker loop (thread mode).

    Connection settings, namespace and task types come from ``client`` (a
    :class:`Client`, left open) or from a client the worker creates with
    ``redis_url``, ``database_url`` and ``namespace`` (closed with the worker).
    Register handlers with :meth:`task` (a decorator) or :meth:`register`,
    then :meth:`run`.

    Options (None keeps the library default):

    * ``queues``: the queues to consume, most important first (default: the
      queues of the types defined on the client, in definition order);
      ``fair_every``: round robin among them every N takes (0 = strict order);
    * ``concurrency``: handlers at once, 1..1024 (default: number of cores).
      See "Concurrency and the GIL" in the module documentation;
    * ``prefetch``: tasks taken beyond free slots (0..concurrency);
    * ``lease``: lease length in seconds (1 s .. 1 h, default 30; heartbeats
      every third of it); ``shutdown_timeout``: how long a graceful stop
      waits for running handlers (default 30 s);
    * ``maintenance_interval``: seconds between offers to run the reconciler
      and outbox relay (default 30; 0 = never); ``worker_id``: overrides the
      default host:pid:random id.

    Prefork mode is not offered to Python handlers; the module documentation
    explains why.
    """

    def __init__(
        self,
        client: Optional[Client] = None,
        *,
        redis_url: Optional[str] = None,
        database_url: Optional[str] = None,
        namespace: Optional[str] = None,
        queues: Union[None, str, Iterable[str]] = None,
        fair_every: int = 0,
        concurrency: Optional[int] = None,
        prefetch: Optional[int] = None,
        lease: Optional[Duration] = None,
        shutdown_timeout: Optional[Duration] = None,
        maintenance_interval: Optional[Duration] = None,
        worker_id: Optional[str] = None,
    ) -> None:
        if client is not None and (redis_url or database_url or namespace):
            raise ValueError("give either a client or connection settings, not both")
        self._owns_client = client is None
        self.client = client if client is not None else Client(redis_url, database_url, namespace=namespace)
        if queues is not None and not isinstance(queues, str):
            queues = ",".join(queues)
        self._queues: Optional[str] = queues
        self._fair_every = fair_every
        self._concurrency = concurrency
        self._prefetch = prefetch
        self._lease = lease
        self._shutdown_timeout = shutdown_timeout
        self._maintenance = maintenance_interval
        self._worker_id = worker_id
        self._registry: Dict[str, _Registration] = {}
        self._lock = threading.RLock()
        self._handle: Optional[int] = None
        self._finalizer: Optional[weakref.finalize] = None
        self._thread: Optional[threading.Thread] = None
        self._status: Optional[int] = None
        self._error = ""
        self._stop_level = 0  # 0 run, 1 graceful, 2 fast: re-sent until the loop ends
        self._counts = WorkerCounts()
        self._id: Optional[str] = worker_id
        self._atexit: Optional[Callable[[], None]] = None

    # -------------------------------------------------------- registration

    def task(
        self,
        name: str,
        *,
        queue: Optional[str] = None,
        permanent_errors: Iterable[Type[BaseException]] = (),
        **settings: Any,
    ) -> Callable[[Handler], Handler]:
        """Decorator: registers the function as the handler of task type
        ``name``. See :meth:`register` for the arguments."""

        def decorate(fn: Handler) -> Handler:
            self.register(name, fn, queue=queue, permanent_errors=permanent_errors, **settings)
            return fn

        return decorate

    def register(
        self,
        name: str,
        fn: Handler,
        *,
        queue: Optional[str] = None,
        permanent_errors: Iterable[Type[BaseException]] = (),
        max_retries: Optional[int] = None,
        priority: Optional[int] = None,
        backoff_base: Optional[Duration] = None,
        backoff_cap: Optional[Duration] = None,
        backoff_jitter_percent: Optional[int] = None,
        soft_time_limit: Optional[Duration] = None,
        hard_time_limit: Optional[Duration] = None,
        result_ttl: Optional[Duration] = None,
    ) -> None:
        """Registers ``fn(job) -> result`` as the handler of task type ``name``.

        The type is defined on the worker's client when it is not yet, routed
        to ``queue`` (default ``"default"``). Settings given here (``queue``,
        ``max_retries``, ``priority``, backoff, time limits, result TTL; the
        same as :meth:`Client.define_type`) override the existing definition;
        those not given keep it. Exceptions listed in ``permanent_errors`` fail
        the task without retry, like :class:`aipalq.PermanentError`.
        """
        if not callable(fn):
            raise TypeError("the handler must be callable")
        with self._lock:
            if self._handle is not None:
                raise Misuse("the worker is running; register handlers before run()")
            existing = {t["name"]: t for t in self.client.types()}.get(name)
            given = type_definition(
                name, queue or "default", priority=priority, max_retries=max_retries,
                backoff_base=backoff_base, backoff_cap=backoff_cap,
                backoff_jitter_percent=backoff_jitter_percent, soft_time_limit=soft_time_limit,
                hard_time_limit=hard_time_limit, result_ttl=result_ttl,
            )
            if existing is not None:
                if queue is None:
                    del given["queue"]
                definition = {**existing, **given}
            else:
                definition = given
            if definition != existing:
                self.client.define_types([definition])
            self._registry[name] = _Registration(fn, tuple(permanent_errors))

    @property
    def handlers(self) -> Dict[str, Handler]:
        """The registered handlers by task type."""
        return {k: r.fn for k, r in self._registry.items()}

    # ------------------------------------------------------------- running

    def _check(self, st: int, handle: int) -> None:
        if st != _lib.OK:
            raise error_for(st, _lib.text(_lib.load().aipalq_worker_errmsg(handle)) or "")

    def _create(self) -> int:
        """Creates and configures the C worker (under the lock)."""
        lib = _lib.load()
        if not self._registry:
            raise Misuse("no handler registered: use @worker.task(...) first")
        with self.client._lock:
            handle = lib.aipalq_worker_new(self.client._h())
        if not handle:
            raise MemoryError("aipalq_worker_new")
        trampoline = _make_trampoline(self._registry)
        self._finalizer = weakref.finalize(self, _free_worker, lib, handle, trampoline)
        try:
            for name in self._registry:
                self._check(lib.aipalq_worker_handle(handle, _lib.encode(name), trampoline, None), handle)
            if self._queues is not None:
                self._check(
                    lib.aipalq_worker_set_queues(handle, _lib.encode(self._queues), int(self._fair_every)),
                    handle,
                )
            if self._concurrency is not None:
                self._check(lib.aipalq_worker_set_concurrency(handle, int(self._concurrency)), handle)
            if self._prefetch is not None:
                self._check(lib.aipalq_worker_set_prefetch(handle, int(self._prefetch)), handle)
            if self._lease is not None:
                self._check(lib.aipalq_worker_set_lease_ms(handle, duration_ms(self._lease, "lease")), handle)
            if self._shutdown_timeout is not None:
                ms = duration_ms(self._shutdown_timeout, "shutdown_timeout")
                self._check(lib.aipalq_worker_set_shutdown_timeout_ms(handle, ms), handle)
            if self._maintenance is not None:
                ms = duration_ms(self._maintenance, "maintenance_interval")
                self._check(lib.aipalq_worker_set_maintenance_ms(handle, ms), handle)
            if self._worker_id is not None:
                self._check(lib.aipalq_worker_set_id(handle, _lib.encode(self._worker_id)), handle)
            buf = ctypes.create_string_buffer(160)
            if lib.aipalq_worker_id(handle, buf, len(buf)) == _lib.OK:
                self._id = buf.value.decode("utf-8", "replace")
        except BaseException:
            self._finalizer()
            self._finalizer = None
            raise
        return handle

    def start(self) -> None:
        """Starts the worker loop on a background thread and returns.

        Use :meth:`stop` and :meth:`join` (or :meth:`run`, which does all of
        it and handles signals). A worker still running when the interpreter
        exits is stopped fast and joined by an ``atexit`` hook, so that no C
        thread calls into a finalising interpreter.
        """
        with self._lock:
            if self._thread is not None and not self._thread.is_alive():
                self._finish()  # ended but not joined yet
            if self._thread is not None:
                raise Misuse("the worker is already running")
            self._handle = self._create()
            self._status, self._error = None, ""
            self._counts = WorkerCounts()
            # A stop requested before start() is kept and applied at once.
            self._thread = threading.Thread(target=self._loop, name="aipalq-worker", daemon=True)
            self._thread.start()
            self._atexit = self._stop_at_exit
            atexit.register(self._atexit)

    def _loop(self) -> None:
        lib = _lib.load()
        handle = self._handle
        assert handle is not None
        st = lib.aipalq_worker_run(handle)  # the GIL is released meanwhile
        self._status = st
        if st != _lib.OK:
            self._error = _lib.text(lib.aipalq_worker_errmsg(handle)) or ""

    def _stop_at_exit(self) -> None:
        self.stop(fast=True)
        self.join()

    def stop(self, fast: bool = False) -> None:
        """Asks the worker to stop: graceful (running handlers may finish
        within the shutdown timeout; unstarted tasks go back to the queue), or
        fast (every running task is handed back at once). Any thread; returns
        at once. A stop asked before the loop starts applies when it does."""
        with self._lock:
            self._stop_level = max(self._stop_level, 2 if fast else 1)
            self._send_stop()

    def _send_stop(self) -> None:
        # Under the lock. aipalq_worker_run clears the stop flag when it starts,
        # so the request is sent again on every join tick until the loop ends.
        if self._handle is not None and self._stop_level:
            _lib.load().aipalq_worker_stop(self._handle, 1 if self._stop_level == 2 else 0)

    def join(self, timeout: Optional[float] = None, *, poll_interval: float = 0.2) -> bool:
        """Waits for the loop to end (True) or ``timeout`` seconds (False).
        When it has ended, frees the C worker and raises the loop's error, if
        it returned one."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                thread = self._thread
                if thread is None:
                    return True
                self._send_stop()
            wait = poll_interval if deadline is None else max(0.0, min(poll_interval, deadline - time.monotonic()))
            thread.join(wait)
            if not thread.is_alive():
                self._finish()
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def _finish(self) -> None:
        with self._lock:
            thread = self._thread
            if thread is None:
                return
            thread.join()
            self._counts = self.counts()
            # The handle goes first: from here stop() and counts() do not touch it.
            self._handle = None
            self._thread = None
            self._stop_level = 0
            if self._atexit is not None:
                atexit.unregister(self._atexit)
                self._atexit = None
            finalizer, self._finalizer = self._finalizer, None
            status, error = self._status, self._error
        if finalizer is not None:
            # aipalq_worker_free waits for handlers still running past the
            # shutdown deadline. It runs without our lock (such a handler may
            # call stop()) and without the GIL (ctypes releases it), so they
            # can finish.
            finalizer()
        if status not in (None, _lib.OK):
            raise error_for(status, error)

    def run(self, *, install_signal_handlers: bool = True, poll_interval: float = 0.2) -> None:
        """Runs until :meth:`stop`, SIGINT or SIGTERM, then shuts down
        gracefully and returns (a second signal makes the stop fast).

        The C loop runs on a background thread; the calling thread waits in
        ``join`` ticks of ``poll_interval`` seconds so that Python can run the
        signal handlers, which are installed only when this is the main thread
        (and restored afterwards). Raises the worker's error if the loop could
        not run (e.g. :class:`aipalq.Misuse` with no handler)."""
        install = install_signal_handlers and threading.current_thread() is threading.main_thread()
        previous: Dict[int, Any] = {}
        signals_seen = [0]

        def on_signal(signum: int, frame: Optional[FrameType]) -> None:
            signals_seen[0] += 1
            log.info("signal %d: stopping %s", signum, "fast" if signals_seen[0] > 1 else "gracefully")
            self.stop(fast=signals_seen[0] > 1)

        if install:
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, on_signal)
        try:
            self.start()
            self.join(poll_interval=poll_interval)
        finally:
            if install:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
            if self._thread is not None:  # left by an exception: do not leave the loop behind
                self.stop(fast=True)
                self.join(poll_interval=poll_interval)

    # ------------------------------------------------------------- status

    @property
    def running(self) -> bool:
        """True while the loop runs."""
        t = self._thread
        return t is not None and t.is_alive()

    @property
    def id(self) -> Optional[str]:
        """The worker id (known once started, or when given)."""
        return self._id

    def counts(self) -> WorkerCounts:
        """Tasks completed, failed (finally), retried, cancelled, stale and
        running, since the last start (kept after the worker stops)."""
        with self._lock:
            if self._handle is None:
                return self._counts
            v = [ctypes.c_int64(0) for _ in range(6)]
            _lib.load().aipalq_worker_counts(self._handle, *[ctypes.byref(x) for x in v])
            return WorkerCounts(*(x.value for x in v))

    def close(self) -> None:
        """Stops the worker (fast) if it runs, frees it, and closes the client
        the worker created. Idempotent."""
        if self._thread is not None:
            self.stop(fast=True)
            self.join()
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<aipalq.Worker {self._id or '(not started)'} types={sorted(self._registry)}>"
