"""A batch stopped by its spend limit (or a key refusal) still collects what it paid for.

After the stop no create goes out, not even a resend of an uncertain one with its key;
but items whose create already has a task (made by an earlier run that was interrupted,
or by a worker that died) are claimed, waited for and saved, since that costs nothing.
Only the items with no create are reported as not sent.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from zimage_async import (
    BatchItem,
    GenerationRequest,
    PermissionDeniedError,
    Session,
    SpendLimitError,
    SubmissionUncertainError,
)
from zimage_async._journal import JournalRecord, JournalState, open_journal
from zimage_async.emulator import Emulator, FaultPlan
from zimage_async.pytest_plugin import EmulatorFactory

from .conftest import FAST_POLL, FAST_RETRY

#: The emulator's price of one task.
PRICE = 0.026
PROMPTS = [f"a cat {n}" for n in range(6)]
REQUESTS = [GenerationRequest(prompt=prompt) for prompt in PROMPTS]


async def _seed(journal_path: Path, emulator: Emulator, zs: Session) -> dict[int, str]:
    """Leave batch ``b`` as a worker that died left it; return the task ids it made.

    Items 1 and 2 have tasks (``created``), item 3 is ``uncertain`` and item 4
    ``submitting`` (a task may exist for both), items 0 and 5 were never begun.
    """
    tasks: dict[int, str] = {}
    async with await open_journal(str(journal_path)) as journal:
        await journal.enqueue("b", REQUESTS)
        items = await journal.items("b")
        # The dead worker's leases run out at once.
        await journal.claim("b", "dead-worker", lease_seconds=0, limit=len(REQUESTS))
        for index in (1, 2, 3, 4):
            key = items[index].key
            record = JournalRecord.for_request(
                REQUESTS[index],
                key=key,
                base_url=emulator.base_url,
                expected_cost=PRICE,
                batch_id="b",
                item_index=index,
            )
            await journal.begin(record)
            if index in (1, 2):
                handle = await zs._create(REQUESTS[index], key)
                await journal.update(
                    key, JournalState.CREATED, task_id=handle.id, credits_reserved=PRICE
                )
                tasks[index] = handle.id
            elif index == 3:
                await journal.update(key, JournalState.UNCERTAIN, error_message="a reset")
    return tasks


async def _collect(zs: Session, journal_path: Path, out: Path, **options: Any) -> list[BatchItem]:
    async def run() -> list[BatchItem]:
        async with zs.generate_many(
            PROMPTS, journal=journal_path, batch_id="b", output_dir=out, cost=PRICE, **options
        ) as batch:
            items = [item async for item in batch]
        return sorted(items, key=lambda item: item.index)

    return await asyncio.wait_for(run(), 30.0)


async def test_a_spend_stop_still_collects_the_tasks_already_made(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """Items with tasks are saved after the stop; uncertain ones are not resent; the rest wait."""
    journal_path, out = tmp_path / "j.sqlite", tmp_path / "out"
    tasks = await _seed(journal_path, emulator, zs)
    assert emulator.request_counts["create"] == 2
    # Four creates are counted (two made, two that may have made a task): item 0 is over.
    items = await _collect(
        zs, journal_path, out, concurrency=1, max_credits=4.5 * PRICE, resubmit_uncertain=True
    )
    assert [item.index for item in items] == list(range(6))
    for index in (1, 2):
        assert items[index].ok, items[index].error
        assert items[index].task_id == tasks[index]
        assert all(path.is_file() for path in items[index].paths)
    for index in (3, 4):  # may have a task: reported uncertain, never sent again
        assert items[index].sent
        assert isinstance(items[index].error, SubmissionUncertainError), items[index].error
    for index in (0, 5):
        assert not items[index].sent
        assert items[index].task_id is None
        assert isinstance(items[index].error, SpendLimitError)
    assert emulator.request_counts["create"] == 2  # nothing was sent after the stop
    async with await open_journal(str(journal_path)) as journal:
        stored = await journal.items("b")
    # Every item this worker claimed is given back; item 5 it reported without claiming.
    assert [item.claimed_by for item in stored] == [None] * 5 + ["dead-worker"]
    assert [item.settled for item in stored] == [False, True, True, True, True, False]
    assert [item.state for item in stored[1:3]] == [JournalState.SAVED] * 2
    # A rerun with room sends the rest, each once, the uncertain ones with their own keys.
    again = await _collect(
        zs, journal_path, out, concurrency=2, max_credits=10 * PRICE, resubmit_uncertain=True
    )
    assert all(item.ok for item in again), [item.error for item in again]
    assert emulator.billed_counts(by="prompt") == dict.fromkeys(PROMPTS, 1)


async def test_a_key_refusal_stop_still_collects_the_tasks_already_made(
    zimage_emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """A PermissionDeniedError of a create stops sending; a task made earlier is still saved."""
    plan = FaultPlan.script("create", ["http_403"])  # the first create after the seeding
    emulator = await zimage_emulator_factory(task_duration=0.05, seed=1)
    journal_path, out = tmp_path / "j.sqlite", tmp_path / "out"
    async with Session(
        api_key=emulator.api_key, base_url=emulator.base_url, poll=FAST_POLL, retry=FAST_RETRY
    ) as zs:
        tasks = await _seed(journal_path, emulator, zs)
        emulator.faults = plan
        items = await _collect(zs, journal_path, out, concurrency=1)
    assert isinstance(items[0].error, PermissionDeniedError)
    for index in (1, 2):
        assert items[index].ok, items[index].error
        assert items[index].task_id == tasks[index]
    assert isinstance(items[4].error, SubmissionUncertainError)  # not resent after the stop
    assert [item.sent for item in items] == [True, True, True, True, True, False]
    assert emulator.request_counts["create"] == 3
