"""Turning an accepted create request into a task record: id, seed, timeline and outcome.

The duration comes from the prompt's ``[[duration:S]]`` directive, else the emulator's
``task_duration`` (a number of clock seconds, or a callable given the request body). The
task is pending for ``queue_delay`` seconds (default 10% of the duration, never more than
the duration), then processing until the duration is up. Whether it fails comes from the
prompt's ``[[fail:CODE]]`` directive, else from outcomes queued with ``fail_next``;
``[[cancel]]`` makes it end ``cancelled`` instead, and ``[[results:...]]`` sets how a
completed task carries its links.
"""

from __future__ import annotations

import collections
import math
import random
from collections.abc import Callable, Mapping

import attrs

from ._directives import (
    CANCEL_CODE,
    FAIL_CODE,
    REQUEST_FAULT_CODES,
    Directives,
    failure_message,
)
from ._numbers import finite_number, is_int, shown
from ._tasks import TaskRecord, TaskStore, new_task_id
from ._validation import MAX_SEED, CreateRequest

__all__ = ["DurationSource", "QueuedFailure", "TaskFactory"]

DurationSource = float | Callable[[Mapping[str, object]], float]
_MAX_ID_DRAWS = 1000
_ESTIMATE_FACTOR_RANGE = (0.7, 1.4)


@attrs.frozen(kw_only=True)
class QueuedFailure:
    """An outcome queued with ``fail_next``: the error code and message."""

    code: str
    message: str


def _check_seconds(name: str, value: object) -> float:
    seconds = finite_number(value)
    if seconds is None or seconds < 0:
        raise ValueError(
            f"{name} must be a finite number of seconds, at least 0; got {shown(value)}."
        )
    return seconds


class TaskFactory:
    """Makes task records for accepted requests, with the emulator's seeded randomness."""

    def __init__(
        self,
        *,
        store: TaskStore,
        rng: random.Random,
        task_duration: DurationSource,
        queue_delay: float | None,
        image_format: str,
        images_per_task: int,
    ) -> None:
        if not callable(task_duration):
            _check_seconds("task_duration", task_duration)
        if queue_delay is not None:
            _check_seconds("queue_delay", queue_delay)
        self._store = store
        self._rng = rng
        self._task_duration = task_duration
        self._queue_delay = queue_delay
        self._image_format = image_format
        self._images_per_task = images_per_task
        self._failures: collections.deque[QueuedFailure] = collections.deque()

    def fail_next(self, code: str, message: str | None, count: int) -> None:
        """Queue *count* failures for the next accepted tasks (each checked first)."""
        if not isinstance(code, str) or not FAIL_CODE.fullmatch(code):
            raise ValueError(
                "fail_next: code must be 1 to 64 letters, digits, '_', '.' or '-' (as in "
                f"[[fail:CODE]]), got {shown(code)}."
            )
        if message is not None and not isinstance(message, str):
            raise ValueError(f"fail_next: message must be a str or None, got {shown(message)}.")
        if not is_int(count) or count < 1:
            raise ValueError(f"fail_next: count must be an int of at least 1, got {shown(count)}.")
        failure = QueuedFailure(code=code, message=message or failure_message(code))
        self._failures.extend([failure] * count)

    def _duration(self, request: CreateRequest, directives: Directives) -> float:
        if directives.duration_seconds is not None:
            return directives.duration_seconds
        if callable(self._task_duration):
            return _check_seconds("task_duration()", self._task_duration(request.body))
        return float(self._task_duration)

    def _new_id(self, created: int) -> str:
        for _ in range(_MAX_ID_DRAWS):
            task_id = new_task_id(created, self._rng)
            if task_id not in self._store:
                return task_id
        raise RuntimeError("Could not draw a fresh task id.")

    def create(
        self, request: CreateRequest, *, now: float, api_key: str | None = None
    ) -> TaskRecord:
        """Return the record of a new task created at clock time *now* (not yet stored).

        The task belongs to *api_key*: only that key can read it.
        """
        directives = Directives.parse(request.prompt)
        duration = self._duration(request, directives)
        queue = duration * 0.1 if self._queue_delay is None else min(self._queue_delay, duration)
        failure: QueuedFailure | None = None
        if directives.cancel:
            failure = QueuedFailure(code=CANCEL_CODE, message=failure_message(CANCEL_CODE))
        elif directives.fail_code is not None:
            code = directives.fail_code
            failure = QueuedFailure(code=code, message=failure_message(code))
        elif self._failures:
            failure = self._failures.popleft()
        blamed_on_request = failure is not None and (
            directives.cancel or failure.code in REQUEST_FAULT_CODES
        )
        started_at = now + (duration if blamed_on_request else queue)
        return TaskRecord(
            task_id=self._new_id(math.floor(now)),
            model=request.model,
            prompt=request.prompt,
            seed=request.seed if request.seed is not None else self._rng.randint(1, MAX_SEED),
            width_pixels=request.width_pixels,
            height_pixels=request.height_pixels,
            image_format=self._image_format,
            image_count=self._images_per_task,
            created_at=now,
            started_at=started_at,
            finished_at=now + duration,
            failure_code=failure.code if failure else None,
            failure_message=failure.message if failure else None,
            failure_progress=0 if blamed_on_request or duration == queue else 99,
            callback_url=request.callback_url,
            cancelled=directives.cancel,
            results_shape=directives.results,
            estimate_factor=self._rng.uniform(*_ESTIMATE_FACTOR_RANGE),
            api_key=api_key,
        )
