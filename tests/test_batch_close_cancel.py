"""A batch's close keeps its caller's cancellation, also in the turn its leases come back.

Closing a batch gives the items its worker holds back to the journal, within 5 s. A
cancellation of the closing task that arrives in the same turn as that give-back ends
must still reach the caller (``asyncio.wait_for`` on Python 3.10 and 3.11 returned
normally then, and the caller's code went on as if never cancelled).
"""

from __future__ import annotations

import asyncio

import pytest

from zimage_async import ItemState, Session
from zimage_async import _batch as batch_module
from zimage_async._batchjournal import give_back as real
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

    monkeypatch.setattr(batch_module, "give_back", give_back)
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
