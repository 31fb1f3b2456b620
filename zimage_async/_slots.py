"""Connection slots: at most N requests at a time, served in the order they asked.

What ``asyncio.Semaphore`` does, with a free slot taken without a coroutine: every API
exchange and every download takes one, and nearly always one is free. :meth:`Slots.take`
is a plain call that returns ``None`` when the slot is taken at once, or a future to
hand to :meth:`Slots.wait` when the caller must queue.
"""

from __future__ import annotations

import asyncio
import collections

__all__ = ["Slots"]


class Slots:
    """At most *size* holders at a time; waiters are served first come, first served.

    >>> slots = Slots(1)
    >>> slots.take() is None  # free: taken at once
    True
    >>> slots.release()
    """

    __slots__ = ("_free", "_waiters")

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def take(self) -> asyncio.Future[None] | None:
        """Take a slot: ``None`` if taken now, else a future to pass to :meth:`wait`."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return None
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return waiter

    async def wait(self, waiter: asyncio.Future[None]) -> None:
        """Wait in line with the *waiter* :meth:`take` returned, until the slot is ours.

        Cancelled while in line, the place is given up; cancelled after the slot was
        handed over but before running again, the slot is passed on to the next waiter.
        """
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()
            raise

    def release(self) -> None:
        """Give a slot back: to the first waiter still in line, else to the free ones."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1

    @property
    def free(self) -> int:
        """The number of free slots (there is no ``len()``: a Slots object is never falsy)."""
        return self._free
