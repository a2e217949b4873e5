"""Python bindings for libaipalq, a job queue with PostgreSQL as the durable
record of every task and Redis for dispatch.

Producer::

    import aipalq

    with aipalq.Client() as client:          # AIPALQ_REDIS_URL / AIPALQ_DATABASE_URL
        client.migrate()
        client.define_type("send_email", queue="mail", max_retries=5)
        task_id = client.enqueue("send_email", {"to": "a@example.com"}, priority=8)
        task = client.wait(task_id, timeout=30)
        print(task.state, task.result)

Worker::

    worker = aipalq.Worker(concurrency=4)

    @worker.task("send_email", queue="mail", max_retries=5)
    def send_email(job: aipalq.Job):
        ...                                   # raise to fail (retried), return a result
        return {"sent": True}

    worker.run()                              # until SIGTERM / SIGINT

Or take tasks yourself (``worker.next(timeout)`` returns a :class:`StepJob`
to complete, fail or release), and enqueue inside your own PostgreSQL
transaction with :meth:`Client.enqueue_tx` (:mod:`aipalq.pg`).

The bindings load the shared library with ctypes (see :mod:`aipalq._lib` for
where it is looked for: ``AIPALQ_LIBRARY``, the installed ``libaipalq.so.1``,
then the build tree) and check its major version. Errors of the C library are
raised as :class:`AipalqError` subclasses chosen by status code
(:mod:`aipalq.errors`).
"""

from __future__ import annotations

from typing import Tuple

from . import _lib
from .client import Client, Health, QueueDepth, type_definition
from .errors import (
    AipalqError,
    BadJSON,
    BadTaskId,
    BadURL,
    DatabaseError,
    IllegalTransition,
    InvalidArgument,
    InvalidPriority,
    InvalidQueue,
    LibraryError,
    LibraryNotFoundError,
    LibraryVersionError,
    Misuse,
    NoHandler,
    NotAnObject,
    NotFound,
    OutOfMemory,
    PermanentError,
    RedisError,
    SchemaError,
    ServiceError,
    ShuttingDown,
    StaleDelivery,
    Timeout,
    TooBig,
    UnknownTaskType,
    error_for,
)
from .pg import PgConnection
from .task import State, Task, TaskId, TaskPage
from .worker import Job, StepJob, Worker, WorkerCounts

__version__ = "1.0.0"

#: The largest params document, in bytes of JSON text.
MAX_PARAMS_BYTES = 1024 * 1024
#: The largest result document.
MAX_RESULT_BYTES = 4 * 1024 * 1024


def library_version() -> Tuple[int, int, int]:
    """(major, minor, patch) of the libaipalq actually loaded."""
    v = _lib.load().aipalq_version()
    return (v >> 16, (v >> 8) & 0xFF, v & 0xFF)


def library_version_string() -> str:
    """"MAJOR.MINOR.PATCH" of the libaipalq actually loaded."""
    return _lib.text(_lib.load().aipalq_version_string()) or ""


def library_path() -> str:
    """Where the library was loaded from."""
    return _lib.path()


def status_name(status: int) -> str:
    """The name of a status code ("EINVAL", ...)."""
    return _lib.text(_lib.load().aipalq_status_name(status)) or "UNKNOWN"


def transition_allowed(from_state: "State | str", to_state: "State | str") -> bool:
    """Whether the task state machine allows ``from_state`` -> ``to_state``."""
    a, b = State.coerce(from_state), State.coerce(to_state)
    return bool(_lib.load().aipalq_state_transition_allowed(a.number, b.number))


__all__ = [
    "AipalqError",
    "BadJSON",
    "BadTaskId",
    "BadURL",
    "Client",
    "DatabaseError",
    "Health",
    "IllegalTransition",
    "InvalidArgument",
    "InvalidPriority",
    "InvalidQueue",
    "Job",
    "LibraryError",
    "LibraryNotFoundError",
    "LibraryVersionError",
    "MAX_PARAMS_BYTES",
    "MAX_RESULT_BYTES",
    "Misuse",
    "NoHandler",
    "NotAnObject",
    "NotFound",
    "OutOfMemory",
    "PermanentError",
    "PgConnection",
    "QueueDepth",
    "RedisError",
    "SchemaError",
    "ServiceError",
    "ShuttingDown",
    "StaleDelivery",
    "State",
    "StepJob",
    "Task",
    "TaskId",
    "TaskPage",
    "Timeout",
    "TooBig",
    "UnknownTaskType",
    "Worker",
    "WorkerCounts",
    "error_for",
    "library_path",
    "library_version",
    "library_version_string",
    "status_name",
    "transition_allowed",
    "type_definition",
]
