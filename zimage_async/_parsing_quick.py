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
from collections.abc import Mapping
from typing import Any

from ._models import Task, TaskInfo, Usage

__all__ = ["QUIET", "quick_task"]

#: Raw statuses whose task has no error when it sends none (the common poll answers).
QUIET = frozenset({"queued", "pending", "processing", "completed"})

#: Each hint block's fields: their plain JSON types (``type()`` is compared, so a boolean
#: is not an integer), and whether a number is made a float, as the strict reader does.
_NUMBER = ((float, int), True)
_BLOCKS: tuple[tuple[str, type, Mapping[str, tuple[tuple[type, ...], bool]]], ...] = (
    ("task_info", TaskInfo, {"can_cancel": ((bool,), False), "estimated_time": _NUMBER}),
    (
        "usage",
        Usage,
        {
            "billing_rule": ((str,), False),
            "credits_reserved": _NUMBER,
            "user_group": ((str,), False),
        },
    ),
)


def quick_task(payload: dict[str, Any]) -> Task | None:
    """Read a plainly well-formed task answer, or return None for the general reader.

    ``null`` reads as absent, as everywhere. The result is exactly what the general
    reader makes of the same answer (a property test holds the two together).

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
        if type(links) is not list or not all(type(link) is str for link in links):
            return None
        results = tuple(links)
    created, model = get("created"), get("model")
    if (created is not None and type(created) is not int) or (
        model is not None and type(model) is not str
    ):
        return None
    blocks: dict[str, Any] = {}
    for name, cls, fields in _BLOCKS:
        block = get(name)
        if block is None:
            continue
        if type(block) is not dict:
            return None
        kept = {}
        for field, value in block.items():
            plain = fields.get(field)
            if plain is None or value is None:
                continue
            if type(value) not in plain[0]:
                return None
            if plain[1]:
                if not math.isfinite(value):
                    return None
                value = float(value)
            kept[field] = value
        blocks[name] = cls(**kept)
    return Task(
        id=task_id,
        raw_status=raw_status,
        progress=progress,
        results=results,
        created=created,
        model=model,
        **blocks,
    )
