"""Task records: :class:`Task` (a snapshot of one task), :class:`State`,
:class:`TaskId` (what enqueue returns) and :class:`TaskPage` (a page of a list)."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

from . import _lib


class State(str, enum.Enum):
    """The lifecycle of a task (``aipalq_state``). Members compare equal to
    their lowercase names: ``task.state == "completed"``."""

    PENDING = "pending"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def number(self) -> int:
        """The ``aipalq_state`` value."""
        return _STATE_NUMBERS[self]

    @property
    def is_final(self) -> bool:
        """True for completed, failed and cancelled (failed and cancelled tasks
        can still be retried)."""
        return self in (State.COMPLETED, State.FAILED, State.CANCELLED)

    @classmethod
    def from_number(cls, n: int) -> "State":
        return _STATES_BY_NUMBER[n]

    @classmethod
    def coerce(cls, value: "State | str") -> "State":
        """A State from a State or its name; ValueError for anything else."""
        if isinstance(value, State):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown state {value!r} (one of {names})") from None

    def __str__(self) -> str:
        return self.value


_STATE_NUMBERS = {s: i for i, s in enumerate(State)}
_STATES_BY_NUMBER = {i: s for s, i in _STATE_NUMBERS.items()}


class TaskId(str):
    """A task id (the UUID text) as returned by ``Client.enqueue``.

    It is a plain ``str`` with one more attribute: ``created`` is False when
    an idempotency key matched an unfinished task whose id was returned
    instead of creating a new one.
    """

    created: bool

    def __new__(cls, value: str, created: bool = True) -> "TaskId":
        self = super().__new__(cls, value)
        self.created = created
        return self


def _time(ms: int) -> Optional[datetime]:
    return datetime.fromtimestamp(ms / 1000.0, tz=timezone.utc) if ms else None


def _json(text: Optional[str]) -> Any:
    return None if text is None else json.loads(text)


@dataclass(frozen=True)
class Task:
    """A snapshot of one task as PostgreSQL recorded it (``aipalq_task``).

    Times are timezone-aware UTC datetimes, or None when not set. ``params``
    and ``result`` are decoded JSON (``result`` is None until the task
    completes, and for a handler that returned nothing).
    """

    id: str
    type: str
    queue: str
    state: State
    priority: int
    params: Dict[str, Any]
    result: Any
    error_message: Optional[str]
    error_detail: Optional[str]
    attempts: int
    max_retries: int
    created_at: Optional[datetime]
    started_at: Optional[datetime]
    completed_at: Optional[datetime]
    updated_at: Optional[datetime]
    run_at: Optional[datetime]
    worker_id: Optional[str]
    user_id: Optional[str]
    idempotency_key: Optional[str]
    progress: int
    progress_message: Optional[str]
    cancel_requested: bool
    #: The whole record as the REST API shows it (``aipalq_task_json``).
    raw: Dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def is_final(self) -> bool:
        """True when the task is completed, failed or cancelled."""
        return self.state.is_final

    @property
    def succeeded(self) -> bool:
        """True when the task completed."""
        return self.state is State.COMPLETED

    @property
    def duration(self) -> Optional[float]:
        """Seconds from the start of the last attempt to completion."""
        if self.started_at and self.completed_at:
            return (self.completed_at - self.started_at).total_seconds()
        return None

    @classmethod
    def _from_handle(cls, ptr: int) -> "Task":
        """Reads every field of an ``aipalq_task *`` (which stays owned by the
        caller)."""
        lib = _lib.load()
        t = _lib.text
        raw = t(lib.aipalq_task_json(ptr))
        return cls(
            id=t(lib.aipalq_task_id(ptr)) or "",
            type=t(lib.aipalq_task_type(ptr)) or "",
            queue=t(lib.aipalq_task_queue(ptr)) or "",
            state=State.from_number(lib.aipalq_task_state(ptr)),
            priority=lib.aipalq_task_priority(ptr),
            params=_json(t(lib.aipalq_task_params(ptr))) or {},
            result=_json(t(lib.aipalq_task_result(ptr))),
            error_message=t(lib.aipalq_task_error_message(ptr)),
            error_detail=t(lib.aipalq_task_error_detail(ptr)),
            attempts=lib.aipalq_task_attempts(ptr),
            max_retries=lib.aipalq_task_max_retries(ptr),
            created_at=_time(lib.aipalq_task_created_ms(ptr)),
            started_at=_time(lib.aipalq_task_started_ms(ptr)),
            completed_at=_time(lib.aipalq_task_completed_ms(ptr)),
            updated_at=_time(lib.aipalq_task_updated_ms(ptr)),
            run_at=_time(lib.aipalq_task_run_at_ms(ptr)),
            worker_id=t(lib.aipalq_task_worker_id(ptr)),
            user_id=t(lib.aipalq_task_user_id(ptr)),
            idempotency_key=t(lib.aipalq_task_idempotency_key(ptr)),
            progress=lib.aipalq_task_progress(ptr),
            progress_message=t(lib.aipalq_task_progress_message(ptr)),
            cancel_requested=bool(lib.aipalq_task_cancel_requested(ptr)),
            raw=json.loads(raw) if raw else {},
        )


class TaskPage(List[Task]):
    """One page of a task list: a list of :class:`Task` plus ``total``, the
    number of matching tasks in all pages, and ``total_at``, when that total
    was counted (earlier than the page when the client reused a recent count:
    ``Client.set_list_total_max_age``)."""

    total: int
    total_at: Optional[datetime]

    def __init__(self, tasks: List[Task], total: int, total_at: Optional[datetime] = None) -> None:
        super().__init__(tasks)
        self.total = total
        self.total_at = total_at

    def __repr__(self) -> str:
        return f"TaskPage({len(self)} of {self.total})"
