"""A worker's own lapsed lease never leaves an item stuck, and a closed worker holds nothing.

A lease that ran out while nobody else claimed the item is still the worker's: its
renewal revives it, and so its begin (and a new key) go through too, rather than being
refused while the renewals keep the item claimed for ever. Where a worker does lose an
item, it gives it back if the journal still names it, so the batch can end; and
closing a batch gives back every item the worker holds, even one whose claim was under
way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from zimage_async import BatchItem, GenerationRequest, LeaseLostError, Session
from zimage_async._journal import JournalItem, JournalRecord
from zimage_async._journal_sqlite import SqliteJournal
from zimage_async.emulator import Emulator

from .conftest import FAST_POLL, FAST_RETRY

PROMPTS = ["a cat", "a dog"]


class _Clock:
    """The journal's clock: the time now, plus an offset a test moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock() -> _Clock:
    return _Clock()


@pytest.fixture
async def journal(tmp_path: Path, clock: _Clock) -> AsyncIterator[SqliteJournal]:
    opened = await SqliteJournal.open(tmp_path / "j.sqlite", clock=clock)
    try:
        yield opened
    finally:
        await opened.close()


def _session(emulator: Emulator, journal: SqliteJournal) -> Session:
    return Session(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        poll=FAST_POLL,
        retry=FAST_RETRY,
        journal=journal,  # type: ignore[arg-type]
    )


async def _run_batch(zs: Session, tmp_path: Path) -> list[BatchItem]:
    async def run() -> list[BatchItem]:
        async with zs.generate_many(
            PROMPTS, output_dir=tmp_path / "out", batch_id="b", worker_id="w1", lease=3
        ) as batch:
            return [item async for item in batch]

    return await asyncio.wait_for(run(), 10.0)


async def _check_done(journal: SqliteJournal, emulator: Emulator, items: list[BatchItem]) -> None:
    assert sorted(item.index for item in items) == [0, 1]
    assert all(item.ok for item in items), [item.error for item in items]
    stored = await journal.items("b")
    assert [(item.settled, item.claimed_by) for item in stored] == [(True, None)] * 2
    assert emulator.billed_counts(by="prompt") == dict.fromkeys(PROMPTS, 1)


async def _run_to_the_end(emulator: Emulator, journal: SqliteJournal, tmp_path: Path) -> None:
    """Run the batch as worker w1 through a Session on *journal*, and check it all done."""
    async with _session(emulator, journal) as zs:
        items = await _run_batch(zs, tmp_path)
        await _check_done(journal, emulator, items)


Begin = Callable[[JournalRecord], Awaitable[JournalRecord]]


def _on_first_begin_of_item_0(
    journal: SqliteJournal,
    monkeypatch: pytest.MonkeyPatch,
    first: Callable[[JournalRecord, Begin], Awaitable[JournalRecord]],
) -> list[str]:
    """Make the first begin of item 0 run *first* (given the real begin); list its key."""
    real_begin = journal.begin
    met: list[str] = []

    async def begin(record: JournalRecord, **options: Any) -> JournalRecord:
        if met or record.item_index != 0:
            return await real_begin(record, **options)
        met.append(record.key)
        return await first(record, lambda again: real_begin(again, **options))

    monkeypatch.setattr(journal, "begin", begin)
    return met


async def test_a_worker_whose_own_lease_lapsed_still_begins_the_item(
    emulator: Emulator,
    journal: SqliteJournal,
    clock: _Clock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The lease ran out (the loop was blocked) but nobody claimed the item: it is still run."""

    async def lapse(record: JournalRecord, real_begin: Begin) -> JournalRecord:
        clock.offset += 10.0  # past the 3 s lease, and no other worker claimed the item
        try:
            return await real_begin(record)
        finally:  # the late renewal's turn comes next: it revives the lease
            await journal.renew("b", "w1", lease_seconds=3)

    lapsed = _on_first_begin_of_item_0(journal, monkeypatch, lapse)
    await _run_to_the_end(emulator, journal, tmp_path)
    assert lapsed


async def test_an_item_lost_while_still_the_workers_is_given_back_and_run(
    emulator: Emulator,
    journal: SqliteJournal,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A LeaseLostError while the journal still names the worker: released, claimed again."""

    async def refuse(record: JournalRecord, real_begin: Begin) -> JournalRecord:
        await journal.renew("b", "w1", lease_seconds=3)  # the renewals go on
        raise LeaseLostError("lost", batch_id="b", index=0, worker_id="w1")

    refused = _on_first_begin_of_item_0(journal, monkeypatch, refuse)
    await _run_to_the_end(emulator, journal, tmp_path)
    assert refused


async def test_closing_gives_back_an_item_whose_claim_was_under_way(
    emulator: Emulator,
    journal: SqliteJournal,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The claim was written when the batch was cancelled: aclose() still releases the item."""
    real_claim = journal.claim
    written = asyncio.Event()

    async def claim(*args: Any, **options: Any) -> list[JournalItem]:
        claimed = await real_claim(*args, **options)
        if claimed:
            written.set()
            await asyncio.Event().wait()  # the answer never reaches the worker
        return claimed

    monkeypatch.setattr(journal, "claim", claim)
    async with _session(emulator, journal) as zs:
        batch = zs.generate_many(PROMPTS, batch_id="b", worker_id="w1", lease=600)

        async def consume() -> None:
            async for _ in batch:
                pass

        consuming = asyncio.ensure_future(consume())
        await asyncio.wait_for(written.wait(), 10.0)
        consuming.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(consuming, 10.0)
        stored = await journal.items("b")
    assert [item.claimed_by for item in stored] == [None, None]
    assert [item.settled for item in stored] == [False, False]
    assert len(emulator.ledger) == 0


async def test_a_worker_started_again_under_its_id_runs_the_items_its_earlier_run_held(
    emulator: Emulator, journal: SqliteJournal, tmp_path: Path
) -> None:
    """A killed w1 held item 0; a new w1's renewals would keep it claimed, run by nobody."""
    await journal.enqueue("b", [GenerationRequest(prompt=prompt) for prompt in PROMPTS])
    assert await journal.claim("b", "w1", lease_seconds=600, limit=1)
    await _run_to_the_end(emulator, journal, tmp_path)
