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

Steps
-----
A program with a loop of its own takes tasks one at a time instead
(``aipalq_worker_next``), and ends each itself::

    worker = aipalq.Worker(client, queues=["images"])
    while running:
        job = worker.next(timeout=5)             # a StepJob, or None
        if job is None:
            continue
        with job:                                # freed at the end of the block
            job.complete(resize(job.params))     # or job.fail(...) / job.release()

No Python code runs on a C thread here: :meth:`Worker.next` and the
:class:`StepJob` methods are ordinary calls (the GIL is released while they
wait). The worker's heartbeat thread keeps the lease of every job held, so a
job may be held as long as it takes; one left unended is handed back when it
is freed.
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
from .errors import AipalqError, BadJSON, InvalidArgument, Misuse, OutOfMemory, PermanentError, TooBig, error_for

log = logging.getLogger("aipalq.worker")

Handler = Callable[["Job"], Any]

_UNSET = object()


def _cstr(s: Optional[str]) -> Optional[bytes]:
    """Text for the C side, never failing: NULs escaped, bad surrogates replaced."""
    if s is None:
        return None
    return s.replace("\x00", "\\0").encode("utf-8", "replace")


def _dumps(value: Any) -> bytes:
    """A result as JSON text; TypeError / ValueError when it is not serialisable."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _describe(e: BaseException) -> Tuple[str, str]:
    """An exception as a task error: ("Type: message", the traceback)."""
    message = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    detail = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    return message[:2000], detail


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

    def _use(self, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(the aipalq_job pointer, *args)."""
        return fn(self._p(), *args)

    def progress(self, percent: int, message: Optional[str] = None) -> None:
        """Reports progress (0..100, clamped) and an optional message; recorded
        in PostgreSQL in the background (coalesced)."""
        self._use(_lib.load().aipalq_job_progress, int(percent), _cstr(message))

    def soft_limit_passed(self) -> bool:
        """True once the type's soft time limit has passed."""
        return bool(self._use(_lib.load().aipalq_job_soft_limit_passed))

    def cancel_requested(self) -> bool:
        """True once a cancel was requested (seen within a second)."""
        return bool(self._use(_lib.load().aipalq_job_cancel_requested))

    def should_stop(self) -> bool:
        """True when the handler should wrap up: soft limit passed, cancel
        requested, the worker is stopping fast, or the lease was lost."""
        return bool(self._use(_lib.load().aipalq_job_should_stop))

    def __repr__(self) -> str:
        return f"<aipalq.Job {self.type} {self.id} attempt {self.attempt}>"


#: Statuses with which aipalq_job_complete / _fail / _release leave the job
#: unended (the outcome was refused before it was recorded).
_NOT_ENDED = (BadJSON.status, TooBig.status, OutOfMemory.status)


def _free_job(lib: ctypes.CDLL, ptr: int, lock: "threading.RLock", jobs: Dict[int, Any]) -> None:
    # A StepJob's finalizer; also called by its worker's, which frees the jobs
    # still held before the worker itself. The lock keeps it from running
    # while another thread ends the job.
    with lock:
        jobs.pop(ptr, None)
        lib.aipalq_job_free(ptr)  # hands an unended job back first


class StepJob(Job):
    """A task taken with :meth:`Worker.next` (the step API): a :class:`Job`
    that you end yourself, with exactly one of :meth:`complete`,
    :meth:`fail` or :meth:`release`, and then free with :meth:`close`.

    As a context manager it does the rest::

        with worker.next(timeout=5) as job:        # (when next() returned a job)
            job.complete(process(job.params))

    Leaving the block frees the job: if the block raised an ``Exception``
    before the job was ended, the job is failed first with the exception as
    its error (``"Type: message"`` and the traceback; retried while attempts
    remain unless it is a :class:`aipalq.PermanentError`), and the exception
    propagates. A job left unended otherwise (including on
    ``KeyboardInterrupt``) is handed back to its queue without counting the
    attempt, as :meth:`release` does. A job that is garbage-collected, or
    whose worker is closed, is freed then (and handed back if unended).

    While the job is held, the worker's heartbeat thread keeps its lease.
    Ending calls wait until PostgreSQL has recorded the outcome, and raise the
    library's error with its message: :class:`aipalq.IllegalTransition` when
    the job has already ended, :class:`aipalq.StaleDelivery` when the delivery
    lost its lease (another delivery owns the task now),
    :class:`aipalq.BadJSON` / :class:`aipalq.TooBig` for a refused result
    (the job is then still unended). A job may be ended and closed on another
    thread than the one that took it (the library hands its outcome to the
    worker's recorder thread, as it does for the handler threads of the
    loop); one job is used by one thread at a time (a lock serialises them).
    After :meth:`close` every method raises :class:`aipalq.Misuse`.
    """

    __slots__ = ("_lock", "_worker", "_finalizer", "_ended", "__weakref__")

    def __init__(self, ptr: int, worker: "Worker") -> None:
        super().__init__(ptr)
        self._lock = threading.RLock()
        self._worker = worker  # the C worker must outlive the job
        self._ended = False
        self._finalizer = weakref.finalize(self, _free_job, _lib.load(), ptr, self._lock, worker._jobs)
        worker._jobs[ptr] = self._finalizer

    def _p(self) -> int:
        if self._ptr is None or not self._finalizer.alive:
            raise Misuse("this job was closed (or its worker was); a job is valid until then")
        return self._ptr

    def _use(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self._lock:
            return fn(self._p(), *args)

    def _end(self, fn: Callable[..., int], *args: Any) -> None:
        with self._lock:
            ptr = self._p()
            st = fn(ptr, *args)
            if st not in _NOT_ENDED:
                self._ended = True
            if st != _lib.OK:
                raise error_for(st, _lib.text(_lib.load().aipalq_job_errmsg(ptr)) or "")

    def complete(self, result: Any = None) -> None:
        """Records the task completed with ``result`` (any JSON-serialisable
        value, at most 4 MiB of JSON; ``bytes`` are taken as JSON text as they
        are; None is a null result), then acknowledges it in Redis."""
        if result is None or isinstance(result, bytes):
            text = result
        else:
            try:
                text = _dumps(result)
            except (TypeError, ValueError) as e:
                raise BadJSON(f"the result is not JSON-serialisable: {e}") from e
        self._end(_lib.load().aipalq_job_complete, text)

    def fail(self, message: Optional[str] = None, detail: Optional[str] = None, *, retryable: bool = True) -> None:
        """Records a failed attempt with an error ``message`` and ``detail``
        (e.g. a traceback): the task is retried after its type's backoff if
        ``retryable`` and attempts remain, else it fails."""
        self._end(_lib.load().aipalq_job_fail, _cstr(message), _cstr(detail), 1 if retryable else 0)

    def release(self) -> None:
        """Hands the task back to its queue without counting the attempt."""
        self._end(_lib.load().aipalq_job_release)

    @property
    def ended(self) -> bool:
        """True once complete, fail or release was recorded (or refused as
        stale): the job cannot be ended again."""
        return self._ended

    @property
    def closed(self) -> bool:
        """True once the job was freed."""
        return not self._finalizer.alive

    def close(self) -> None:
        """Frees the job; an unended one is handed back first. Idempotent."""
        with self._lock:
            self._finalizer()

    def __enter__(self) -> "StepJob":
        return self

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        try:
            if isinstance(exc, Exception) and not self._ended and not self.closed:
                message, detail = _describe(exc)
                try:
                    self.fail(message, detail, retryable=not isinstance(exc, PermanentError))
                except AipalqError as e:  # close() below hands the task back instead
                    log.warning("task %s: recording the failure failed: %s", self.id, e)
        finally:
            self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "ended" if self._ended else "held"
        return f"<aipalq.StepJob {self.type} {self.id} attempt {self.attempt} {state}>"


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
            message, detail = _describe(e)
            log.info("task %s (%s) attempt %d failed: %s", job.id, job.type, job.attempt, message)
            lib.aipalq_job_set_error(job_ptr, _cstr(message), _cstr(detail), int(retryable))
            return
        if result is None:
            return  # completed with null, or cancelled if a cancel was requested
        try:
            text = _dumps(result)
        except (TypeError, ValueError) as e:
            lib.aipalq_job_set_error(
                job_ptr,
                _cstr(f"the handler's result is not JSON-serialisable: {e}"),
                _cstr(traceback.format_exc()),
                0,
            )
            return
        st = lib.aipalq_job_set_result(job_ptr, text)
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


def _free_worker(lib: ctypes.CDLL, handle: int, keepalive: Any, jobs: Dict[int, Any]) -> None:
    # keepalive (the trampoline) is an argument so that it lives until the C
    # worker, which holds its function pointer, is gone. Step jobs still held
    # are freed first: they use the worker's recorder.
    for finalizer in list(jobs.values()):
        finalizer()
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

    Instead of running the loop, a worker can take tasks one at a time with
    :meth:`next` (the step API, for callers with a loop of their own); one
    worker does either, not both.

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
        # The step API: the C worker is created by the first next(); the jobs
        # it handed out and that are not freed yet, by address.
        self._stepping = False
        self._step_closing = False  # close() asks a next() waiting without end to return
        self._step_lock = threading.RLock()
        self._jobs: Dict[int, weakref.finalize] = {}

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

    def _create(self, steps: bool = False) -> int:
        """Creates and configures the C worker (under the lock): with the
        handlers for the loop, or without for the step API."""
        lib = _lib.load()
        if not steps and not self._registry:
            raise Misuse("no handler registered: use @worker.task(...) first")
        with self.client._lock:
            handle = lib.aipalq_worker_new(self.client._h())
        if not handle:
            raise MemoryError("aipalq_worker_new")
        trampoline = None if steps else _make_trampoline(self._registry)
        self._finalizer = weakref.finalize(self, _free_worker, lib, handle, trampoline, self._jobs)
        try:
            for name in self._registry if trampoline is not None else ():
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
            if self._stepping:
                raise Misuse("this worker takes tasks with next(); a worker runs its loop or takes steps, not both")
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
        if self._handle is not None and self._stop_level and not self._stepping:
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

    # --------------------------------------------------------------- steps

    def next(self, timeout: Optional[Duration] = 0) -> Optional[StepJob]:
        """Takes one task from the worker's queues: a :class:`StepJob` to end
        with ``complete`` / ``fail`` / ``release``, or None when none came
        within ``timeout`` seconds (0, the default: do not wait; None: wait
        until one comes). The wait blocks on Redis and wakes when a task is
        enqueued; it also notices the expired leases of dead workers.

        The first call creates the C worker, with the queues, lease and other
        options of this Worker (handlers are not needed; the task types come
        from the client, as for the loop); from then on :meth:`start` and
        :meth:`run` refuse, and :meth:`close` frees it. Calls are serialised
        (the C worker is used by one thread at a time); jobs may be ended on
        other threads meanwhile, and :meth:`close` makes a waiting call return
        None. Raises the library's error with its message,
        e.g. :class:`aipalq.InvalidArgument` when there is no queue to consume,
        RedisError / DatabaseError when a server is unreachable.
        """
        deadline = None
        if timeout is not None:
            ms = duration_ms(timeout, "timeout")
            if ms < 0:
                raise InvalidArgument(f"timeout must not be negative (got {timeout!r})")
            deadline = time.monotonic() + ms / 1000.0
        lib = _lib.load()
        with self._step_lock:
            handle = self._step_handle()
            while True:
                # Waits of at most a second: between them the interpreter runs
                # signal handlers (a blocked C call would hold off Ctrl-C).
                left = 1000 if deadline is None else int(round((deadline - time.monotonic()) * 1000))
                out = ctypes.c_void_p()
                st = lib.aipalq_worker_next(handle, max(0, min(1000, left)), ctypes.byref(out))
                if st == _lib.OK:
                    try:
                        return StepJob(out.value, self)
                    except BaseException:
                        lib.aipalq_job_free(out.value)
                        raise
                if st != _lib.EMPTY:
                    self._check(st, handle)
                if self._step_closing or (deadline is not None and time.monotonic() >= deadline):
                    return None

    def _step_handle(self) -> int:
        with self._lock:
            if self._thread is not None:
                raise Misuse("the worker is running its loop; next() is for a worker that takes tasks itself")
            if self._handle is None:
                self._handle = self._create(steps=True)
                self._stepping = True
            return self._handle

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

    def idle_seconds(self) -> Optional[float]:
        """Seconds since the worker last made progress (took a task, or found
        its queues empty), for a readiness probe to compare with a threshold
        of its own; None while there is no C worker (before start() or the
        first next(), after the loop ended)."""
        with self._lock:
            if self._handle is None:
                return None
            return _lib.load().aipalq_worker_idle_ms(self._handle) / 1000.0

    def close(self) -> None:
        """Stops the worker (fast) if it runs, frees it, and closes the client
        the worker created. Idempotent. Step jobs still held are handed back
        and freed first (a :meth:`next` waiting on another thread returns
        None within a second)."""
        if self._thread is not None:
            self.stop(fast=True)
            self.join()
        self._step_closing = True
        with self._step_lock:
            self._step_closing = False
            with self._lock:
                finalizer = self._finalizer if self._stepping else None
                if self._stepping:
                    self._handle, self._finalizer, self._stepping = None, None, False
            if finalizer is not None:
                finalizer()
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<aipalq.Worker {self._id or '(not started)'} types={sorted(self._registry)}>"
