"""A batch runs no further ahead of its consumer than ``concurrency``, and its duration ends.

Items in flight and outcomes waiting unread count against ``concurrency`` together: a
consumer busy with one item (or about to ``break``) does not find the whole batch
created, billed and its images held in memory. A consumer that reads keeps the batch
going to the end. ``stats.elapsed`` and ``progress.elapsed`` stop with the batch.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from zimage_async import ItemState, Session
from zimage_async.emulator import Emulator

from .conftest import settled, until

_IN_FLIGHT = frozenset(
    {ItemState.SUBMITTING, ItemState.PENDING, ItemState.PROCESSING, ItemState.DOWNLOADING}
)


@pytest.mark.parametrize("saving", [False, True], ids=["in-memory", "output_dir"])
async def test_a_busy_consumer_holds_the_batch_to_concurrency_items_ahead(
    zs: Session, emulator: Emulator, tmp_path: Path, saving: bool
) -> None:
    """While the consumer holds its first item, at most ``concurrency`` more are created.

    The batch created and downloaded all twelve items into its queue while the consumer
    held the first; a later ``break`` could not undo that billing.
    """
    concurrency = 2
    output_dir = tmp_path / "out" if saving else None
    prompts = [f"a lamp {n}" for n in range(12)]
    async with zs.generate_many(prompts, concurrency=concurrency, output_dir=output_dir) as batch:
        async for first in batch:
            assert first.ok, first.error
            # Held: the items in flight finish and wait unread; nothing more is claimed.
            await until(lambda: len(emulator.ledger) >= 1 + concurrency)
            created = await settled(lambda: len(emulator.ledger), quiet=0.5)
            assert created == 1 + concurrency
            assert batch.progress.finished == 1 + concurrency
            break
    assert len(emulator.ledger) == 1 + concurrency  # the break stopped the batch there


async def test_a_reading_consumer_gets_every_item_with_the_batch_kept_full(
    zs: Session, emulator: Emulator
) -> None:
    """Each item read frees its place: the batch refills to ``concurrency`` and ends."""
    concurrency, total = 3, 12
    read = 0
    async with zs.generate_many([f"a cup {n}" for n in range(total)], concurrency=concurrency) as b:

        def busy() -> int:  # in flight, plus finished and waiting unread
            counts = b.progress.counts
            return sum(counts.get(state, 0) for state in _IN_FLIGHT) + b.progress.finished - read

        async for item in b:
            assert item.ok, item.error
            read += 1
            if total - read >= concurrency:  # enough left to fill every place again
                await until(lambda: busy() == concurrency)
            assert busy() <= concurrency
    assert read == total
    assert len(emulator.ledger) == total


async def test_iterating_without_async_with_reads_to_the_end(zs: Session) -> None:
    """The bounded batch still ends its iteration, and cleans up, when it is exhausted."""
    batch = zs.generate_many([f"a bell {n}" for n in range(7)], concurrency=2)
    items = [item async for item in batch]
    assert sorted(item.index for item in items) == list(range(7))


async def test_the_duration_of_an_ended_batch_stays_put(zs: Session) -> None:
    """``stats.elapsed`` and ``progress.elapsed`` stop growing once the batch has ended."""
    async with zs.generate_many(["a cat", "a dog"]) as batch:
        items = [item async for item in batch]
    assert len(items) == 2
    ended = batch.stats.elapsed
    assert ended > 0
    await asyncio.sleep(0.2)
    assert batch.stats.elapsed == ended
    assert batch.progress.elapsed == ended


async def test_the_duration_of_a_closed_batch_stays_put(zs: Session) -> None:
    """A batch left by ``break`` keeps the duration it had when it was closed."""
    async with zs.generate_many([f"a hat {n}" for n in range(6)], concurrency=2) as batch:
        async for _ in batch:
            break
    closed = batch.stats.elapsed
    await asyncio.sleep(0.2)
    assert batch.stats.elapsed == closed
    assert batch.progress.elapsed == closed
