"""A worker still running an old list never sends its old request under an edited item.

An edited run on the same journal and batch id gives a changed item (no task yet) the
new request and a new key. A worker started before the edit, with the old list, that
claims the item then finds its request differs from the journal's: it gives the item
back unsent and stops with a :class:`JournalError` naming the item. And a journal that
an earlier version left with an old request's task under an edited item's key (that
worker sent it) never reports that task as the edited item's result.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from zimage_async import BatchItem, GenerationRequest, JournalError, Session, _batchrun
from zimage_async._journal import JournalRecord, JournalState, open_journal
from zimage_async._journaling import begin_priced
from zimage_async.emulator import Emulator, ManualClock
from zimage_async.pytest_plugin import EmulatorFactory

from .conftest import FAST_POLL, FAST_RETRY, until

#: Item 0 completes after 1 clock second, item 1 after 100: the old worker takes item 2
#: while the edited run still works on item 1.
OLD = ["p zero [[duration:1]]", "p one [[duration:100]]", "p two old"]
NEW = [*OLD[:2], "p two EDITED"]


def _session(emulator: Emulator) -> Session:
    return Session(
        api_key=emulator.api_key, base_url=emulator.base_url, poll=FAST_POLL, retry=FAST_RETRY
    )


async def _run(zs: Session, prompts: list[str], journal: Path, out: Path) -> list[BatchItem]:
    async with zs.generate_many(
        prompts, journal=journal, output_dir=out, batch_id="b", concurrency=1
    ) as batch:
        return [item async for item in batch]


async def test_an_old_worker_gives_back_an_item_the_edited_run_changed(
    zimage_emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """The old worker stops on item 2 unsent; the edited run generates the edited prompt."""
    clock = ManualClock(start=time.time())
    emulator = await zimage_emulator_factory(clock=clock, task_duration=1.0, seed=1)
    journal, out = tmp_path / "j.sqlite", tmp_path / "out"
    async with _session(emulator) as zs:
        old = asyncio.ensure_future(_run(zs, OLD, journal, out))
        await until(lambda: len(emulator.ledger) == 1)  # the old worker sent item 0
        edited = asyncio.ensure_future(_run(zs, NEW, journal, out))
        await until(lambda: len(emulator.ledger) == 2)  # the edited run sent item 1
        clock.advance(1.0)  # item 0 completes: the old worker saves it, claims item 2
        await until(lambda: old.done() or len(emulator.ledger) == 3)
        assert "p two old" not in emulator.billed_counts(by="prompt")
        with pytest.raises(JournalError) as caught:
            await old
        message = str(caught.value)
        assert "item 2" in message
        assert "p two" not in message
        clock.advance(100.0)  # item 1 completes: the edited run then takes item 2
        await until(lambda: len(emulator.ledger) == 3)
        clock.advance(1.0)
        items = await asyncio.wait_for(edited, 30)
        again = await asyncio.wait_for(_run(zs, NEW, journal, out), 30)
    assert emulator.billed_counts(by="prompt") == dict.fromkeys(NEW, 1)
    by_index = {item.index: item for item in items}
    assert by_index[2].ok and by_index[2].request.prompt == "p two EDITED"
    edited_task = next(e.task_id for e in emulator.ledger if e.prompt == "p two EDITED")
    assert by_index[2].task_id == edited_task
    reported = {item.index: item for item in again}
    assert all(item.ok and item.resumed for item in again)
    assert reported[2].task_id == edited_task


async def test_a_task_of_another_request_is_not_reported_as_the_item_s(
    emulator: Emulator, zs: Session, tmp_path: Path
) -> None:
    """An old request's task under an edited item's key: the edited prompt is sent."""
    journal, out = tmp_path / "j.sqlite", tmp_path / "out"
    old_request = GenerationRequest(prompt="p two old")
    new_prompts = ["p zero", "p one", "p two EDITED"]
    new_requests = [GenerationRequest(prompt=prompt) for prompt in new_prompts]
    async with await open_journal(str(journal)) as store:  # as an earlier version left it
        await store.enqueue("b", new_requests)
        await store.claim("b", "old-worker", lease_seconds=60, limit=3)
        key = (await store.items("b"))[2].key
        record = JournalRecord.for_request(
            old_request, key=key, base_url=emulator.base_url, batch_id="b", item_index=2
        )
        await store.begin(record, worker_id="old-worker")
        old_task = await zs.submit(old_request, idempotency_key=key)
        await old_task.wait()
        await store.update(key, JournalState.CREATED, task_id=old_task.id)
        await store.update(key, JournalState.SAVED, completed_at=time.time(), paths=[])
        await store.release("b", "old-worker", 2, settled=True)
        for index in (0, 1):
            await store.release("b", "old-worker", index, settled=False)
    items = await asyncio.wait_for(_run(zs, new_prompts, journal, out), 30)
    by_index = {item.index: item for item in items}
    assert all(item.ok for item in items), [item.error for item in items]
    assert by_index[2].task_id != old_task.id
    assert by_index[2].paths and by_index[2].request.prompt == "p two EDITED"
    assert emulator.billed_counts(by="prompt") == dict.fromkeys([*new_prompts, "p two old"], 1)
    again = await asyncio.wait_for(_run(zs, new_prompts, journal, out), 30)
    assert all(item.ok and item.resumed for item in again)
    assert {item.index: item.task_id for item in again}[2] == by_index[2].task_id


async def test_an_item_changed_between_claim_and_send_is_given_back_unsent(
    emulator: Emulator, zs: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The edit lands after the old worker claimed item 2, before it begins its create."""
    journal, out = tmp_path / "j.sqlite", tmp_path / "out"
    old_prompts = ["p zero", "p one", "p two old"]
    new_requests = [GenerationRequest(prompt=p) for p in [*old_prompts[:2], "p two EDITED"]]

    async def edit_then_begin(store: Any, record: JournalRecord, **kwargs: Any) -> Any:
        if record.item_index == 2:  # the edited run starts now, on the same journal
            async with await open_journal(str(journal)) as other:
                await other.enqueue("b", new_requests)
        return await begin_priced(store, record, **kwargs)

    monkeypatch.setattr(_batchrun, "begin_priced", edit_then_begin)
    with pytest.raises(JournalError, match="another request for item 2 of batch 'b'"):
        await asyncio.wait_for(_run(zs, old_prompts, journal, out), 30)
    assert "p two old" not in emulator.billed_counts(by="prompt")
    async with await open_journal(str(journal)) as store:
        item = (await store.items("b"))[2]
    assert (item.claimed_by, item.settled, item.record) == (None, False, None)
