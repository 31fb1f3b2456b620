"""Reading the common task answer in one pass. Pure, no I/O.

Nearly every answer of the task endpoints is plainly well formed: a string ``id`` and
``status``, an integer ``progress``, a list of string ``results``, no ``error`` while the
task runs or completes, and hints of the right JSON types. :func:`quick_task` reads such
an answer without the general reader's steps, and gives up (``None``) at the first value
that is anything else; :func:`~zimage_async._parsing_task.parse_task` then reads the
answer field by field, with the last word on what is malformed and what is dropped.
"""

from __future__ import annotations

import math
from typing import Any

from ._models import Task, TaskInfo, Usage

__all__ = ["QUIET", "quick_task"]

#: Raw statuses whose task has no error when it sends none (the common poll answers).
QUIET = frozenset({"queued", "pending", "processing", "completed"})

#: Hint blocks already read. A service sends the same few (a session's tasks are billed
#: alike), and one frozen block can serve every snapshot holding it. Bounded.
_SHARED: dict[tuple[object, ...], Any] = {}
_SHARED_KEPT = 256


class _NotPlain(Exception):
    """A hint block holds something else than the plain JSON types: the general reader's."""


def _number(value: object) -> float | None:
    """Return a JSON number as a float, ``None`` for null; raise for anything else.

    An integer beyond a float's range raises :class:`OverflowError`.
    """
    if value is None:
        return None
    kind = type(value)
    if (kind is not float and kind is not int) or not math.isfinite(value):  # type: ignore[arg-type]
        raise _NotPlain
    return float(value)  # type: ignore[arg-type]


def _text(value: object) -> bool:
    return value is None or type(value) is str


def _keep(key: tuple[object, ...], block: Any) -> Any:
    """Keep *block* for the next snapshots holding the same (while there is room)."""
    if len(_SHARED) < _SHARED_KEPT:
        _SHARED[key] = block
    return block


def _task_info(block: object) -> TaskInfo:
    if type(block) is not dict:
        raise _NotPlain
    can_cancel, estimate = block.get("can_cancel"), _number(block.get("estimated_time"))
    if can_cancel is not None and type(can_cancel) is not bool:
        raise _NotPlain
    if estimate == 0:  # 0.0 and -0.0 are one key, but they read differently: not kept
        return TaskInfo(can_cancel=can_cancel, estimated_time=estimate)
    key = ("task_info", can_cancel, estimate)
    kept = _SHARED.get(key)
    if kept is None:
        kept = _keep(key, TaskInfo(can_cancel=can_cancel, estimated_time=estimate))
    return kept  # type: ignore[no-any-return]


def _usage(block: object) -> Usage:
    if type(block) is not dict:
        raise _NotPlain
    rule, group = block.get("billing_rule"), block.get("user_group")
    credits = _number(block.get("credits_reserved"))
    if not _text(rule) or not _text(group):
        raise _NotPlain
    if credits == 0:  # as for the estimate
        return Usage(billing_rule=rule, credits_reserved=credits, user_group=group)
    key = ("usage", rule, credits, group)
    kept = _SHARED.get(key)
    if kept is None:
        kept = _keep(key, Usage(billing_rule=rule, credits_reserved=credits, user_group=group))
    return kept  # type: ignore[no-any-return]


def quick_task(payload: dict[str, Any]) -> Task | None:
    """Read a plainly well-formed task answer, or return None for the general reader.

    ``null`` reads as absent, as everywhere. The result is exactly what the general
    reader makes of the same answer (a property test holds the two together). The
    ``task_info`` and ``usage`` blocks are shared between snapshots that hold the same.

    >>> quick_task({"id": "task-unified-1-a", "status": "processing", "progress": 40,
    ...             "task_info": {"estimated_time": 6}}).estimated_time
    6.0
    >>> quick_task({"id": "task-unified-1-a", "status": "processing", "progress": "40"})
    """
    get = payload.get
    task_id, raw_status = get("id"), get("status")
    if type(task_id) is not str or type(raw_status) is not str or raw_status not in QUIET:
        return None
    if get("error") is not None:
        return None
    progress = get("progress")
    if progress is None:
        progress = 0
    elif type(progress) is not int or not 0 <= progress <= 100:
        return None
    links = get("results")
    results: tuple[str, ...] = ()
    if links is not None:
        if type(links) is not list:
            return None
        for link in links:  # a loop, not all(): no generator for the one or two links
            if type(link) is not str:
                return None
        results = tuple(links)
    created, model = get("created"), get("model")
    if (created is not None and type(created) is not int) or not _text(model):
        return None
    info, usage = get("task_info"), get("usage")
    try:
        if created is not None:
            float(created)  # an integer no float holds is no time: the general reader drops it
        if info is not None:
            info = _task_info(info)
        if usage is not None:
            usage = _usage(usage)
    except (_NotPlain, OverflowError):  # an integer no float holds: the general reader's
        return None
    return Task(
        id=task_id,
        raw_status=raw_status,
        progress=progress,
        results=results,
        created=created,
        model=model,
        task_info=info,
        usage=usage,
    )
