"""Tasks: their records, their ids, and their state at any moment, computed lazily.

A task is stored once, at creation, with its timeline (created, processing from, finished
at) in clock seconds. Its status, progress and estimate are computed from that timeline
whenever it is queried, so 10,000 tasks cost a dictionary and no timers:

- before ``started_at``: ``pending``, progress 0, ``can_cancel: true``;
- from ``started_at`` to ``finished_at``: ``processing``, progress rising linearly 1..99;
- from ``finished_at``: ``completed`` (progress 100, ``results``, ``task_info:
  {"can_cancel": false}``), ``failed`` (``error: {code, message}``, no ``task_info``) or,
  for a ``[[cancel]]`` prompt, ``cancelled`` (like failed, with the code
  ``request_cancelled``; a status seen in the gateway family, not on the provider's page).

A task failing for a reason blamed on the request (content policy and the like) never
starts processing: it is pending until it fails, with progress 0, like the documented
example. Other failures happen at the end of processing, with progress 99.
``task_info.estimated_time`` is the remaining time times a per-task noise factor from
0.7 to 1.4, rounded up, at least 1 while the task is not finished.
"""

from __future__ import annotations

import enum
import math
import random
import string
from collections.abc import Callable, Iterator, Sequence

import attrs

from ._redact import url_repr

__all__ = [
    "CREDITS_PER_TASK",
    "TaskRecord",
    "TaskStatus",
    "TaskStore",
    "new_task_id",
    "task_body",
]

CREDITS_PER_TASK = 0.026
ID_PREFIX = "task-unified-"
_ID_ALPHABET = string.ascii_lowercase + string.digits
_ID_SUFFIX_CHARS = 8


class TaskStatus(enum.Enum):
    """The four documented task statuses, and ``cancelled`` from the gateway family."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """Whether the task will not change any more."""
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)


@attrs.frozen(kw_only=True)
class TaskRecord:
    """Everything the emulator decided about a task when it was created."""

    task_id: str
    model: str
    prompt: str
    seed: int
    width_pixels: int
    height_pixels: int
    image_format: str
    image_count: int
    created_at: float
    started_at: float
    finished_at: float
    failure_code: str | None
    failure_message: str | None
    failure_progress: int
    #: Whole; the repr leaves out its query string (often a token).
    callback_url: str | None = attrs.field(repr=url_repr)
    estimate_factor: float
    cancelled: bool = False
    results_shape: str = "links"
    # The API key that created the task, the only one that can read it (None: any key).
    api_key: str | None = attrs.field(default=None, repr=False)

    @property
    def created(self) -> int:
        """The ``created`` field: whole seconds since the epoch."""
        return math.floor(self.created_at)

    def status_at(self, now: float) -> TaskStatus:
        """Return the task's status at clock time *now*."""
        if now >= self.finished_at:
            if self.cancelled:
                return TaskStatus.CANCELLED
            return TaskStatus.FAILED if self.failure_code is not None else TaskStatus.COMPLETED
        if now >= self.started_at:
            return TaskStatus.PROCESSING
        return TaskStatus.PENDING

    def progress_at(self, now: float) -> int:
        """Return the task's progress (0..100) at clock time *now*."""
        status = self.status_at(now)
        if status is TaskStatus.PENDING:
            return 0
        if status is TaskStatus.COMPLETED:
            return 100
        if status in (TaskStatus.FAILED, TaskStatus.CANCELLED):
            return self.failure_progress
        fraction = (now - self.started_at) / (self.finished_at - self.started_at)
        return min(99, max(1, 1 + math.floor(98 * fraction)))

    def estimate_at(self, now: float) -> int:
        """Return ``task_info.estimated_time`` (whole seconds, at least 1) at *now*."""
        remaining = max(0.0, self.finished_at - now)
        return max(1, math.ceil(remaining * self.estimate_factor))


def task_body(
    record: TaskRecord,
    *,
    now: float,
    result_urls: Callable[[TaskRecord], Sequence[str]],
    as_created: bool = False,
) -> dict[str, object]:
    """Return the task JSON object as it stands at *now*.

    With *as_created*, return the create call's reply instead: always ``pending`` and with
    ``usage``, like the documented example.
    """
    status = TaskStatus.PENDING if as_created else record.status_at(now)
    body: dict[str, object] = {
        "created": record.created,
        "id": record.task_id,
        "model": record.model,
        "object": "image.generation.task",
        "progress": 0 if as_created else record.progress_at(now),
        "status": status.value,
        "type": "image",
    }
    if status is TaskStatus.COMPLETED:
        if record.results_shape == "links":
            body["results"] = list(result_urls(record))
        elif record.results_shape == "empty":
            body["results"] = []
        elif record.results_shape == "null":
            body["results"] = None
        body["task_info"] = {"can_cancel": False}
    elif status in (TaskStatus.FAILED, TaskStatus.CANCELLED):
        body["error"] = {"code": record.failure_code, "message": record.failure_message}
    else:
        body["task_info"] = {
            "can_cancel": status is TaskStatus.PENDING,
            "estimated_time": record.estimate_at(record.created_at if as_created else now),
        }
    if as_created:
        body["usage"] = {
            "billing_rule": "per_call",
            "credits_reserved": CREDITS_PER_TASK,
            "user_group": "default",
        }
    return body


def new_task_id(created: int, rng: random.Random) -> str:
    """Return an id like ``task-unified-1757165031-uyujaw3d``."""
    suffix = "".join(rng.choice(_ID_ALPHABET) for _ in range(_ID_SUFFIX_CHARS))
    return f"{ID_PREFIX}{created}-{suffix}"


class TaskStore:
    """All tasks the emulator has accepted, by id."""

    def __init__(self) -> None:
        self._tasks: dict[str, TaskRecord] = {}

    def add(self, record: TaskRecord) -> None:
        """Store a new task; its id must be new."""
        if record.task_id in self._tasks:
            raise ValueError(f"Task id {record.task_id!r} is already taken.")
        self._tasks[record.task_id] = record

    def get(self, task_id: str) -> TaskRecord | None:
        """Return the task with *task_id*, or None."""
        return self._tasks.get(task_id)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[TaskRecord]:
        return iter(list(self._tasks.values()))
