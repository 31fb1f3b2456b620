"""The emulator's notion of time: a protocol, the wall clock, and a clock tests drive.

Every time the emulator reasons about (task phases, link expiry, when a callback is due,
callback retry delays) is read from a :class:`Clock`, in seconds since the Unix epoch.
Network-level delays (the ``slow`` fault, the callback request timeout) are real seconds.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol

from ._numbers import finite_number, shown

__all__ = ["Clock", "ManualClock", "SystemClock", "check_clock", "sleep_for"]

# SystemClock.sleep_until wakes at most this many times per wait: asyncio timers may fire a
# hair early, so a wait re-checks the clock, but never loops without bound.
_MAX_WAKEUPS = 100


class Clock(Protocol):
    """What the emulator needs from a clock.

    ``now()`` returns the current time in seconds since the Unix epoch (a float), and
    ``sleep_until(deadline)`` returns once ``now()`` has reached ``deadline``.
    """

    def now(self) -> float:
        """Return the current time in seconds since the Unix epoch."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Return once :meth:`now` is at or past *deadline* (seconds since the epoch)."""
        ...


def _start(start: object) -> float:
    checked = finite_number(start)
    if checked is None:
        raise ValueError(f"start must be a finite number of seconds, got {shown(start)}.")
    return checked


async def sleep_for(clock: Clock, seconds: float) -> None:
    """Sleep *seconds* of *clock* time (not necessarily real seconds)."""
    await clock.sleep_until(clock.now() + seconds)


class SystemClock:
    """The wall clock, optionally running faster than real time.

    The clock starts at ``time.time()`` (or *start*) when it is made and then advances
    *speed* clock seconds per real second, measured with ``time.monotonic()``. With
    ``speed=10`` a task with a 3 s duration completes after 0.3 real seconds, its callback
    fires then, and callback retry delays of 1, 2, 4 clock seconds take 0.1, 0.2, 0.4 real
    seconds. Task ``created`` times still look like real Unix times.

    Example::

        emulator = Emulator(clock=SystemClock(speed=10.0))
    """

    def __init__(self, *, speed: float = 1.0, start: float | None = None) -> None:
        checked = finite_number(speed)
        if checked is None or checked <= 0:
            raise ValueError(f"speed must be a finite number above 0, got {shown(speed)}.")
        self._speed = checked
        self._origin = time.time() if start is None else _start(start)
        self._monotonic_origin = time.monotonic()

    @property
    def speed(self) -> float:
        """Clock seconds per real second."""
        return self._speed

    def now(self) -> float:
        """Return the current clock time in seconds since the Unix epoch."""
        return self._origin + (time.monotonic() - self._monotonic_origin) * self._speed

    async def sleep_until(self, deadline: float) -> None:
        """Sleep the real time it takes this clock to reach *deadline*."""
        for _ in range(_MAX_WAKEUPS):
            remaining = deadline - self.now()
            if remaining <= 0:
                return
            await asyncio.sleep(remaining / self._speed)

    def __repr__(self) -> str:
        return f"SystemClock(speed={self._speed!r})"


class ManualClock:
    """A clock that only moves when told to, for deterministic tests.

    It starts at *start* seconds since the epoch (default ``1757165031.0``, the created time
    of the documented example task) and stands still until :meth:`advance` is called.
    ``advance`` is synchronous: it moves the time and wakes every coroutine waiting in
    :meth:`sleep_until` whose deadline has passed; those coroutines (due callbacks, callback
    retries) run as soon as the caller next yields to the event loop, for example while it
    awaits the callback receiver. Call it from the event loop's thread.

    Example::

        clock = ManualClock()
        async with Emulator(clock=clock, task_duration=5.0) as emulator:
            ...  # create a task: it is pending
            clock.advance(5.0)  # the task is now completed
    """

    def __init__(self, *, start: float = 1_757_165_031.0) -> None:
        self._now = _start(start)
        self._sequence = itertools.count()
        self._waiters: list[tuple[float, int, asyncio.Future[None]]] = []

    def now(self) -> float:
        """Return the current (manually set) time in seconds since the Unix epoch."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by *seconds* and wake every sleeper that is now due."""
        checked = finite_number(seconds)
        if checked is None or checked < 0:
            raise ValueError(
                f"seconds must be a finite number of at least 0, got {shown(seconds)}."
            )
        self._now += checked
        while self._waiters and self._waiters[0][0] <= self._now:
            _, _, waiter = heapq.heappop(self._waiters)
            if not waiter.done():
                waiter.set_result(None)

    async def sleep_until(self, deadline: float) -> None:
        """Wait until :meth:`advance` has moved the clock to *deadline* or beyond."""
        if deadline <= self._now:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (deadline, next(self._sequence), waiter))
        await waiter

    def __repr__(self) -> str:
        return f"ManualClock(now={self._now!r})"


def check_clock(clock: Clock | None) -> Clock:
    """Return *clock*, or a new :class:`SystemClock` for None; raise ValueError if it is no Clock.

    A clock is an instance with ``now()`` and ``sleep_until()`` (a class is refused).
    """
    if clock is None:
        return SystemClock()
    candidate: object = clock
    methods = (getattr(candidate, name, None) for name in ("now", "sleep_until"))
    if isinstance(candidate, type) or not all(callable(method) for method in methods):
        raise ValueError(
            "clock must be a Clock, such as SystemClock() or ManualClock(), with now() and "
            f"sleep_until(); got {shown(clock)}."
        )
    return clock
