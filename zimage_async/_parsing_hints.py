"""Logging the hint fields a task answer had to drop: a warning once per task, not per poll.

A gateway that sends the same malformed hint on every poll (an ``estimated_time`` of
``"soon"``) would otherwise log a warning on each of a task's polls. The first drop of a
set of fields by a task is a WARNING; the same drop by the same task again is DEBUG. The
memo of tasks already warned about keeps the :data:`REMEMBERED` most recent ones.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

__all__ = ["REMEMBERED", "report_dropped"]

#: How many (task, fields) pairs are remembered as already warned about.
REMEMBERED = 1024

logger = logging.getLogger("zimage_async")
_warned: OrderedDict[tuple[str, tuple[str, ...]], None] = OrderedDict()


def report_dropped(task_id: str, fields: list[str]) -> None:
    """Log that *task_id*'s answer dropped *fields*: WARNING the first time, then DEBUG."""
    key = (task_id, tuple(fields))
    if key in _warned:
        _warned.move_to_end(key)
        level = logging.DEBUG
    else:
        _warned[key] = None
        if len(_warned) > REMEMBERED:
            _warned.popitem(last=False)
        level = logging.WARNING
    logger.log(level, "ignored malformed hint fields in task %s: %s", task_id, ", ".join(fields))
