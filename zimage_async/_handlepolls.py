"""A handle's turns at the one poll loop: the lock, the looks, the stall warning.

:class:`HandlePolls` is the part of :class:`~zimage_async.TaskHandle` that runs
:func:`~zimage_async._polling.snapshots` for it: every way of waiting takes the handle's
lock, so that concurrent waiters share one loop, and starts the loop from the snapshot
the create call returned (once) or from a look. Each wait runs in :meth:`_waiting`,
which starts the task span and ends it if the wait stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from types import TracebackType
from typing import TYPE_CHECKING

from ._exceptions import (
    NotFoundError,
    SessionClosedError,
    WaitTimeoutError,
    ZImageError,
    note_closed,
    note_task,
)
from ._exceptions_base import note_collectable
from ._models import Task
from ._polling import RETRYING, Nap, bounded, naps, snapshots
from ._quoting import log_text
from ._schedule import PollState
from ._verdict import warn_stalled

if TYPE_CHECKING:
    from ._runtime import Runtime
    from ._telemetry import TaskSpan

__all__ = ["HandlePolls"]

logger = logging.getLogger("zimage_async")

#: Seconds after an answer showed a handle's task (its create's, a read) that a 404 for it
#: is read as "not visible" (a gateway's replica behind) and the poll loop looks again.
NOT_YET_VISIBLE = 15.0


def lost_task(error: NotFoundError, task_id: str, lost_for: float) -> NotFoundError:
    """Return *error*, a 404 *lost_for* seconds after the task was shown, told billed."""
    if error.task_id is None:
        error.task_id = task_id
    first = str(error.args[0]) if error.args else ""
    error.args = (
        f"{first} ({lost_for:.1f} s after the service had shown the task)",
        *error.args[1:],
    )
    return note_collectable(error, task_id)


def note_read_failure(
    error: ZImageError, task_id: str, seen_at: float | None, now: float
) -> ZImageError:
    """Tell *error*, a failed read of task *task_id*, what is known of the task.

    A 404 for a task no answer showed (*seen_at* is ``None``) only names the id: the
    service does not know it. Any other failure, and a 404 for a task an answer showed
    (so billed: a replica behind, or the task lost), says how to collect it.
    """
    if seen_at is not None and isinstance(error, NotFoundError):
        return lost_task(error, task_id, now - seen_at)
    return note_task(error, task_id)


def note_retrying(error: WaitTimeoutError) -> WaitTimeoutError:
    """Add to *error*, a wait cut off, the retry its read was waiting out (then forget it)."""
    waiting = RETRYING.get()
    if waiting is not None:
        RETRYING.set(None)
        error.args = (f"{error.args[0]} [{waiting}]", *error.args[1:])
    return error


class HandlePolls:
    """The poll loop of one handle, under its lock.

    A base of :class:`~zimage_async.TaskHandle`, which sets every attribute below.
    """

    _rt: Runtime
    _id: str
    _task: Task | None
    _fresh: bool  # the snapshot in hand was just returned by create, not looked at yet
    _fresh_at: float  # when it arrived, on the runtime's clock
    _seen_at: float | None  # when an answer last showed the task, on the runtime's clock
    _expects_callback: bool
    _lock: asyncio.Lock
    _state: PollState | None  # the running wait's schedule
    _stall_told: bool
    _span: TaskSpan
    _waiters: int  # the waits under way
    _skipped: BaseException | None  # a failure of a wait that was not the last

    if TYPE_CHECKING:

        async def refresh(self) -> Task:
            """Fetch the task once (TaskHandle's)."""

    def _waiting(self) -> _Waiting:
        """Run one wait: whatever stops it before the handle's work is done ends the span.

        A timeout, a cancellation or a failure ends the task span (``timeout``,
        ``stopped``, ``error``) unless another wait of the handle is still under way, which
        ends it in turn. A wait after one that ended it starts a new span, linked to it;
        the first wait of a handle made from a task id starts its span.
        """
        return _Waiting(self)

    def _tell_if_stalled(self) -> None:
        state = self._state
        if self._stall_told or state is None or not state.stalled(self._rt.clock()):
            return
        self._stall_told = True
        warn_stalled(self._id, self._rt.poll.stall_factor, state.estimate)

    async def _look(self) -> Task:
        before = self._task
        try:
            task = await self.refresh()
        except NotFoundError:
            # An answer (the create's, a read) showed the task exists: a 404 soon after it
            # is a replica that has not seen it (yet), and the loop looks again.
            # refresh() has told the error whether the task was shown (billed) or not.
            seen = self._seen_at
            if before is None or seen is None:  # never shown: an id the service does not know
                raise
            lost_for = self._rt.clock() - seen
            if lost_for >= NOT_YET_VISIBLE:
                raise
            logger.debug(
                "task %s is not visible (404 %.1f s after it was shown)", self._id, lost_for
            )
            return before
        if before is not None and (task.raw_status, task.progress) == (
            before.raw_status,
            before.progress,
        ):  # a stall is told by a look that finds nothing moved, never before one
            self._tell_if_stalled()
        if logger.isEnabledFor(logging.DEBUG):
            status = log_text(task.raw_status)
            logger.debug("task %s is %s at %s%%", self._id, status, task.progress)
        return task

    def _polls(
        self, deadline: float | None, nap: Nap, *, scoped: bool
    ) -> AsyncGenerator[Task, None]:
        """Start a run of the poll loop; the caller holds the lock and drains it."""
        self._rt.check_open()
        first = self._task if self._fresh else None
        self._fresh = False
        rt = self._rt
        stretch = rt.callback_poll_factor if self._expects_callback else 1.0
        state = self._state = PollState(rt.poll, rng=rt.rng, deadline=deadline, stretch=stretch)
        # A scoped caller bounds the whole loop itself; else each look is bounded.
        bound = None if scoped else bounded(deadline, rt.deadlines)
        return snapshots(
            self._look,
            state,
            first=first,
            nap=nap,
            clock=rt.clock,
            bound=bound,
            first_seen=self._fresh_at,
        )

    async def _snapshots(self, deadline: float | None) -> AsyncGenerator[Task, None]:
        """Yield the snapshots of the handle's poll loop, for :meth:`updates`.

        Every way of waiting runs :meth:`_polls` under the handle's lock, so that
        concurrent waiters take turns. This one holds it for each nap and look, never
        while its caller's code runs between snapshots: a wait inside the ``updates()``
        loop, or in another task meanwhile, goes on, and when it has seen the task end,
        this loop ends with that snapshot. While a callback is expected, every delay is
        stretched by the session's ``callback_poll_factor``. It starts with the latest
        snapshot known, and yields each one another waiter looked up meanwhile without a
        look of its own, so that two ``updates()`` at once both see every change. Raises
        :class:`DeadlineReached` at *deadline* (the loop's clock); each look and each
        wait for the lock are bounded. An error of the loop names the task (:func:`note_task`).
        """
        with naps(self._rt, self._id) as nap:
            polls: AsyncGenerator[Task, None] | None = None
            mine = self._task  # the snapshot this loop yielded last: first, the latest known
            try:
                if mine is not None:  # before any wait for the lock: a waiter may hold it
                    yield mine
                    if mine.is_terminal:
                        return
                while True:
                    await self._take_lock(deadline)
                    try:
                        task = self._task
                        # One that another waiter looked up meanwhile comes without a look.
                        if task is None or (task is mine and not task.is_terminal):
                            if polls is None:
                                polls = self._polls(deadline, nap, scoped=False)
                            try:
                                task = await polls.__anext__()
                            except StopAsyncIteration:  # pragma: no cover - ends on terminal
                                return
                    finally:
                        self._lock.release()
                    mine = task
                    yield task
                    if task.is_terminal:
                        return
            except ZImageError as exc:  # a read failed for good: the task itself goes on
                note_task(exc, self._id)
                raise
            finally:
                if polls is not None:
                    await polls.aclose()

    async def _take_lock(self, deadline: float | None) -> None:
        if deadline is None:
            await self._lock.acquire()
        else:
            with bounded(deadline, self._rt.deadlines):
                await self._lock.acquire()

    async def _until_terminal(self, deadline: float | None) -> Task:
        """Drain :meth:`_polls` to the task's end (no generator of its own) under the lock.

        The caller holds ``bounded(deadline, ...)``: no look opens a deadline scope of its own.
        """
        task = self._task
        if task is not None and task.is_terminal:
            return task
        try:
            await self._lock.acquire()
            try:
                task = self._task
                if task is None or not task.is_terminal:
                    with naps(self._rt, self._id) as nap:
                        polls = self._polls(deadline, nap, scoped=True)
                        try:
                            async for task in polls:  # noqa: B007 - the last one is the answer
                                pass
                        finally:
                            await polls.aclose()
            finally:
                self._lock.release()
        except ZImageError as exc:  # a read failed for good: the task itself goes on
            note_task(exc, self._id)
            raise
        assert task is not None
        return task


class _Waiting:
    """One wait of a handle (:meth:`HandlePolls._waiting`): a plain context manager.

    Entered once per wait, not a generator: no generator and wrapper object per wait.
    It never swallows the exception that ends the wait.
    """

    __slots__ = ("_handle", "_span")

    def __init__(self, handle: HandlePolls) -> None:
        self._handle = handle

    def __enter__(self) -> None:
        handle = self._handle
        handle._rt.transport.check_loop()  # another loop's wait would break the lock
        span = self._span = handle._span
        span.resume(handle._task)
        span.watch(handle, handle._rt.open_spans)  # the session ends it if it is left open
        handle._waiters += 1
        if RETRYING.get() is not None:  # left by a call cut off before: not this wait's
            RETRYING.set(None)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        handle = self._handle
        try:
            if exc is None:
                return
            if isinstance(exc, SessionClosedError):  # the task goes on: say how to collect it
                note_closed(exc, handle._id)
            if handle._waiters > 1:  # another wait ends it; if that one is only closed, with this
                if not isinstance(exc, GeneratorExit):
                    handle._skipped = exc
            else:
                skipped = handle._skipped
                self._span.stop(skipped if isinstance(exc, GeneratorExit) and skipped else exc)
        finally:
            handle._waiters -= 1
            if not handle._waiters:
                handle._skipped = None
