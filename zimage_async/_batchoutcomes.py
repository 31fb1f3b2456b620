"""The outcomes a batch hands its consumer, and how many wait unread: :class:`Outcomes`.

The batch's supervisor (:mod:`._batch`) puts each item's outcome here as soon as it is
ready, and the consumer's ``async for`` takes them in that order. An outcome waiting
unread counts against the batch's ``concurrency`` as an item in flight does: the
supervisor claims a new item only while the two together leave room, and waits on
:attr:`Outcomes.read` for the consumer to take one. So a consumer that is busy, or
about to ``break``, finds at most ``concurrency`` items created (billed) ahead of it,
and as many images held in memory.
"""

from __future__ import annotations

import asyncio

from ._batchitems import BatchItem

__all__ = ["Crash", "Outcomes"]


class Crash:
    """A worker's unexpected exception, handed to the consumer to re-raise."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Outcomes:
    """A batch's queue of outcomes for its consumer; see the module docstring."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[BatchItem | Crash | None] = asyncio.Queue()
        #: The indexes of the outcomes put with ``counted`` and not taken yet.
        self._unread: set[int] = set()
        #: Set when the consumer takes a counted outcome; the supervisor clears it
        #: before it counts the places left, and waits on it when there is none.
        self.read = asyncio.Event()

    @property
    def unread(self) -> int:
        """How many outcomes that count against ``concurrency`` wait unread."""
        return len(self._unread)

    def put(self, item: BatchItem, *, counted: bool) -> None:
        """Hand *item* to the consumer; *counted*: it holds a place until it is taken.

        The outcomes of items this worker ran are counted; those reported from the
        journal, or never sent after a stop, cost nothing and hold no image: not counted.
        """
        if counted:
            self._unread.add(item.index)
        self._queue.put_nowait(item)

    def crash(self, exc: BaseException) -> None:
        """Hand the consumer a worker's unexpected exception, to raise."""
        self._queue.put_nowait(Crash(exc))

    def end(self) -> None:
        """Tell the consumer that no outcome follows."""
        self._queue.put_nowait(None)

    async def take(self) -> BatchItem | Crash | None:
        """Return the next outcome, a crash, or None at the end; wait for one if need be."""
        outcome = await self._queue.get()
        if isinstance(outcome, BatchItem) and outcome.index in self._unread:
            self._unread.discard(outcome.index)
            self.read.set()
        return outcome

    async def next_change(
        self, running: dict[asyncio.Task[None], int], waiting: float | None
    ) -> None:
        """Wait until an item ends, the consumer takes an outcome, or *waiting* seconds pass.

        An item that ended is taken out of *running* (tasks to their item indexes), and
        its unexpected exception is raised.
        """
        reading = asyncio.ensure_future(self.read.wait())
        try:
            await asyncio.wait(
                [*running, reading], timeout=waiting, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            reading.cancel()
        for task in [task for task in running if task.done()]:
            running.pop(task)
            task.result()

    def rest(self) -> list[BatchItem | Crash | None]:
        """Take every outcome still queued, without waiting (after a crash)."""
        return [self._queue.get_nowait() for _ in range(self._queue.qsize())]
