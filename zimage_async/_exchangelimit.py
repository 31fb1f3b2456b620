"""The total time limit of API exchanges: one timer for all of them, not one each.

aiohttp's own total limit (``ClientTimeout(total=...)``) makes a timer, a timeout handle,
a timer context and their callbacks for every request, and its timer heap grows with them.
An :class:`ExchangeLimit` keeps, per transport, the deadline of each exchange in flight
(keyed by the task that runs it) and one timer at the nearest of them. When it fires, the
overdue exchanges are cancelled; the exchange that was cut off asks
:meth:`ExchangeLimit.leave` whether that cancellation was the limit's own, and only then
turns it into a timeout. A cancellation from anywhere else (the caller's own timeout, or
``task.cancel()``) stays a cancellation, even when both happen at once.

It is only used where the exchange runs whole inside the transport's own coroutine (the
API calls): the cancellation then always lands inside the exchange, never in the caller's
code.
"""

from __future__ import annotations

import asyncio
import sys

__all__ = ["ExchangeLimit"]


class ExchangeLimit:
    """Cuts off exchanges that take longer than their total limit (see the module docstring).

    Use :meth:`enter` right before an exchange and :meth:`leave` right after it, in a
    ``finally``; when the exchange raised ``CancelledError`` and :meth:`leave` returns
    ``True``, the limit cut it off: raise a timeout instead.
    """

    __slots__ = ("_cut", "_due", "_loop", "_timer")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None  # the first exchange's
        self._due: dict[asyncio.Task[object], float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._cut: set[asyncio.Task[object]] = set()

    def __len__(self) -> int:
        """Return the number of exchanges in flight."""
        return len(self._due)

    def enter(self, seconds: float) -> asyncio.Task[object]:
        """Start bounding the current task's exchange to *seconds*; return the task."""
        loop = self._loop = self._loop or asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:  # pragma: no cover - aiohttp itself needs a task
            raise RuntimeError("an API exchange must run in an asyncio task")
        if task in self._due:
            raise RuntimeError("one task runs one API exchange at a time")
        due = loop.time() + seconds
        self._due[task] = due
        timer = self._timer
        if timer is None or due < timer.when():
            if timer is not None:
                timer.cancel()
            self._timer = loop.call_at(due, self._expire)
        return task

    def leave(self, task: asyncio.Task[object]) -> bool:
        """Stop bounding *task*'s exchange; return whether the limit cancelled it.

        Idempotent: a second call returns ``False``. Only ``True`` when the limit's
        cancellation is the task's only one: on Python 3.11 and later it is withdrawn
        (``Task.uncancel``), and if another cancellation is still pending, this returns
        ``False`` so that it propagates.
        """
        self._due.pop(task, None)
        if task not in self._cut:
            return False
        self._cut.discard(task)
        if sys.version_info >= (3, 11):
            return task.uncancel() == 0
        return True  # pragma: no cover - Python 3.10 counts no cancellations

    def _expire(self) -> None:
        assert self._loop is not None
        self._timer = None
        now = self._loop.time()
        nearest: float | None = None
        for task, due in self._due.items():
            if due <= now:
                if task not in self._cut:
                    self._cut.add(task)
                    task.cancel()
            elif nearest is None or due < nearest:
                nearest = due
        if nearest is not None:
            self._timer = self._loop.call_at(nearest, self._expire)

    def close(self) -> None:
        """Drop the timer (the transport is closing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
