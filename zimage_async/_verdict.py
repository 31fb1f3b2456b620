"""What a task's snapshot means for its caller: the result, the error to raise, a warning."""

from __future__ import annotations

import logging

from ._exceptions import NoResultsError, TaskFailedError
from ._models import Task, TaskStatus
from ._quoting import quote

__all__ = ["WARNED_STATUSES", "note_unknown_status", "task_failure", "warn_stalled"]

logger = logging.getLogger("zimage_async")


def task_failure(task: Task, task_id: str) -> NoResultsError | TaskFailedError | None:
    """Return the error that the end of *task* means, or ``None`` for a usable result.

    A completed task with at least one link is a result; one without any link is a
    :class:`NoResultsError` (the answer will not change); a failed or cancelled one is a
    :class:`TaskFailedError` carrying the ``error`` as sent.
    """
    if task.status is TaskStatus.COMPLETED:
        return None if task.results else NoResultsError(task_id=task_id, task=task)
    if task.error is not None:
        return TaskFailedError(
            task_id=task_id,
            code=task.error.code,
            message=task.error.message,
            raw_error=task.raw_error,
        )
    return TaskFailedError(
        task_id=task_id,
        code="request_cancelled",
        message="the task was cancelled",
        raw_error=task.raw_error,
    )


#: The most unknown statuses a session warns about (each by its first 64 characters);
#: past them, a gateway that sends a new one on every poll is logged at debug level only.
WARNED_STATUSES = 64


def note_unknown_status(task_id: str, raw_status: str, warned: set[str]) -> None:
    """Log a status this client does not know: a warning the first time, then debug.

    *warned* holds the statuses already warned about (one set per session), at most
    :data:`WARNED_STATUSES` of them, each by its first 64 characters.
    """
    seen = raw_status[:64]
    if seen not in warned and len(warned) < WARNED_STATUSES:
        warned.add(seen)
        logger.warning(
            "task %s reported an unknown status %s; treating it as not finished "
            "(said once per session; later ones are logged at debug level)",
            task_id,
            quote(raw_status),
        )
    else:
        logger.debug("task %s has unknown status %s", task_id, quote(raw_status))


def warn_stalled(task_id: str, stall_factor: float, estimate: float | None) -> None:
    """Log that a task has stood still for *stall_factor* times the service's *estimate*."""
    logger.warning(
        "task %s has not moved for over %g times the service's estimate of %g s; "
        "still waiting (said once per handle)",
        task_id,
        stall_factor,
        estimate,
    )
