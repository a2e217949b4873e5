"""The client: enqueue tasks, read and manage them, define task types.

A :class:`Client` wraps one ``aipalq_client``. The C handle is not
thread-safe, so every call takes the client's lock; a Client may therefore be
shared by threads, whose calls then run one at a time (open one Client per
thread for parallel calls: they are cheap, and connect lazily). The GIL is
released while a call runs in C.
"""

from __future__ import annotations

import ctypes
import json
import threading
import time
import weakref
from ctypes import byref, c_int, c_int64, c_void_p
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from . import _lib, pg
from .errors import (
    AipalqError,
    BadJSON,
    InvalidArgument,
    Misuse,
    Timeout,
    error_for,
)
from .task import State, Task, TaskId, TaskPage, _time

#: Params: a mapping (serialised with json.dumps), or JSON text used verbatim.
Params = Union[Mapping[str, Any], str, bytes, None]
#: A duration: seconds (int or float) or a timedelta.
Duration = Union[int, float, timedelta]
#: An instant: an aware (or UTC naive) datetime, or Unix time in seconds.
Instant = Union[datetime, int, float]

#: The conn of a plain (not transactional) enqueue.
_NO_TX: Any = object()

_OPTION_KEYS = (
    "priority",
    "queue",
    "delay",
    "run_at",
    "idempotency_key",
    "max_retries",
    "user_id",
)


def duration_ms(value: Duration, what: str = "duration") -> int:
    """Seconds (int/float) or a timedelta as integer milliseconds."""
    if isinstance(value, timedelta):
        secs = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        secs = float(value)
    else:
        raise TypeError(f"{what} must be seconds (int or float) or a timedelta")
    if secs != secs:  # NaN
        raise InvalidArgument(f"{what} must be a number of seconds")
    return int(round(secs * 1000))


def instant_ms(value: Instant, what: str = "run_at") -> int:
    """A datetime (naive means UTC) or Unix seconds as Unix milliseconds."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return int(round(value.timestamp() * 1000))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(round(float(value) * 1000))
    raise TypeError(f"{what} must be a datetime or Unix time in seconds")


def params_json(params: Any) -> Optional[bytes]:
    """Params as JSON text for the C API. A str or bytes is passed verbatim
    (the library validates it); anything else is serialised with json.dumps
    (a value that is not an object is then refused by the library)."""
    if params is None:
        return None
    if isinstance(params, bytes):
        return params
    if isinstance(params, str):
        return _lib.encode(params)
    try:
        text = json.dumps(params, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise BadJSON(f"params are not JSON-serialisable: {e}") from e
    return text.encode("utf-8")


def _check_opt(status: int, what: str, value: Any) -> None:
    # Option setters have no client to keep a message: say what was refused.
    if status != _lib.OK:
        raise error_for(status, f"{what} {value!r}: {_strerror(status)}")


def _strerror(status: int) -> str:
    return _lib.text(_lib.load().aipalq_strerror(status)) or f"status {status}"


def make_opts(
    priority: Optional[int] = None,
    queue: Optional[str] = None,
    delay: Optional[Duration] = None,
    run_at: Optional[Instant] = None,
    idempotency_key: Optional[str] = None,
    max_retries: Optional[int] = None,
    user_id: Optional[str] = None,
) -> Optional[int]:
    """An ``aipalq_opts *`` for these options (None when all are None). The
    caller frees it with ``aipalq_opts_free``; on an error nothing leaks."""
    if all(v is None for v in (priority, queue, delay, run_at, idempotency_key, max_retries, user_id)):
        return None
    if delay is not None and run_at is not None:
        raise InvalidArgument("give delay or run_at, not both")
    lib = _lib.load()
    opts = lib.aipalq_opts_new()
    if not opts:
        raise MemoryError("aipalq_opts_new")
    try:
        if priority is not None:
            _check_opt(lib.aipalq_opts_set_priority(opts, _int(priority, "priority")), "priority", priority)
        if queue is not None:
            _check_opt(lib.aipalq_opts_set_queue(opts, _lib.encode(queue)), "queue", queue)
        if delay is not None:
            _check_opt(lib.aipalq_opts_set_delay_ms(opts, duration_ms(delay, "delay")), "delay", delay)
        if run_at is not None:
            _check_opt(lib.aipalq_opts_set_run_at_ms(opts, instant_ms(run_at)), "run_at", run_at)
        if idempotency_key is not None:
            _check_opt(
                lib.aipalq_opts_set_idempotency_key(opts, _lib.encode(idempotency_key)),
                "idempotency_key",
                idempotency_key,
            )
        if max_retries is not None:
            _check_opt(
                lib.aipalq_opts_set_max_retries(opts, _int(max_retries, "max_retries")),
                "max_retries",
                max_retries,
            )
        if user_id is not None:
            _check_opt(lib.aipalq_opts_set_user_id(opts, _lib.encode(user_id)), "user_id", user_id)
    except BaseException:
        lib.aipalq_opts_free(opts)
        raise
    return opts


def _check_option_keys(options: Mapping[str, Any], where: str) -> None:
    for k in options:
        if k not in _OPTION_KEYS:
            raise TypeError(f"{where}() got an unexpected keyword argument {k!r}")


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int")
    if not -(2**31) <= value < 2**31:
        raise InvalidArgument(f"{what} {value} is out of range")
    return value


def _free_client(lib: ctypes.CDLL, handle: int) -> None:
    lib.aipalq_client_free(handle)


@dataclass(frozen=True)
class QueueDepth:
    """What a queue holds in Redis: ready to run, waiting for a time (delayed
    or backing off), and leased to workers."""

    ready: int
    scheduled: int
    leased: int

    @property
    def total(self) -> int:
        """Everything the queue holds."""
        return self.ready + self.scheduled + self.leased


@dataclass(frozen=True)
class Health:
    """The result of :meth:`Client.ping`. True when both servers answered."""

    redis: bool
    database: bool
    error: str = ""

    def __bool__(self) -> bool:
        return self.redis and self.database


class Client:
    """A connection to one libaipalq deployment (Redis + PostgreSQL).

    ``Client(redis_url, database_url)``; a URL left as None comes from
    ``AIPALQ_REDIS_URL`` / ``AIPALQ_DATABASE_URL`` (else
    ``redis://127.0.0.1:6379/0`` and libpq's defaults). ``namespace`` prefixes
    every Redis key (default ``"aipalq"``), so that separate deployments or
    test runs can share one Redis. Nothing connects until the first call that
    needs a server (or :meth:`connect`); a malformed URL is reported then, as
    :class:`~aipalq.BadURL`. ``synchronous_commit=False`` trades the last
    moment's enqueues in an operating-system crash for enqueues without a
    disk flush each (:meth:`set_synchronous_commit`).

    Producers must define a task type (:meth:`define_type` /
    :meth:`define_types`) before enqueueing it; the definitions live in this
    client (not in the database).

    Use it as a context manager, or call :meth:`close`; a client that is
    garbage-collected is closed then. ``close()`` may be called any number of
    times; afterwards every call raises :class:`~aipalq.Misuse`.

    Durations are seconds (int or float) or ``timedelta``; instants are
    datetimes (naive means UTC) or Unix seconds.
    """

    def __init__(
        self,
        redis_url: Optional[str] = None,
        database_url: Optional[str] = None,
        *,
        namespace: Optional[str] = None,
        connect_timeout: Optional[Duration] = None,
        command_timeout: Optional[Duration] = None,
        types: Optional[Sequence[Mapping[str, Any]]] = None,
        synchronous_commit: Optional[bool] = None,
    ) -> None:
        lib = _lib.load()
        self._lib = lib
        self._lock = threading.RLock()
        handle = lib.aipalq_client_new(_lib.encode(redis_url), _lib.encode(database_url))
        if not handle:
            raise MemoryError("aipalq_client_new")
        self._handle: Optional[int] = handle
        self._finalizer = weakref.finalize(self, _free_client, lib, handle)
        self.namespace = namespace or "aipalq"
        try:
            if namespace is not None:
                self._call(lib.aipalq_client_set_namespace, _lib.encode(namespace))
            if connect_timeout is not None or command_timeout is not None:
                self.set_timeouts(
                    connect_timeout if connect_timeout is not None else 5.0,
                    command_timeout if command_timeout is not None else 10.0,
                )
            if synchronous_commit is not None:
                self.set_synchronous_commit(synchronous_commit)
            if types:
                self.define_types(types)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Closes the connections and frees the C client. Idempotent."""
        with self._lock:
            self._handle = None
            self._finalizer()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._handle is None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<aipalq.Client namespace={self.namespace!r} {state}>"

    # -------------------------------------------------------------- helpers

    def _h(self) -> int:
        if self._handle is None:
            raise Misuse("the client is closed")
        return self._handle

    def _raise(self, status: int) -> None:
        msg = _lib.text(self._lib.aipalq_client_errmsg(self._handle)) or ""
        raise error_for(status, msg)

    def _call(self, fn: Callable[..., int], *args: Any, ok: Tuple[int, ...] = (_lib.OK,)) -> int:
        """Calls fn(handle, *args) under the lock; raises on an error status."""
        with self._lock:
            st = fn(self._h(), *args)
            if st not in ok:
                self._raise(st)
            return st

    def errmsg(self) -> str:
        """The library's message for the last call ("" after a success; after
        an enqueue that committed but could not dispatch, it says so)."""
        with self._lock:
            return _lib.text(self._lib.aipalq_client_errmsg(self._h())) or ""

    # ----------------------------------------------------------- connection

    def set_timeouts(self, connect: Duration, command: Duration) -> None:
        """Timeout for establishing each connection and for each Redis command."""
        self._call(
            self._lib.aipalq_client_set_timeouts,
            duration_ms(connect, "connect timeout"),
            duration_ms(command, "command timeout"),
        )

    def set_synchronous_commit(self, on: bool) -> None:
        """Durability of this client's enqueues. On (the default): an enqueue
        returns after PostgreSQL has flushed its commit to disk. Off:
        PostgreSQL's ``synchronous_commit`` is off for this client's
        connection, so an enqueue costs no disk flush; a commit reaches the
        disk within a fraction of a second, and a crash of the operating
        system (not of PostgreSQL) can lose the last moment's enqueues.
        Applies from the next connection (a connected client reconnects on its
        next call). Transactional enqueues use your connection and its
        setting instead."""
        if not isinstance(on, bool):
            raise TypeError("synchronous_commit must be a bool")
        self._call(self._lib.aipalq_client_set_synchronous_commit, 1 if on else 0)

    def set_list_total_max_age(self, max_age: Duration) -> None:
        """How old a list's ``total`` may be (default 0: every :meth:`list`
        counts the matching tasks). Counting is linear in the matching tasks
        while a page is not: a client that lists often may reuse a total
        counted less than ``max_age`` ago for the same filters (whatever the
        page) and run only the page's query; ``TaskPage.total_at`` tells when
        the total was counted. Raises InvalidArgument for a negative age."""
        self._call(self._lib.aipalq_client_set_list_total_max_age, duration_ms(max_age, "max_age"))

    def connect(self) -> None:
        """Connects to both servers now (otherwise the first call does)."""
        self._call(self._lib.aipalq_client_connect)

    def ping(self) -> Health:
        """Checks both servers with a round trip each. Returns a :class:`Health`
        (true when both answered); server errors are reported in it, not raised."""
        r, p = c_int(0), c_int(0)
        with self._lock:
            st = self._lib.aipalq_ping(self._h(), byref(r), byref(p))
            msg = "" if st == _lib.OK else (_lib.text(self._lib.aipalq_client_errmsg(self._handle)) or "")
        if st not in (_lib.OK, 9, 10, 8):  # EREDIS, EPG, EBADURL are answers
            raise error_for(st, msg)
        return Health(bool(r.value), bool(p.value), msg)

    def migrate(self) -> None:
        """Applies the schema migrations (safe to run from many processes)."""
        self._call(self._lib.aipalq_migrate)

    def schema_version(self) -> int:
        """The schema version recorded in the database (0: never migrated)."""
        v = c_int(0)
        self._call(self._lib.aipalq_schema_version, byref(v))
        return v.value

    # ----------------------------------------------------------- task types

    def define_types(self, types: Sequence[Mapping[str, Any]]) -> None:
        """Defines (or redefines) task types, all or nothing.

        Each entry is a dict in the library's shape: ``name`` and ``queue``
        (required), optional ``priority``, ``max_retries``,
        ``backoff_base_ms``, ``backoff_cap_ms``, ``backoff_jitter_percent``,
        ``soft_time_limit_ms``, ``hard_time_limit_ms``, ``result_ttl_ms``.
        A setting left out takes the library's default.
        """
        if isinstance(types, Mapping):
            types = [types]
        text = json.dumps(list(types), separators=(",", ":"))
        self._call(self._lib.aipalq_types_define_json, _lib.encode(text))

    def define_type(
        self,
        name: str,
        queue: str = "default",
        *,
        priority: Optional[int] = None,
        max_retries: Optional[int] = None,
        backoff_base: Optional[Duration] = None,
        backoff_cap: Optional[Duration] = None,
        backoff_jitter_percent: Optional[int] = None,
        soft_time_limit: Optional[Duration] = None,
        hard_time_limit: Optional[Duration] = None,
        result_ttl: Optional[Duration] = None,
    ) -> None:
        """Defines (or redefines) one task type routed to ``queue``.

        Settings left as None take the library's defaults (priority 5, max
        retries 3, backoff 60 s doubling up to 1 h with 10% jitter, soft
        limit 25 min, hard limit 30 min, result TTL 0: no copy of outcomes
        in Redis, PostgreSQL holds them). A time limit of 0 disables it.
        """
        self.define_types([type_definition(
            name, queue, priority=priority, max_retries=max_retries,
            backoff_base=backoff_base, backoff_cap=backoff_cap,
            backoff_jitter_percent=backoff_jitter_percent, soft_time_limit=soft_time_limit,
            hard_time_limit=hard_time_limit, result_ttl=result_ttl,
        )])

    def types(self) -> List[Dict[str, Any]]:
        """The types defined on this client, in the shape define_types takes."""
        with self._lock:
            ptr = self._lib.aipalq_types_json(self._h())
        text = _lib.take_string(ptr)
        if text is None:
            raise MemoryError("aipalq_types_json")
        return json.loads(text)

    # -------------------------------------------------------------- enqueue

    def enqueue(
        self,
        task_type: str,
        params: Params = None,
        *,
        priority: Optional[int] = None,
        queue: Optional[str] = None,
        delay: Optional[Duration] = None,
        run_at: Optional[Instant] = None,
        idempotency_key: Optional[str] = None,
        max_retries: Optional[int] = None,
        user_id: Optional[str] = None,
    ) -> TaskId:
        """Enqueues one task of a defined type and returns its id.

        ``params`` is a dict (serialised as JSON; at most 1 MiB) or JSON text.
        ``priority`` 1..10 (10 most urgent) and ``queue`` override the type's;
        ``delay`` (seconds) or ``run_at`` (datetime / Unix seconds) schedule
        it. With an ``idempotency_key`` that matches an unfinished task no new
        task is created and that task's id is returned, with ``.created``
        False. The task is committed to PostgreSQL before this returns.

        Raises UnknownTaskType, BadJSON, NotAnObject, TooBig, InvalidPriority,
        InvalidQueue, InvalidArgument, DatabaseError, RedisError (before the
        commit only).
        """
        options = dict(priority=priority, queue=queue, delay=delay, run_at=run_at,
                       idempotency_key=idempotency_key, max_retries=max_retries, user_id=user_id)
        return self._enqueue_one(_NO_TX, task_type, params, options)

    def enqueue_tx(self, conn: Any, task_type: str, params: Params = None, **options: Any) -> TaskId:
        """Enqueues one task inside your own PostgreSQL transaction.

        The task is inserted through ``conn`` (an :class:`aipalq.PgConnection`,
        a psycopg2 connection, or a ``PGconn *`` address: see :mod:`aipalq.pg`)
        and is dispatched only if and after that transaction commits (it is
        written to an outbox that workers relay, woken at commit; or call
        :meth:`relay_outbox`). If the transaction rolls back, the task never
        existed. ``params`` and the keyword options (``priority``, ``queue``,
        ``delay``, ``run_at``, ``idempotency_key``, ``max_retries``,
        ``user_id``) and the errors are those of :meth:`enqueue`; a failed
        enqueue aborts the caller's transaction, as any failed statement does.
        The connection is used, never closed.
        """
        _check_option_keys(options, "enqueue_tx")
        return self._enqueue_one(conn, task_type, params, options)

    def _enqueue_one(self, conn: Any, task_type: str, params: Params, options: Mapping[str, Any]) -> TaskId:
        """aipalq_enqueue, or aipalq_enqueue_tx through conn (unless it is _NO_TX)."""
        body = params_json(params)
        opts = make_opts(**options)
        out = ctypes.create_string_buffer(_lib.ID_SIZE)
        created = c_int(0)
        try:
            ttype = _lib.encode(task_type)
            if conn is _NO_TX:
                self._call(self._lib.aipalq_enqueue, ttype, body, opts, out, byref(created))
            else:
                ptr = pg.connection_pointer(conn)
                self._call(self._lib.aipalq_enqueue_tx, ptr, ttype, body, opts, out, byref(created))
        finally:
            self._lib.aipalq_opts_free(opts)
        return TaskId(out.value.decode("ascii"), bool(created.value))

    def enqueue_many(
        self,
        tasks: Iterable[Union[Tuple[str, Params], Mapping[str, Any]]],
        **defaults: Any,
    ) -> List[TaskId]:
        """Enqueues many tasks in one PostgreSQL transaction, all or nothing.

        Each task is a ``(task_type, params)`` pair or a dict with ``type``,
        optional ``params`` and any option of :meth:`enqueue` (``priority``,
        ``queue``, ``delay``, ``run_at``, ``idempotency_key``,
        ``max_retries``, ``user_id``). Keyword arguments give defaults for
        every task. Returns the ids in order. If any task is invalid nothing
        is enqueued and the error names the task's index.
        """
        return self._enqueue_batch(_NO_TX, tasks, defaults)

    def enqueue_many_tx(
        self,
        conn: Any,
        tasks: Iterable[Union[Tuple[str, Params], Mapping[str, Any]]],
        **defaults: Any,
    ) -> List[TaskId]:
        """:meth:`enqueue_many` inside your own PostgreSQL transaction, as
        :meth:`enqueue_tx` does for one task: the tasks are dispatched only if
        and after ``conn``'s transaction commits."""
        return self._enqueue_batch(conn, tasks, defaults)

    def _enqueue_batch(
        self,
        conn: Any,
        tasks: Iterable[Union[Tuple[str, Params], Mapping[str, Any]]],
        defaults: Dict[str, Any],
    ) -> List[TaskId]:
        """aipalq_enqueue_batch, or aipalq_enqueue_batch_tx through conn."""
        _check_option_keys(defaults, "enqueue_many" if conn is _NO_TX else "enqueue_many_tx")
        lib = self._lib
        batch = lib.aipalq_batch_new()
        if not batch:
            raise MemoryError("aipalq_batch_new")
        try:
            for i, item in enumerate(tasks):
                if isinstance(item, Mapping):
                    unknown = set(item) - set(_OPTION_KEYS) - {"type", "params"}
                    if unknown:
                        raise TypeError(f"tasks[{i}]: unknown keys {sorted(unknown)}")
                    if "type" not in item:
                        raise InvalidArgument(f"tasks[{i}] has no 'type'")
                    ttype, params = item["type"], item.get("params")
                    options = {**defaults, **{k: item[k] for k in _OPTION_KEYS if k in item}}
                else:
                    ttype, params = item
                    options = dict(defaults)
                body = params_json(params)
                try:
                    opts = make_opts(**options)
                except AipalqError as e:
                    raise type(e)(f"tasks[{i}]: {e.message}", e.status) from None
                try:
                    st = lib.aipalq_batch_add(batch, _lib.encode(ttype), body, opts)
                finally:
                    lib.aipalq_opts_free(opts)
                if st != _lib.OK:
                    raise error_for(st, f"tasks[{i}]: {_strerror(st)}")
            if conn is _NO_TX:
                self._call(lib.aipalq_enqueue_batch, batch)
            else:
                self._call(lib.aipalq_enqueue_batch_tx, pg.connection_pointer(conn), batch)
            n = lib.aipalq_batch_size(batch)
            return [
                TaskId(_lib.text(lib.aipalq_batch_id(batch, i)) or "", bool(lib.aipalq_batch_created(batch, i)))
                for i in range(n)
            ]
        finally:
            lib.aipalq_batch_free(batch)

    # ------------------------------------------------------------- records

    def get(self, task_id: str) -> Task:
        """Reads a task from PostgreSQL. Raises BadTaskId or NotFound."""
        ptr = c_void_p()
        self._call(self._lib.aipalq_get, _lib.encode(str(task_id)), byref(ptr))
        try:
            return Task._from_handle(ptr.value)
        finally:
            self._lib.aipalq_task_free(ptr)

    def get_many(self, task_ids: Iterable[str]) -> List[Optional[Task]]:
        """Reads up to 1,000 tasks in one round trip: the task of each id in
        order, or None where there is no such task (an id given twice gets two
        snapshots). Raises BadTaskId (naming the id's index) before reading
        anything, InvalidArgument for more than 1,000 ids."""
        ids = [_lib.encode(str(i)) for i in task_ids]
        if not ids:
            return []
        out = (c_void_p * len(ids))()
        self._call(self._lib.aipalq_get_many, (ctypes.c_char_p * len(ids))(*ids), len(ids), out)
        try:
            return [None if p is None else Task._from_handle(p) for p in out]
        finally:
            for p in out:
                self._lib.aipalq_task_free(p)

    def list(
        self,
        *,
        state: Union[None, str, State, Iterable[Union[str, State]]] = None,
        type: Optional[str] = None,
        queue: Optional[str] = None,
        user_id: Optional[str] = None,
        limit: int = 20,
        offset: int = 0,
        oldest_first: bool = False,
    ) -> TaskPage:
        """One page of tasks matching every filter given, newest first (or
        oldest first). ``state`` is a state or several (any of them matches);
        ``limit`` 1..1000. The page's ``total`` counts all matching tasks."""
        lib = self._lib
        f = lib.aipalq_filter_new()
        if not f:
            raise MemoryError("aipalq_filter_new")
        try:
            if state is not None:
                states = [state] if isinstance(state, (str, State)) else state
                for s in states:
                    _check_opt(lib.aipalq_filter_add_state(f, State.coerce(s).number), "state", s)
            if type is not None:
                _check_opt(lib.aipalq_filter_set_type(f, _lib.encode(type)), "type", type)
            if queue is not None:
                _check_opt(lib.aipalq_filter_set_queue(f, _lib.encode(queue)), "queue", queue)
            if user_id is not None:
                _check_opt(lib.aipalq_filter_set_user_id(f, _lib.encode(user_id)), "user_id", user_id)
            _check_opt(lib.aipalq_filter_set_page(f, int(limit), int(offset)), "page (limit, offset)",
                       (limit, offset))
            lib.aipalq_filter_set_oldest_first(f, 1 if oldest_first else 0)
            out = c_void_p()
            self._call(lib.aipalq_list_tasks, f, byref(out))
        finally:
            lib.aipalq_filter_free(f)
        return _take_list(lib, out)

    def list_pending(self, limit: int = 20, offset: int = 0) -> TaskPage:
        """Tasks waiting to run (pending, scheduled, retrying), oldest first."""
        out = c_void_p()
        self._call(self._lib.aipalq_list_pending, int(limit), int(offset), byref(out))
        return _take_list(self._lib, out)

    def list_failed(self, limit: int = 20, offset: int = 0) -> TaskPage:
        """Failed tasks, newest first."""
        out = c_void_p()
        self._call(self._lib.aipalq_list_failed, int(limit), int(offset), byref(out))
        return _take_list(self._lib, out)

    def cancel(self, task_id: str) -> State:
        """Cancels a task. A waiting task is cancelled at once (returns
        CANCELLED); a running one gets a cancel request its handler sees within
        a second (returns RUNNING). Raises IllegalTransition for a finished
        task, NotFound, BadTaskId."""
        st = c_int(0)
        self._call(self._lib.aipalq_cancel, _lib.encode(str(task_id)), byref(st))
        return State.from_number(st.value)

    def retry(self, task_id: str) -> None:
        """Queues a failed or cancelled task again with a fresh budget. Raises
        IllegalTransition for a pending, running or completed task."""
        self._call(self._lib.aipalq_retry, _lib.encode(str(task_id)))

    def wait(
        self,
        task_id: str,
        timeout: Optional[Duration] = None,
        *,
        poll_interval: Duration = 0.5,
    ) -> Task:
        """Waits until the task is completed, failed or cancelled and returns
        it. Polls PostgreSQL, starting at 10 ms and backing off to
        ``poll_interval``. Raises :class:`~aipalq.Timeout` when ``timeout``
        (None: forever) passes first; NotFound / BadTaskId at once.

        The lock is not held between polls, so other threads can use the
        client meanwhile.
        """
        deadline = None if timeout is None else time.monotonic() + duration_ms(timeout, "timeout") / 1000.0
        cap = max(duration_ms(poll_interval, "poll_interval") / 1000.0, 0.001)
        interval = 0.01
        while True:
            task = self.get(task_id)
            if task.is_final:
                return task
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise Timeout(
                    f"task {task_id} did not finish within {timeout} s (it is {task.state.value})"
                )
            sleep = interval if deadline is None else min(interval, deadline - now)
            time.sleep(max(sleep, 0.0))
            interval = min(interval * 1.5, cap)

    # --------------------------------------------------------------- queues

    def queue_depth(self, queue: str = "default") -> QueueDepth:
        """Depth of a queue in Redis (ready, scheduled, leased)."""
        r, s, l = c_int64(0), c_int64(0), c_int64(0)
        self._call(self._lib.aipalq_queue_depth, _lib.encode(queue), byref(r), byref(s), byref(l))
        return QueueDepth(r.value, s.value, l.value)

    def state_counts(self) -> Dict[str, Dict[str, int]]:
        """Counts of tasks per queue and state from PostgreSQL:
        ``{"queue": {"pending": n, ..., "completed_last_hour": n}}``."""
        out = c_void_p()
        self._call(self._lib.aipalq_state_counts_json, byref(out))
        return json.loads(_lib.take_string(out.value) or "{}")

    def workers(self, dead_after: Duration = 10.0) -> List[Dict[str, Any]]:
        """Live and recently dead workers of this namespace, as dicts (id,
        host, pid, queues, concurrency, mode, counts, running, alive, ...)."""
        out = c_void_p()
        self._call(self._lib.aipalq_workers_json, duration_ms(dead_after, "dead_after"), byref(out))
        return json.loads(_lib.take_string(out.value) or "[]")

    def relay_outbox(self, max: int = 1000) -> int:
        """Dispatches up to ``max`` committed tasks from the transactional
        outbox; returns how many moved."""
        n = c_int64(0)
        self._call(self._lib.aipalq_relay_outbox, int(max), byref(n))
        return n.value

    def reconcile(self, grace: Duration = 15.0) -> Tuple[int, int]:
        """Repairs drift between PostgreSQL and Redis for tasks quiet longer
        than ``grace``; returns (redispatched, repaired)."""
        a, b = c_int64(0), c_int64(0)
        self._call(self._lib.aipalq_reconcile, duration_ms(grace, "grace"), byref(a), byref(b))
        return a.value, b.value


def type_definition(
    name: str,
    queue: str = "default",
    *,
    priority: Optional[int] = None,
    max_retries: Optional[int] = None,
    backoff_base: Optional[Duration] = None,
    backoff_cap: Optional[Duration] = None,
    backoff_jitter_percent: Optional[int] = None,
    soft_time_limit: Optional[Duration] = None,
    hard_time_limit: Optional[Duration] = None,
    result_ttl: Optional[Duration] = None,
) -> Dict[str, Any]:
    """A type definition dict (the library's JSON shape) from Python values."""
    d: Dict[str, Any] = {"name": name, "queue": queue}
    if priority is not None:
        d["priority"] = priority
    if max_retries is not None:
        d["max_retries"] = max_retries
    if backoff_base is not None:
        d["backoff_base_ms"] = duration_ms(backoff_base, "backoff_base")
    if backoff_cap is not None:
        d["backoff_cap_ms"] = duration_ms(backoff_cap, "backoff_cap")
    if backoff_jitter_percent is not None:
        d["backoff_jitter_percent"] = backoff_jitter_percent
    if soft_time_limit is not None:
        d["soft_time_limit_ms"] = duration_ms(soft_time_limit, "soft_time_limit")
    if hard_time_limit is not None:
        d["hard_time_limit_ms"] = duration_ms(hard_time_limit, "hard_time_limit")
    if result_ttl is not None:
        d["result_ttl_ms"] = duration_ms(result_ttl, "result_ttl")
    return d


def _take_list(lib: ctypes.CDLL, out: c_void_p) -> TaskPage:
    """Reads and frees an ``aipalq_list *``."""
    try:
        n = lib.aipalq_list_count(out)
        tasks = [Task._from_handle(lib.aipalq_list_at(out, i)) for i in range(n)]
        return TaskPage(tasks, lib.aipalq_list_total(out), _time(lib.aipalq_list_total_ms(out)))
    finally:
        lib.aipalq_list_free(out)
