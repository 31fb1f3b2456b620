"""Blocks cut short at their deadline by one shared timer, not a timer each.

``asyncio.timeout`` and aiohttp's total limit make a timer, a timeout object and their
callbacks for every block they bound, and the event loop's timer heap grows with them: at
ten thousand waiting handles, ten thousand timers. A :class:`Deadlines` keeps the deadline
of each bounded block (keyed by the task that runs it) in a heap of its own, with one
timer at the nearest. When it fires, the overdue blocks' tasks are cancelled; the block
that was cut off asks :meth:`Deadlines.leave` whether that cancellation was this keeper's
own, and only then turns it into its timeout. A cancellation from anywhere else (the
caller's own timeout, ``task.cancel()``) stays a cancellation, even when both happen in
one turn of the loop.

Two keepers bound the SDK's blocks: the transport's, for the total limit of each API
exchange and each wait for an image host, and the session's, for the deadline of each
wait. :func:`within`, a keeper of its own per call, is the SDK's ``asyncio.wait_for``
(the callback receiver's body, a closing batch's release of its items). A task runs at
most one block of each at a time (an exchange or a download may run inside a wait).
They are only used where the block's code is the SDK's own, so a cancellation always
lands inside the block, never in the caller's code. Closing a keeper leaves the blocks
still running bounded (a closing session's waits still end at their deadlines); a
closing transport cuts its own off at once (:meth:`Deadlines.cut_all`), for each to end
with the closed-session error.
"""

from __future__ import annotations

import asyncio
import heapq
import sys
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

__all__ = ["Deadlines", "bounded_by", "within"]

T = TypeVar("T")

_SLACK = 64  # heap entries of blocks already left, kept before the heap is rebuilt
#: The message of a keeper's own cancellation: how Python 3.10, which counts no
#: cancellations, tells it from the caller's.
_CUT = "zimage_async: the block's deadline passed"
#: Python 3.10: per task, the keepers' cuts not yet taken by a leave(), so that an inner
#: block does not take an outer keeper's cut (in the same turn) for its own alone.
_PENDING: dict[asyncio.Task[object], int] = {}


class Deadlines:
    """Cuts off blocks that outlive their deadline (see the module docstring).

    Call :meth:`enter_at` (or :meth:`enter`) right before the block and :meth:`leave`
    right after it, in a ``finally``; when the block raised ``CancelledError`` and
    :meth:`leave` returns ``True``, the deadline cut it off: raise a timeout instead.
    Deadlines are on the running event loop's clock (``loop.time()``).
    """

    __slots__ = ("_blocks", "_cut", "_heap", "_live", "_seq", "_timer")

    def __init__(self) -> None:
        # task -> (its entry's number, its cancellation count on entry)
        self._blocks: dict[asyncio.Task[object], tuple[int, int]] = {}
        self._live: dict[int, asyncio.Task[object]] = {}  # entry number -> task
        self._heap: list[tuple[float, int]] = []  # (deadline, entry number), some stale
        self._seq = 0
        self._timer: asyncio.TimerHandle | None = None
        self._cut: set[asyncio.Task[object]] = set()

    def __len__(self) -> int:
        """Return the number of blocks in progress."""
        return len(self._blocks)

    def enter(self, seconds: float) -> asyncio.Task[object]:
        """Bound the current task's block to *seconds* from now; return the task."""
        loop = asyncio.get_running_loop()
        return self._enter(loop, loop.time() + seconds)

    def enter_at(self, deadline: float) -> asyncio.Task[object]:
        """Bound the current task's block to *deadline* (loop time); return the task."""
        return self._enter(asyncio.get_running_loop(), deadline)

    def _enter(self, loop: asyncio.AbstractEventLoop, deadline: float) -> asyncio.Task[object]:
        task = asyncio.current_task(loop)
        if task is None:  # pragma: no cover - asyncio runs coroutines in tasks
            raise RuntimeError("a bounded block must run in an asyncio task")
        if task in self._blocks:
            raise RuntimeError("one task runs one block of a Deadlines at a time")
        self._seq = seq = self._seq + 1
        cancelling = 0
        if sys.version_info >= (3, 11):
            cancelling = task.cancelling()
        self._blocks[task] = (seq, cancelling)
        live = self._live
        live[seq] = task
        heap = self._heap
        if len(heap) > 2 * len(live) + _SLACK:
            heap[:] = [entry for entry in heap if entry[1] in live]
            heapq.heapify(heap)
        heapq.heappush(heap, (deadline, seq))
        timer = self._timer
        if timer is None or deadline < timer.when():
            if timer is not None:
                timer.cancel()
            self._timer = loop.call_at(deadline, self._expire)
        return task

    def leave(self, task: asyncio.Task[object], error: BaseException | None = None) -> bool:
        """End *task*'s block; return whether this keeper cancelled it.

        Idempotent: a second call returns ``False``. Only ``True`` when this keeper's
        cancellation is the only one the block received: on Python 3.11 and later it is
        withdrawn (``Task.uncancel``), and if another one is still pending this returns
        ``False``, so that it propagates. Python 3.10 counts no cancellations: there the
        block passes the ``CancelledError`` it caught as *error*, and only one that is
        the keeper's own, with no other cancel requested after it, counts as the cut.
        """
        entry = self._blocks.pop(task, None)
        if entry is None:
            return False
        seq, cancelling = entry
        del self._live[seq]
        if task not in self._cut:
            return False
        self._cut.discard(task)
        if sys.version_info >= (3, 11):
            return task.uncancel() <= cancelling
        others = _PENDING.pop(task) - 1  # pragma: no cover - Python 3.10 (its CI run covers it)
        if others:  # pragma: no cover - another keeper cut the task too: its block decides
            _PENDING[task] = others
            return False
        return (  # pragma: no cover - Python 3.10 (its CI run covers it)
            isinstance(error, asyncio.CancelledError)
            and error.args == (_CUT,)
            and getattr(task, "_cancel_message", None) == _CUT
        )

    def _cut_off(self, task: asyncio.Task[object]) -> None:
        """Cancel *task*'s block: its deadline has passed."""
        self._cut.add(task)
        if sys.version_info >= (3, 11):
            task.cancel()
        else:  # pragma: no cover - Python 3.10 (its CI run covers it)
            _PENDING[task] = _PENDING.get(task, 0) + 1
            task.cancel(_CUT)
            # The task keeps the message of the last cancel requested: a caller's cancel
            # after this one replaces it, and leave() then sees that it came.
            setattr(task, "_cancel_message", _CUT)  # noqa: B010 - not in the type stubs

    def _expire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now, heap, live = loop.time(), self._heap, self._live
        while heap and heap[0][0] <= now:
            task = live.get(heapq.heappop(heap)[1])
            if task is not None and task not in self._cut:
                self._cut_off(task)
        while heap and heap[0][1] not in live:  # blocks already left
            heapq.heappop(heap)
        if heap:
            self._timer = loop.call_at(heap[0][0], self._expire)

    def cut_all(self) -> None:
        """Cut off every block running now, as its deadline passing would (see :meth:`leave`).

        For an owner that is closing and must end what it has under way at once: the
        owner, knowing it closed, tells these cuts from its deadlines'.
        """
        for task in list(self._blocks):
            if task not in self._cut:
                self._cut_off(task)

    def close(self) -> None:
        """Drop the timer, unless a block is still running (its owner is closing).

        A close never leaves a block unbounded: the blocks still running keep their
        deadlines, and the timer stays for them (it stops once they have all left).
        """
        if self._timer is not None and not self._blocks:
            self._timer.cancel()
            self._timer = None


async def within(coroutine: Coroutine[Any, Any, T], seconds: float) -> T:
    """Run *coroutine* in this task for at most *seconds*, else raise ``TimeoutError``.

    What ``asyncio.wait_for`` does, except that a cancellation of the caller stays one
    also in the turn the coroutine ends or the time runs out (``wait_for`` returned the
    result then, on Python 3.10 and 3.11). A coroutine, not a task or future: it runs in
    this task, where the cut lands (a task awaited here would lose the cut's message on
    Python 3.10). On Python 3.10, which counts no cancellations, a caller's cancel, the
    end and the deadline all in one turn still come out as the timeout. The keeper is
    this call's own: its timer belongs to the running loop only.
    """
    keeper = Deadlines()
    try:
        return await bounded_by(keeper, asyncio.get_running_loop().time() + seconds, coroutine)
    finally:
        keeper.close()


async def bounded_by(keeper: Deadlines, deadline: float, wait: Awaitable[T]) -> T:
    """Await *wait*, cut off at *deadline* (loop time) by *keeper*: :class:`TimeoutError`.

    A cancellation of the caller's own, also one at the same moment, stays one.
    (:meth:`Transport.request` and :class:`ImageOpening` do the same inline, without a
    coroutine of their own.)
    """
    task = keeper.enter_at(deadline)
    try:
        return await wait
    except asyncio.CancelledError as exc:
        if not keeper.leave(task, exc):
            raise
        raise asyncio.TimeoutError from None
    finally:
        keeper.leave(task)
