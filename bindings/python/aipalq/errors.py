"""Exceptions: one class per ``aipalq_status`` code, in a small hierarchy.

Every error the C library reports becomes an :class:`AipalqError` subclass
chosen by its status code, carrying the library's message (the client's
``aipalq_client_errmsg``, or the worker's, or the status' own sentence when the
call has no handle to keep one)::

    AipalqError                       .status, .code ("EINVAL"), .message
    ├── InvalidArgument (ValueError)  EINVAL
    │   ├── BadJSON                   EBADJSON
    │   ├── NotAnObject               ENOTOBJECT
    │   ├── InvalidPriority           EPRIORITY
    │   ├── UnknownTaskType           EUNKNOWNTYPE
    │   ├── TooBig                    ETOOBIG
    │   ├── BadTaskId                 EBADID
    │   ├── InvalidQueue              EQUEUE
    │   └── BadURL                    EBADURL
    ├── NotFound (LookupError)        ENOTFOUND
    ├── IllegalTransition             EILLEGAL
    ├── ServiceError (ConnectionError)
    │   ├── RedisError                EREDIS
    │   └── DatabaseError             EPG
    ├── StaleDelivery                 ESTALE
    ├── SchemaError                   ESCHEMA
    ├── OutOfMemory (MemoryError)     ENOMEM
    ├── Timeout (TimeoutError)        ETIMEOUT (also Client.wait running out of time)
    ├── Misuse                        EMISUSE (e.g. a closed client)
    ├── ShuttingDown                  ESHUTDOWN
    ├── NoHandler                     EHANDLER
    └── LibraryError (ImportError)    the library is missing or of the wrong version
        ├── LibraryNotFoundError
        └── LibraryVersionError

:class:`PermanentError` is not a library error: a task handler raises it (or
a subclass) to fail its task without a retry.
"""

from __future__ import annotations

from typing import Dict, Optional, Type


class AipalqError(Exception):
    """Base of every error from libaipalq.

    Attributes:
        status: the ``aipalq_status`` number (None for errors raised by the
            bindings themselves, such as a missing library).
        code: the status name without prefix, e.g. ``"ENOTFOUND"``.
        message: the library's message for this failure.
    """

    status: Optional[int] = None
    code: str = ""

    def __init__(self, message: str = "", status: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
            self.code = _NAMES.get(status, self.code or "UNKNOWN")

    def __str__(self) -> str:
        return self.message


class InvalidArgument(AipalqError, ValueError):
    """An argument was rejected (EINVAL); the subclasses say which kind."""

    status, code = 2, "EINVAL"


class BadJSON(InvalidArgument):
    """Params (or a result, or type definitions) are not valid JSON (EBADJSON)."""

    status, code = 3, "EBADJSON"


class NotAnObject(InvalidArgument):
    """Params must be a JSON object (ENOTOBJECT)."""

    status, code = 4, "ENOTOBJECT"


class InvalidPriority(InvalidArgument):
    """A priority outside 1..10 (EPRIORITY)."""

    status, code = 5, "EPRIORITY"


class UnknownTaskType(InvalidArgument):
    """The task type is not defined on this client (EUNKNOWNTYPE)."""

    status, code = 6, "EUNKNOWNTYPE"


class TooBig(InvalidArgument):
    """Params or a result exceed the size limit (ETOOBIG)."""

    status, code = 7, "ETOOBIG"


class BadURL(InvalidArgument):
    """A malformed Redis or PostgreSQL URL (EBADURL)."""

    status, code = 8, "EBADURL"


class BadTaskId(InvalidArgument):
    """A task id that is not a UUID (EBADID)."""

    status, code = 18, "EBADID"


class InvalidQueue(InvalidArgument):
    """An invalid queue name (EQUEUE)."""

    status, code = 19, "EQUEUE"


class NotFound(AipalqError, LookupError):
    """No task with that id (ENOTFOUND)."""

    status, code = 11, "ENOTFOUND"


class IllegalTransition(AipalqError):
    """The state machine does not allow this (EILLEGAL), e.g. cancelling a
    completed task or retrying a running one."""

    status, code = 12, "EILLEGAL"


class ServiceError(AipalqError, ConnectionError):
    """Redis or PostgreSQL is unreachable or failed. The client reconnects on
    the next call, so the call can simply be repeated."""


class RedisError(ServiceError):
    """Redis is unreachable or failed (EREDIS)."""

    status, code = 9, "EREDIS"


class DatabaseError(ServiceError):
    """PostgreSQL is unreachable or failed (EPG)."""

    status, code = 10, "EPG"


class StaleDelivery(AipalqError):
    """The delivery lost its lease; another delivery owns the task (ESTALE)."""

    status, code = 13, "ESTALE"


class SchemaError(AipalqError):
    """The database schema is newer than this library (ESCHEMA)."""

    status, code = 14, "ESCHEMA"


class OutOfMemory(AipalqError, MemoryError):
    """The library ran out of memory (ENOMEM)."""

    status, code = 15, "ENOMEM"


class Timeout(AipalqError, TimeoutError):
    """An operation timed out (ETIMEOUT); also raised by ``Client.wait``."""

    status, code = 16, "ETIMEOUT"


class Misuse(AipalqError):
    """Library misuse (EMISUSE): a closed or freed handle, a running worker
    reconfigured, a job used after its handler returned."""

    status, code = 17, "EMISUSE"


class ShuttingDown(AipalqError):
    """The worker is shutting down (ESHUTDOWN)."""

    status, code = 20, "ESHUTDOWN"


class NoHandler(AipalqError):
    """No handler registered for this task type (EHANDLER)."""

    status, code = 21, "EHANDLER"


class LibraryError(AipalqError, ImportError):
    """libaipalq cannot be used: not found, or not a matching version."""


class LibraryNotFoundError(LibraryError):
    """No libaipalq shared library could be loaded."""


class LibraryVersionError(LibraryError):
    """The libaipalq found has another major version than the bindings expect."""


class PermanentError(Exception):
    """Raised by a task handler to fail its task without retrying it.

    Any other exception fails the attempt as retryable: the task runs again
    after its type's backoff while attempts remain.
    """


_NAMES: Dict[int, str] = {
    0: "OK",
    1: "EMPTY",
    2: "EINVAL",
    3: "EBADJSON",
    4: "ENOTOBJECT",
    5: "EPRIORITY",
    6: "EUNKNOWNTYPE",
    7: "ETOOBIG",
    8: "EBADURL",
    9: "EREDIS",
    10: "EPG",
    11: "ENOTFOUND",
    12: "EILLEGAL",
    13: "ESTALE",
    14: "ESCHEMA",
    15: "ENOMEM",
    16: "ETIMEOUT",
    17: "EMISUSE",
    18: "EBADID",
    19: "EQUEUE",
    20: "ESHUTDOWN",
    21: "EHANDLER",
}

#: status code -> exception class.
STATUS_EXCEPTIONS: Dict[int, Type[AipalqError]] = {
    2: InvalidArgument,
    3: BadJSON,
    4: NotAnObject,
    5: InvalidPriority,
    6: UnknownTaskType,
    7: TooBig,
    8: BadURL,
    9: RedisError,
    10: DatabaseError,
    11: NotFound,
    12: IllegalTransition,
    13: StaleDelivery,
    14: SchemaError,
    15: OutOfMemory,
    16: Timeout,
    17: Misuse,
    18: BadTaskId,
    19: InvalidQueue,
    20: ShuttingDown,
    21: NoHandler,
}


def error_for(status: int, message: str = "") -> AipalqError:
    """The exception for a status code with the library's message (falling
    back to the code's own sentence when the message is empty). Codes newer
    than these bindings become a plain :class:`AipalqError`."""
    if not message:
        message = strerror(status)
    cls = STATUS_EXCEPTIONS.get(status, AipalqError)
    return cls(message, status)


def strerror(status: int) -> str:
    """The library's sentence for a status code (needs the library)."""
    from . import _lib

    try:
        s = _lib.text(_lib.load().aipalq_strerror(status))
    except LibraryError:
        s = None
    return s or f"status {status}"
