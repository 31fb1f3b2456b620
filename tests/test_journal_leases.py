"""Lease and limit edge cases, in SQLite and PostgreSQL.

A worker whose renewal came late keeps its items while nobody claimed them; a worker
whose answer arrives after its item was taken over cannot write it back over the task
the new holder recorded; a taker that finds the task recorded meanwhile leaves the item
to be resumed by its id; a worker that finishes an item taken over meanwhile leaves its
outcome to the new holder. Under a spend limit, only one create of a model and size
whose price is unknown is sent at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from zimage_async import BatchItem, GenerationRequest, JournalError, LeaseLostError, Session
from zimage_async._batch import Batch
from zimage_async._batchitems import BatchServices
from zimage_async._batchoptions import BatchOptions
from zimage_async._batchrun import ItemRunner
from zimage_async._journal import (
    Journal,
    JournalItem,
    JournalRecord,
    JournalState,
)
from zimage_async._journal_spend import PriceAwaited, SpendLimit
from zimage_async.emulator import Emulator, ManualClock
from zimage_async.pytest_plugin import EmulatorFactory

from .conftest import FAST_POLL, FAST_RETRY, until

REQUEST = GenerationRequest(prompt="a cat")


async def _begun(journal: Journal, base_url: str = "http://127.0.0.1:9") -> str:
    """Enqueue batch ``b`` with one item and begin its create; return the key."""
    await journal.enqueue("b", [REQUEST])
    key = (await journal.items("b"))[0].key
    await journal.begin(
        JournalRecord.for_request(REQUEST, key=key, base_url=base_url, batch_id="b", item_index=0)
    )
    return key


async def test_a_late_renewal_keeps_the_items_nobody_claimed(journal: Journal) -> None:
    """A lease that ran out is renewed by its holder while no other worker claimed it."""
    await journal.enqueue("b", [REQUEST])
    assert await journal.claim("b", "worker-a", lease_seconds=0, limit=1)  # lapses at once
    assert await journal.renew("b", "worker-a", lease_seconds=600) == 1
    assert await journal.claim("b", "worker-b", lease_seconds=600, limit=1) == []


async def test_a_late_renewal_does_not_take_back_a_claimed_item(journal: Journal) -> None:
    """Once another worker claimed the lapsed item, the old holder's renewal renews nothing."""
    await journal.enqueue("b", [REQUEST])
    assert await journal.claim("b", "worker-a", lease_seconds=0, limit=1)
    assert await journal.claim("b", "worker-b", lease_seconds=600, limit=1)
    assert await journal.renew("b", "worker-a", lease_seconds=600) == 0
    assert (await journal.items("b"))[0].claimed_by == "worker-b"


async def test_a_lapsed_lease_nobody_claimed_still_lets_its_holder_begin_and_rekey(
    journal: Journal,
) -> None:
    """As for a late renewal, the item is still its holder's until another worker claims it."""
    await journal.enqueue("b", [REQUEST])
    assert await journal.claim("b", "worker-a", lease_seconds=0, limit=1)  # lapses at once
    key = await journal.rekey("b", "worker-a", 0)
    assert key is not None
    record = JournalRecord.for_request(
        REQUEST, key=key, base_url="http://127.0.0.1:9", batch_id="b", item_index=0
    )
    assert (await journal.begin(record, worker_id="worker-a")).key == key
    assert await journal.claim("b", "worker-b", lease_seconds=600, limit=1)
    with pytest.raises(LeaseLostError):
        await journal.begin(record, worker_id="worker-a")
    assert await journal.rekey("b", "worker-a", 0) is None
    assert (await journal.items("b"))[0].key == key


async def test_a_claim_of_begun_items_leaves_those_never_sent(journal: Journal) -> None:
    """begun_only claims the items whose create may have a task, not those to send."""
    requests = [GenerationRequest(prompt=f"a cat {n}") for n in range(4)]
    await journal.enqueue("b", requests)
    items = await journal.items("b")
    states = {1: JournalState.REJECTED, 2: JournalState.CREATED, 3: JournalState.UNCERTAIN}
    for index, state in states.items():
        await journal.begin(
            JournalRecord.for_request(
                requests[index],
                key=items[index].key,
                base_url="http://127.0.0.1:9",
                batch_id="b",
                item_index=index,
            )
        )
        task_id = "task-2" if state is JournalState.CREATED else None
        await journal.update(items[index].key, state, task_id=task_id)
    claimed = await journal.claim("b", "w", lease_seconds=600, limit=4, begun_only=True)
    assert [item.index for item in claimed] == [2, 3]
    rest = await journal.claim("b", "w", lease_seconds=600, limit=4)
    assert [item.index for item in rest] == [0, 1]


@pytest.mark.parametrize(
    "state", [JournalState.SUBMITTING, JournalState.UNCERTAIN, JournalState.REJECTED]
)
async def test_a_stale_writer_cannot_move_a_task_back(
    journal: Journal, state: JournalState
) -> None:
    """A record with a task id never goes back to a state that says no task is known."""
    key = await _begun(journal)
    await journal.update(key, JournalState.CREATED, task_id="task-of-the-new-holder")
    with pytest.raises(JournalError, match="task-of-the-new-holder"):
        await journal.update(key, state, error_message="a late answer")
    record = await journal.get(key)
    assert record is not None
    assert (record.state, record.task_id) == (JournalState.CREATED, "task-of-the-new-holder")


async def test_a_taker_leaves_an_item_whose_task_was_recorded_meanwhile(
    journal: Journal, zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """The old holder records its task as the taker claims: the taker neither sends nor crashes."""
    key = await _begun(journal, emulator.base_url)
    [item] = await journal.claim("b", "taker", lease_seconds=600, limit=1)
    assert item.state is JournalState.SUBMITTING
    made = await zs.submit("a cat")  # the old holder's create, answered late
    await journal.update(key, JournalState.CREATED, task_id=made.id)
    services = BatchServices(
        send=lambda request, sent_key: zs._create(request, sent_key),
        task=zs._task,
        gate_wait=zs._runtime.api.gate.wait,
        base_url=zs.base_url,
        link_ttl=zs._runtime.link_ttl,
    )
    options = BatchOptions(
        concurrency=1,
        output_dir=tmp_path / "out",
        journal=None,
        batch_id="b",
        worker_id="taker",
        lease=600.0,
        timeout=None,
        resubmit_uncertain=False,
        resubmit_failed=False,
        resubmit_expired=False,
        max_credits=None,
        name=None,
        numbers=None,
    )
    runner = ItemRunner(journal, services, [REQUEST], options, [])
    assert await runner.run(item) is None
    assert len(emulator.ledger) == 1
    [again] = await journal.claim("b", "taker", lease_seconds=600, limit=1)  # given back
    outcome = await runner.run(again)
    assert outcome is not None
    assert outcome.ok, outcome.error
    assert outcome.task_id == made.id
    assert len(emulator.ledger) == 1


async def _eventually(condition: Callable[[], Awaitable[bool]]) -> None:
    """Check *condition* every 50 ms, at most 200 times, until it holds."""
    for _ in range(200):
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in 200 checks")


async def test_a_worker_whose_item_was_taken_over_leaves_its_outcome_to_the_new_holder(
    journal_target: str,
    journal: Journal,
    zimage_emulator_factory: EmulatorFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its lease lapsed and worker-b claimed the item: worker-a's release fails, no outcome."""
    clock = ManualClock(start=time.time())  # the task runs until the clock is advanced
    emulator = await zimage_emulator_factory(clock=clock, task_duration=1.0, seed=1)

    async def stalled(self: Batch) -> None:  # worker-a hangs in its renewals
        await asyncio.Event().wait()

    monkeypatch.setattr(Batch, "_renew", stalled)
    caplog.set_level(logging.WARNING, logger="zimage_async.batch")
    session = Session(
        api_key=emulator.api_key, base_url=emulator.base_url, poll=FAST_POLL, retry=FAST_RETRY
    )
    async with (
        session as zs,
        zs.generate_many(
            ["a cat"],
            journal=journal_target,
            batch_id="b",
            worker_id="worker-a",
            lease=1,
            concurrency=1,
            output_dir=tmp_path / "out",
        ) as batch,
    ):
        consuming = asyncio.ensure_future(_outcomes(batch))
        await until(lambda: len(emulator.ledger) == 1)  # worker-a's task is running
        stolen: list[JournalItem] = []

        async def taken() -> bool:
            stolen[:] = await journal.claim("b", "worker-b", lease_seconds=600, limit=1)
            return bool(stolen)

        await _eventually(taken)  # once worker-a's lease has lapsed
        clock.advance(1.0)  # the task completes: worker-a saves it, then fails to release it

        async def saved() -> bool:
            record = await journal.get(stolen[0].key)
            return record is not None and record.state is JournalState.SAVED

        await _eventually(saved)
        assert await journal.release("b", "worker-b", 0, settled=True)  # worker-b reports it
        outcomes = await asyncio.wait_for(consuming, 20.0)
        stats = batch.stats
    assert outcomes == []
    assert (stats.claimed, stats.saved, stats.failed, stats.not_sent) == (1, 0, 0, 0)
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "zimage_async.batch" and r.levelno >= logging.WARNING
    ]
    assert len(warnings) == 1, warnings
    assert "'b'" in warnings[0] and "item 0" in warnings[0] and "another worker" in warnings[0]
    assert len(emulator.ledger) == 1


async def _outcomes(batch: Batch) -> list[BatchItem]:
    return [item async for item in batch]


def _unpriced(key: str, size: str | None = None, cost: float | None = None) -> JournalRecord:
    request = GenerationRequest(prompt="a cat", size=size)
    return JournalRecord.for_request(
        request, key=key, base_url="http://127.0.0.1:9", expected_cost=cost
    )


async def test_one_unpriced_create_at_a_time_under_a_limit(journal: Journal) -> None:
    """Under a limit, a second create of a model and size without a price waits for one."""
    limits = [SpendLimit(max_credits=1.0)]
    first = await journal.begin(_unpriced("first-unpriced-0001"), limits=limits)
    with pytest.raises(PriceAwaited):
        await journal.begin(_unpriced("second-unpriced-0001"), limits=limits)
    await journal.begin(_unpriced("other-size-unpriced-01", size="16:9"), limits=limits)
    await journal.begin(_unpriced("with-a-cost-000000001", cost=0.1), limits=limits)
    await journal.begin(_unpriced("no-limit-unpriced-0001"))  # no limit: nothing to protect
    await journal.update(first.key, JournalState.CREATED, task_id="t-1", credits_reserved=0.3)
    second = await journal.begin(_unpriced("second-unpriced-0001"), limits=limits)
    assert second.expected_cost == 0.3
