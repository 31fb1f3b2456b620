"""A batch's close keeps its caller's cancellation, also in the turn its leases come back.

Closing a batch gives the items its worker holds back to the journal, within 5 s. A
cancellation of the closing task that arrives in the same turn as that give-back ends
must still reach the caller (``asyncio.wait_for`` on Python 3.10 and 3.11 returned
normally then, and the caller's code went on as if never cancelled).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest

from zimage_async import BatchItem, ItemState, Session
from zimage_async import _batch as batch_module
from zimage_async import _batchjournal as batchjournal_module
from zimage_async._batch import Batch
from zimage_async._batchjournal import give_back as real
from zimage_async._batchrun import ItemRunner
from zimage_async._journal import open_journal
from zimage_async._journal_records import JournalItem
from zimage_async._journal_store import Journal
from zimage_async.emulator import Emulator, FaultPlan, FaultRule

from .conftest import until


@pytest.mark.parametrize("order", ["given-back-first", "cancel-first"])
async def test_a_close_cancelled_as_its_leases_come_back_stays_cancelled(
    zs: Session, monkeypatch: pytest.MonkeyPatch, order: str
) -> None:
    """The close raises CancelledError, and the code after the batch does not run."""
    loop = asyncio.get_running_loop()
    released: asyncio.Future[None] = loop.create_future()
    calls: list[str] = []

    async def give_back(journal: Journal, batch_id: str, worker_id: str) -> None:
        await real(journal, batch_id, worker_id)
        calls.append("give_back")
        if len(calls) == 2:  # the close's (the first is the start's)
            await released

    monkeypatch.setattr(batch_module, "give_back", give_back)  # the start's
    monkeypatch.setattr(batchjournal_module, "give_back", give_back)  # the close's
    went_on: list[str] = []

    async def run() -> None:
        async with zs.generate_many(["a fox"]) as batch:
            async for _ in batch:
                pass
        went_on.append("after the batch")

    task = asyncio.ensure_future(run())
    await until(lambda: len(calls) == 2)

    def both() -> None:
        if order == "given-back-first":
            released.set_result(None)
            task.cancel()
        else:
            task.cancel()
            released.set_result(None)

    loop.call_soon(both)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert went_on == []


async def test_a_close_cancelled_while_a_create_is_still_answering_stays_cancelled(
    zs: Session, emulator: Emulator
) -> None:
    """The close still waits for the create's answer (to record its task), then raises."""
    emulator.faults = FaultPlan.script("create", [FaultRule(kind="slow", delay_seconds=1.5)])
    went_on: list[str] = []
    closing = asyncio.Event()

    async def run() -> None:
        async with zs.generate_many(["a fox"]) as batch:
            await until(lambda: batch.progress.counts.get(ItemState.SUBMITTING, 0) == 1)
            await asyncio.sleep(0.2)  # the create is at the (slow) service
            closing.set()  # leaving the block: the close waits for the create's answer
        went_on.append("after the batch")

    task = asyncio.ensure_future(run())
    closed = asyncio.ensure_future(closing.wait())
    await asyncio.wait([task, closed], timeout=20, return_when=asyncio.FIRST_COMPLETED)
    closed.cancel()
    assert closing.is_set() and not task.done()
    await asyncio.sleep(0.2)  # the close is under way, the create still answering
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 20)
    assert went_on == []
    assert len(emulator.ledger) == 1


async def _closing_while_creating(
    zs: Session, emulator: Emulator, journal: Path
) -> tuple[asyncio.Task[None], list[Batch]]:
    """Leave a batch's block while its one create is at a slow service; return the task."""
    emulator.faults = FaultPlan.script("create", [FaultRule(kind="slow", delay_seconds=1.5)])
    closing = asyncio.Event()
    batches: list[Batch] = []

    async def run() -> None:
        async with zs.generate_many(["a fox"], journal=journal) as batch:
            batches.append(batch)
            await until(lambda: batch.progress.counts.get(ItemState.SUBMITTING, 0) == 1)
            await asyncio.sleep(0.2)  # the create is at the (slow) service
            closing.set()

    task = asyncio.ensure_future(run())
    await asyncio.wait_for(closing.wait(), 20)
    await asyncio.sleep(0.1)  # the close is under way
    return task, batches


async def test_a_second_close_from_another_task_still_records_the_create(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """Both closes wait for the one close, which waits for the create's answer."""
    path = tmp_path / "j.sqlite"
    task, (batch,) = await _closing_while_creating(zs, emulator, path)
    await asyncio.wait_for(batch.aclose(), 20)
    await asyncio.wait_for(task, 20)
    async with await open_journal(path) as journal:
        (record,) = await journal.unfinished()
    assert record.task_id == emulator.ledger[0].task_id


async def test_a_close_cancelled_again_while_it_gives_the_items_back_still_gives_them_back(
    zs: Session, tmp_path: Path
) -> None:
    """The items are released before the cancel is raised."""
    path = tmp_path / "j.sqlite"
    started = asyncio.Event()
    batches: list[Batch] = []

    async def run() -> None:
        async with zs.generate_many(["a", "b"], journal=path, lease=60) as batch:
            batches.append(batch)
            await until(lambda: batch.progress.counts.get(ItemState.SUBMITTING, 0) == 0)
            await until(lambda: _claimed(path) == 2)
            started.set()
            await asyncio.sleep(3600)

    task = asyncio.ensure_future(run())
    await asyncio.wait_for(started.wait(), 20)
    lock = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        lock.execute("BEGIN EXCLUSIVE")  # the close's writes wait on this lock
        task.cancel()  # leaves the block: the close begins
        await asyncio.sleep(0.5)  # ... and waits to give the items back
        task.cancel()  # the caller is cancelled again meanwhile
        await asyncio.sleep(0.2)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 20)
    assert _claimed(path) == 0


def _claimed(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        try:
            rows = db.execute(
                "SELECT COUNT(*) FROM zimage_batch_items WHERE claimed_by IS NOT NULL"
            )
        except sqlite3.OperationalError:  # not made yet
            return 0
        return int(rows.fetchone()[0])


async def test_a_close_from_another_task_ends_the_iteration(
    zs: Session, emulator: Emulator
) -> None:
    """A consumer waiting for the next item sees the end, instead of waiting for ever."""
    emulator.faults = FaultPlan.script("create", [FaultRule(kind="slow", delay_seconds=0.5)])
    batch = zs.generate_many(["a fox", "a cat"])
    got: list[object] = []

    async def consume() -> None:
        async with batch:
            got.extend([item async for item in batch])

    consumer = asyncio.ensure_future(consume())
    await asyncio.sleep(0.2)
    await asyncio.wait_for(batch.aclose(), 20)
    done, _ = await asyncio.wait([consumer], timeout=10)
    if not done:
        consumer.cancel()
    assert done
    consumer.result()


async def test_a_crash_is_kept_as_the_cause_of_a_cancel_during_its_close(
    zs: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's crash is not lost when the caller is cancelled while the batch closes."""
    gate = asyncio.Event()

    async def run(self: ItemRunner, item: JournalItem) -> BatchItem | None:
        if item.index == 1:
            await asyncio.sleep(0.1)
            raise RuntimeError("disk full")
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await gate.wait()  # item 0 winds down slowly, as a create's answer may
            raise
        raise AssertionError("unreachable")

    monkeypatch.setattr(ItemRunner, "run", run)

    async def consume() -> None:
        async with zs.generate_many(["a", "b"], concurrency=2) as batch:
            async for _ in batch:
                pass

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0.5)  # the crash came; the close waits for item 0
    task.cancel()
    await asyncio.sleep(0.1)
    gate.set()
    with pytest.raises(asyncio.CancelledError) as info:
        await asyncio.wait_for(task, 20)
    assert any(isinstance(error, RuntimeError) for error in _chain(info.value))


def _chain(error: BaseException | None) -> list[BaseException]:
    """*error* and the errors behind it (Python 3.10 makes the task's CancelledError anew)."""
    seen: list[BaseException] = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or error.__context__
    return seen
