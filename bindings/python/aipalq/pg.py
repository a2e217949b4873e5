"""Your own PostgreSQL connection, for the transactional enqueue.

:meth:`Client.enqueue_tx <aipalq.Client.enqueue_tx>` and
:meth:`Client.enqueue_many_tx <aipalq.Client.enqueue_many_tx>` insert tasks
through the caller's libpq connection (a ``PGconn *``), inside the caller's
open transaction: the tasks are dispatched only if and after that transaction
commits, and never existed if it rolls back. They accept as ``conn``:

* a :class:`PgConnection`: the minimal libpq connection of this module
  (ctypes, standard library only), for programs without a driver;
* a psycopg2 connection (2.8 or later, which exposes ``pgconn_ptr``). In its
  default mode (``autocommit`` off) psycopg2 opens a transaction only with the
  first statement it runs; if none is open yet, the bindings run ``SELECT 1``
  through the connection so that psycopg2 opens it and ``conn.commit()`` /
  ``conn.rollback()`` decide the tasks' fate. With ``autocommit`` on, each
  enqueue commits by itself;
* a psycopg 3 connection (``conn.pgconn.pgconn_ptr``) or its ``PGconn``,
  handled the same way (not covered by the test suite);
* an ``int``: the address of a ``PGconn`` obtained elsewhere. It is used as it
  is: inside its open transaction, or as a statement of its own when none is
  open.

The connection must belong to the libpq that libaipalq uses: a ``PGconn`` is
an opaque object of one copy of libpq, and cannot be handed to another.
Binary wheels (``psycopg2-binary``, ``psycopg[binary]``) bundle a copy of
their own; a connection of a driver is therefore refused when more than one
libpq is loaded into the process. Use a driver built against the system
libpq (Debian's ``python3-psycopg2``, or ``pip install --no-binary``).

The connection is used, never closed, and must not be used by another thread
(or by the driver) during the call. A failed enqueue aborts the caller's
transaction, as any failed statement does.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
import weakref
from contextlib import contextmanager
from ctypes import c_char_p, c_int, c_void_p
from typing import Any, Iterator, List, Optional, Sequence, Set, Tuple

from . import _lib
from .errors import InvalidArgument, Misuse, error_for

#: The soname libaipalq is linked against.
LIBPQ_SONAME = "libpq.so.5"

_EPG = 10
# ConnStatusType, ExecStatusType and PGTransactionStatusType values.
_CONNECTION_OK = 0
_PGRES_EMPTY_QUERY, _PGRES_COMMAND_OK, _PGRES_TUPLES_OK = 0, 1, 2
_TRANSACTION_STATUS = ("idle", "active", "intrans", "inerror", "unknown")
_IDLE = 0

_SIGNATURES = {
    "PQconnectdb": (c_void_p, [c_char_p]),
    "PQstatus": (c_int, [c_void_p]),
    "PQerrorMessage": (c_char_p, [c_void_p]),
    "PQfinish": (None, [c_void_p]),
    "PQexec": (c_void_p, [c_void_p, c_char_p]),
    "PQexecParams": (
        c_void_p,
        [c_void_p, c_char_p, c_int, c_void_p, ctypes.POINTER(c_char_p), c_void_p, c_void_p, c_int],
    ),
    "PQresultStatus": (c_int, [c_void_p]),
    "PQresultErrorMessage": (c_char_p, [c_void_p]),
    "PQclear": (None, [c_void_p]),
    "PQntuples": (c_int, [c_void_p]),
    "PQnfields": (c_int, [c_void_p]),
    "PQgetvalue": (c_char_p, [c_void_p, c_int, c_int]),
    "PQgetisnull": (c_int, [c_void_p, c_int, c_int]),
    "PQtransactionStatus": (c_int, [c_void_p]),
}

_lock = threading.Lock()
_libpq: Optional[ctypes.CDLL] = None


def libpq() -> ctypes.CDLL:
    """libpq as libaipalq uses it.

    libaipalq is loaded first, so that asking the dynamic loader for the
    soname it links to hands back the copy already in the process."""
    global _libpq
    if _libpq is not None:
        return _libpq
    with _lock:
        if _libpq is None:
            _lib.load()
            try:
                lib = ctypes.CDLL(LIBPQ_SONAME)
            except OSError:
                name = ctypes.util.find_library("pq")
                if not name:
                    raise
                lib = ctypes.CDLL(name)
            _lib.declare(lib, _SIGNATURES)
            _libpq = lib
    return _libpq


def _libpq_copies() -> Optional[Set[str]]:
    """The libpq files mapped into this process (None where /proc is not)."""
    try:
        with open("/proc/self/maps") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    found = set()
    for line in lines:
        fields = line.split(None, 5)
        base = os.path.basename(fields[5]) if len(fields) == 6 else ""
        if base.startswith("libpq") and ".so" in base:
            found.add(os.path.realpath(fields[5]))
    return found


def _param(value: Any) -> Optional[bytes]:
    if value is None:
        return None
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, bytes):
        return value
    return _lib.encode(str(value))


def _finish(lib: ctypes.CDLL, conn: int) -> None:
    lib.PQfinish(conn)


class PgConnection:
    """A minimal libpq connection (ctypes, no driver needed), for
    :meth:`Client.enqueue_tx <aipalq.Client.enqueue_tx>` and your own
    statements in the same transaction::

        with aipalq.PgConnection(url) as conn, conn.transaction():
            conn.execute("INSERT INTO orders (id) VALUES ($1)", [order_id])
            client.enqueue_tx(conn, "ship_order", {"order": order_id})
        # committed: the task is dispatched; an exception rolled both back

    ``conninfo`` is a libpq URL or conninfo string; None takes
    ``AIPALQ_DATABASE_URL``, else libpq's own defaults (``PGHOST``, ...).
    Statements run with :meth:`execute` (text parameters ``$1``, ...; rows
    come back as tuples of str or None). Failures raise
    :class:`aipalq.DatabaseError` with libpq's message. Like a client, a
    connection is used by one thread at a time; it is closed by
    :meth:`close`, by ``with``, or when collected.
    """

    def __init__(self, conninfo: Optional[str] = None) -> None:
        lib = libpq()
        self._lib = lib
        self._lock = threading.RLock()
        if conninfo is None:
            conninfo = os.environ.get("AIPALQ_DATABASE_URL", "")
        conn = lib.PQconnectdb(_lib.encode(conninfo))
        if not conn:
            raise MemoryError("PQconnectdb")
        self._conn: Optional[int] = conn
        self._finalizer = weakref.finalize(self, _finish, lib, conn)
        if lib.PQstatus(conn) != _CONNECTION_OK:
            msg = _lib.text(lib.PQerrorMessage(conn)) or ""
            self.close()
            raise error_for(_EPG, f"PostgreSQL: {msg.strip()}")

    def _c(self) -> int:
        if self._conn is None:
            raise Misuse("the PostgreSQL connection is closed")
        return self._conn

    @property
    def pgconn_ptr(self) -> int:
        """The address of the ``PGconn`` (what ``enqueue_tx`` passes to C)."""
        return self._c()

    @property
    def transaction_status(self) -> str:
        """libpq's transaction status: ``"idle"`` (no transaction open),
        ``"intrans"``, ``"inerror"`` (a statement failed: only a rollback
        helps), ``"active"`` or ``"unknown"`` (the connection is bad)."""
        with self._lock:
            return _TRANSACTION_STATUS[self._lib.PQtransactionStatus(self._c())]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> List[Tuple[Optional[str], ...]]:
        """Runs one statement (several, separated by ``;``, when there are
        no parameters) and returns its rows. Parameters are sent as text:
        None is NULL, booleans are true/false, bytes are sent as they are,
        anything else as ``str(value)``."""
        lib = self._lib
        with self._lock:
            conn = self._c()
            if params:
                values = (c_char_p * len(params))(*[_param(v) for v in params])
                res = lib.PQexecParams(conn, _lib.encode(sql), len(params), None, values, None, None, 0)
            else:
                res = lib.PQexec(conn, _lib.encode(sql))
            if not res:
                raise error_for(_EPG, f"PostgreSQL: {(_lib.text(lib.PQerrorMessage(conn)) or '').strip()}")
            try:
                st = lib.PQresultStatus(res)
                if st not in (_PGRES_EMPTY_QUERY, _PGRES_COMMAND_OK, _PGRES_TUPLES_OK):
                    msg = _lib.text(lib.PQresultErrorMessage(res)) or ""
                    raise error_for(_EPG, f"PostgreSQL: {msg.strip()}")
                rows, cols = lib.PQntuples(res), lib.PQnfields(res)
                return [
                    tuple(
                        None if lib.PQgetisnull(res, r, c) else _lib.text(lib.PQgetvalue(res, r, c))
                        for c in range(cols)
                    )
                    for r in range(rows)
                ]
            finally:
                lib.PQclear(res)

    def begin(self) -> None:
        """Opens a transaction."""
        self.execute("BEGIN")

    def commit(self) -> None:
        """Commits the open transaction (tasks enqueued in it are dispatched)."""
        self.execute("COMMIT")

    def rollback(self) -> None:
        """Rolls the open transaction back (tasks enqueued in it never existed)."""
        self.execute("ROLLBACK")

    @contextmanager
    def transaction(self) -> Iterator["PgConnection"]:
        """``with conn.transaction():`` BEGIN, then COMMIT when the block
        ends normally, ROLLBACK when it raises (the exception propagates)."""
        self.begin()
        try:
            yield self
        except BaseException:
            if self._conn is not None:
                self.rollback()
            raise
        self.commit()

    def close(self) -> None:
        """Closes the connection. Idempotent."""
        with self._lock:
            self._conn = None
            self._finalizer()

    @property
    def closed(self) -> bool:
        return self._conn is None

    def __enter__(self) -> "PgConnection":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<aipalq.PgConnection {'closed' if self.closed else self.transaction_status}>"


_CONN_TYPES = "conn must be a PgConnection, a psycopg2 (2.8+) / psycopg connection or a PGconn * address"


def _driver_name(conn: Any) -> str:
    return (type(conn).__module__ or "").split(".")[0]


def connection_pointer(conn: Any) -> int:
    """The ``PGconn *`` address of ``conn`` (see the module documentation for
    what is accepted), with a driver's transaction opened when the driver
    would open one. 0 stays 0: the library reports the NULL connection."""
    if isinstance(conn, bool) or conn is None:
        raise TypeError(f"{_CONN_TYPES}, not {conn!r}")
    if isinstance(conn, int):
        return conn
    if isinstance(conn, PgConnection):
        return conn.pgconn_ptr
    holder = conn
    if not hasattr(holder, "pgconn_ptr") and hasattr(holder, "pgconn"):
        holder = holder.pgconn  # psycopg 3: Connection.pgconn is its PGconn
    if not hasattr(holder, "pgconn_ptr"):
        raise TypeError(f"{_CONN_TYPES}, not {type(conn).__name__}")
    if getattr(conn, "closed", False) or not holder.pgconn_ptr:
        raise Misuse(f"the {_driver_name(conn)} connection is closed")
    copies = _libpq_copies()
    if copies is not None and len(copies) > 1:
        raise InvalidArgument(
            f"more than one libpq is loaded ({', '.join(sorted(copies))}): a {_driver_name(conn)} "
            "connection from a binary wheel cannot be used by libaipalq; use a driver built "
            "against the system libpq (e.g. Debian's python3-psycopg2)"
        )
    info = getattr(conn, "info", None)
    if info is not None and not getattr(conn, "autocommit", True) and info.transaction_status == _IDLE:
        # The driver opens its transaction with its first statement; let it,
        # so that its commit() and rollback() decide.
        cur = conn.cursor()
        try:
            cur.execute("SELECT 1")
        finally:
            cur.close()
    return int(holder.pgconn_ptr)


__all__ = ["LIBPQ_SONAME", "PgConnection", "connection_pointer", "libpq"]
