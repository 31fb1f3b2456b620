"""The one poll loop: every way of waiting for a task goes through :func:`snapshots`.

``await handle``, :meth:`~zimage_async.TaskHandle.wait`, ``updates()``, ``result()``,
``save()``, ``iter_bytes()``, batches and the command line all drain the same generator.
What differs is passed in: how to *look* (one ``GET /v1/tasks/{id}``), how to *nap*
between looks (a plain sleep, or a sleep that a callback hint cuts short), and the pure
:class:`~zimage_async._schedule.PollState` that says how long each nap is. One deadline,
on the event loop's monotonic clock, bounds the whole wait: the schedule never naps past
it, and :func:`bounded` cuts short a look still running when it passes. A wait that
only drains the loop (``wait()``, ``result()``, ``save()``) runs it inside one
:func:`bounded` scope; ``updates()``, whose caller's code runs between snapshots, bounds
each look instead.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

from ._deadlines import Deadlines
from ._hints import wake
from ._models import Task
from ._schedule import PollState

if TYPE_CHECKING:
    from ._hints import HintSource
    from ._runtime import Runtime

__all__ = [
    "RETRYING",
    "DeadlineReached",
    "Sleeper",
    "bounded",
    "deadline_after",
    "naps",
    "snapshots",
    "wait_out",
]

#: While a call of the running task waits out a retry (a read's, a download's): what
#: failed and the delay, for a wait cut off then to tell (``note_retrying``).
RETRYING: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "zimage_async_retrying", default=None
)


async def wait_out(sleep: Callable[[float], Awaitable[None]], delay: float, why: str) -> None:
    """Sleep *delay* seconds before a retry; a wait cut off meanwhile tells *why* (failed)."""
    waiting = RETRYING.set(f"{why}; retrying in {delay:.3g} s")
    await sleep(delay)
    RETRYING.reset(waiting)


T = TypeVar("T")

logger = logging.getLogger("zimage_async")

#: Sleeps up to the given seconds; returns True when a callback hint cut the nap short
#: (the schedule then stops stretching its delays), anything else when it slept.
Nap = Callable[[float], Awaitable[object]]


class DeadlineReached(Exception):
    """The wait's deadline passed; the handle turns it into WaitTimeoutError."""


def deadline_after(seconds: float | None) -> float | None:
    """Return the deadline *seconds* from now on the running loop's clock (None: none)."""
    return None if seconds is None else asyncio.get_running_loop().time() + seconds


class bounded:
    """Cut the block short at *deadline* (loop time) with :class:`DeadlineReached`.

    The deadline is kept by *deadlines*, the session's one keeper of wait deadlines
    (one timer for every waiting handle, not one each). Only the deadline's own expiry
    becomes ``DeadlineReached``: a request's timeout inside the block (an
    ``APITimeoutError``) and a cancellation of the caller's pass through as they are.
    ``None`` bounds nothing. A plain (not asynchronous) context manager: entering and
    leaving await nothing, so they cost no coroutine; it is entered once per wait, per
    look of ``updates()`` and per chunk of ``iter_bytes()``.
    """

    __slots__ = ("_deadline", "_deadlines", "_task")

    def __init__(self, deadline: float | None, deadlines: Deadlines) -> None:
        self._deadline = deadline
        self._deadlines = deadlines
        self._task: asyncio.Task[object] | None = None

    def __enter__(self) -> None:
        if self._deadline is not None:
            self._task = self._deadlines.enter_at(self._deadline)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task = self._task
        if task is None:
            return
        self._task = None
        cut = self._deadlines.leave(task, exc)
        if cut and exc_type is not None and issubclass(exc_type, asyncio.CancelledError):
            raise DeadlineReached from None


async def snapshots(
    look: Callable[[], Awaitable[Task]],
    state: PollState,
    *,
    first: Task | None,
    nap: Nap,
    clock: Callable[[], float],
    bound: bounded | None,
    first_seen: float | None = None,
) -> AsyncGenerator[Task, None]:
    """Yield each snapshot of a task until it is terminal (that one included).

    *first* is a snapshot already in hand (the create call's answer), used instead of a
    first look; *first_seen* is when it arrived (on *clock*), which the schedule counts
    from: a wait that begins after the first look was due looks at once. Raises
    :class:`DeadlineReached` when the schedule reaches the deadline of *state* (on
    *clock*, the loop's clock); *bound*, the :class:`bounded` of the same deadline, cuts
    short a look still running then. A caller that drains the generator inside one
    ``bounded`` of its own passes ``bound=None``: one deadline scope per wait, not one
    per look.
    """
    task = first
    seen = first_seen if first is not None else None
    while True:
        if task is None:
            if bound is None:
                task = await look()
            else:
                with bound:
                    task = await look()
        yield task
        if task.is_terminal:
            return
        now = clock()
        delay = state.after(task, now if seen is None else seen)
        if delay is None:
            raise DeadlineReached
        if seen is not None:
            delay -= now - seen  # the time since the snapshot arrived counts
            seen = None
        if delay > 0 and await nap(delay) is True:  # a callback hint cut the nap short
            state.hinted()
        task = None


class Sleeper:
    """A session's sleeps between looks: each ends at its time, or every one when it closes.

    Closing a session (:meth:`wake_all`) cuts every sleep short, so that a wait napping
    then looks at once and fails with the closed-session error instead of sleeping on
    (for up to ``wait_max`` times ``callback_poll_factor``). A sleep after that returns
    at once. A cancellation of the sleeper propagates, as with ``asyncio.sleep``.
    """

    __slots__ = ("closed", "waiting")

    def __init__(self) -> None:
        self.closed = False
        #: The futures of the sleeps (and hint waits) under way, woken by wake_all().
        self.waiting: set[asyncio.Future[None]] = set()

    async def __call__(self, seconds: float) -> None:
        if self.closed:
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(seconds, wake, waiter)
        self.waiting.add(waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self.waiting.discard(waiter)

    def wake_all(self) -> None:
        """End every sleep under way, and every later one at once (the session closes)."""
        self.closed = True
        for waiter in self.waiting:
            wake(waiter)


def checked(
    sleep: Callable[[float], Awaitable[None]], check: Callable[[], None]
) -> Callable[[float], Awaitable[None]]:
    """Return *sleep* followed by *check*: after a nap a closing session cut short, its error.

    For the API's waits between tries and out a 429 pause: woken by the close, they end
    with the closed-session error instead of sending once more, or sleeping on.
    """

    async def nap(seconds: float) -> None:
        await sleep(seconds)
        check()

    return nap


def naps(runtime: Runtime, task_id: str) -> AbstractContextManager[Nap]:
    """Return how to sleep between looks: plainly, or until a callback hint for *task_id*.

    A hint is only a reason to look: the task is fetched, and that answer alone decides.
    A flood of hints (forged or duplicated) must not become a flood of requests, so after
    a hint the next look still waits until the schedule's ``wait_min`` has passed since
    the nap began (which is when the last look ended), or until the nap's end if that
    comes sooner: a hint never makes a look later than the schedule asked. The sleeps,
    the clock and the hints are the *runtime*'s. A plain context manager: watching for
    hints is set up and ended without awaiting anything.
    """
    hints, sleep = runtime.hints, runtime.sleep
    if hints is None:
        return _plain_naps(sleep)  # one object per session's sleep, not per wait
    return _hinted_naps(
        hints, task_id, sleep=sleep, clock=runtime.clock, spacing=runtime.poll.wait_min
    )


class _PlainNaps:
    """The naps of a session without callbacks: plain sleeps (no state: shared by waits)."""

    __slots__ = ("_sleep",)

    def __init__(self, sleep: Callable[[float], Awaitable[None]]) -> None:
        self._sleep = sleep

    def __enter__(self) -> Nap:
        return self._sleep

    def __exit__(self, *exc_info: object) -> None:
        return None


@functools.lru_cache(maxsize=16)
def _plain_naps(sleep: Callable[[float], Awaitable[None]]) -> _PlainNaps:
    return _PlainNaps(sleep)


@contextmanager
def _hinted_naps(
    hints: HintSource,
    task_id: str,
    *,
    sleep: Callable[[float], Awaitable[None]],
    clock: Callable[[], float],
    spacing: float,
) -> Iterator[Nap]:
    sleeper = sleep if isinstance(sleep, Sleeper) else None
    alarms = None if sleeper is None else sleeper.waiting
    with hints.watch(task_id) as watch:

        async def nap(seconds: float) -> bool:
            if sleeper is not None and sleeper.closed:
                return False  # the session closed: look at once (and fail as closed)
            began = clock()
            if not await watch.wait(seconds, alarms):
                return False
            logger.debug("task %s: a callback hint arrived; fetching it", task_id)
            rest = began + min(spacing, seconds) - clock()  # never past the nap
            if rest > 0:
                await sleep(rest)
            return True

        yield nap
