"""A create another session is still sending is never sent again by recover().

A ``submitting`` record (not a batch item: those have leases) begun less than
``IN_FLIGHT_WINDOW`` ago may be in flight in another live session, of this process or
another: ``recover(resubmit_uncertain=True)`` leaves it (logged), and the journal
refuses to begin its key again. An ``uncertain`` record (its sender gave up) and an old
``submitting`` one (its process died) are sent again as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from pathlib import Path

import attrs
import pytest

from zimage_async import GenerationRequest, JournalError
from zimage_async._journal import JournalRecord, JournalState, begin_refusal, open_journal
from zimage_async._journal_moves import IN_FLIGHT_WINDOW, in_flight
from zimage_async.emulator import Emulator, FaultPlan, FaultRule
from zimage_async.pytest_plugin import EmulatorFactory

from .conftest import until
from .test_recovery import _session

BASE = "https://api.example"
NOW = 1_000_000.0


def _record(state: JournalState, *, begun: float, batch: bool = False) -> JournalRecord:
    made = JournalRecord.for_request(
        GenerationRequest(prompt="a cat"),
        key="in-flight-key-0123456789",
        base_url=BASE,
        batch_id="b" if batch else None,
        item_index=0 if batch else None,
    )
    return attrs.evolve(made, state=state, created_at=begun, updated_at=begun)


def test_a_young_submitting_create_is_in_flight_and_not_begun_again() -> None:
    """Only a plain submitting record begun within the window is in flight."""
    young = _record(JournalState.SUBMITTING, begun=NOW - 5)
    assert in_flight(young, now=NOW)
    refusal = begin_refusal(young, young, now=NOW)
    assert refusal is not None and "is being sent" in refusal and young.key in refusal
    old = _record(JournalState.SUBMITTING, begun=NOW - IN_FLIGHT_WINDOW - 1)
    assert not in_flight(old, now=NOW)
    assert begin_refusal(old, old, now=NOW) is None
    uncertain = _record(JournalState.UNCERTAIN, begun=NOW - 5)
    assert not in_flight(uncertain, now=NOW)
    assert begin_refusal(uncertain, uncertain, now=NOW) is None
    item = _record(JournalState.SUBMITTING, begun=NOW - 5, batch=True)  # leases decide
    assert not in_flight(item, now=NOW)
    assert begin_refusal(item, item, now=NOW) is None
    ahead = _record(JournalState.SUBMITTING, begun=NOW + 60)  # a clock ahead: in flight
    assert in_flight(ahead, now=NOW)


@pytest.fixture
async def keys_ignored(zimage_emulator_factory: EmulatorFactory) -> Emulator:
    """A gateway that ignores idempotency keys: every send bills a task."""
    return await zimage_emulator_factory(task_duration=0.05, seed=1, idempotency="ignore")


async def test_recover_leaves_a_create_another_live_session_is_sending(
    keys_ignored: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Session B's recover(resubmit_uncertain=True) while A's create is slow: billed once."""
    journal = tmp_path / "j.sqlite"
    keys_ignored.faults = FaultPlan.script("create", [FaultRule(kind="slow", delay_seconds=1.0)])
    async with _session(keys_ignored, journal) as a, _session(keys_ignored, journal) as b:
        sending = asyncio.create_task(a.submit("a lighthouse", idempotency_key="slow-create-00001"))
        await until(lambda: keys_ignored.faults_injected.get("slow", 0) > 0)
        with caplog.at_level(logging.INFO, logger="zimage_async.journal"):
            assert await b.recover(resubmit_uncertain=True) == []
        handle = await sending
        await handle.save(tmp_path / "out")
        assert await a.unfinished() == []
    assert len(keys_ignored.ledger) == 1
    assert "slow-create-00001" in caplog.text and "in flight" in caplog.text


async def test_submit_refuses_a_key_that_is_still_being_sent(
    keys_ignored: Emulator, tmp_path: Path
) -> None:
    """The same key submitted again while its first create is in flight: nothing sent."""
    journal = tmp_path / "j.sqlite"
    keys_ignored.faults = FaultPlan.script("create", [FaultRule(kind="slow", delay_seconds=0.5)])
    async with _session(keys_ignored, journal) as zs:
        first = asyncio.create_task(zs.submit("a fox", idempotency_key="same-key-twice-00001"))
        await until(lambda: keys_ignored.faults_injected.get("slow", 0) > 0)
        with pytest.raises(JournalError, match="is being sent"):
            await zs.submit("a fox", idempotency_key="same-key-twice-00001")
        await (await first).wait()
    assert len(keys_ignored.ledger) == 1


async def test_recover_resends_an_old_submitting_create_and_an_uncertain_one(
    keys_ignored: Emulator, tmp_path: Path
) -> None:
    """A submitting record older than the window (its process died) and an uncertain one."""
    journal = tmp_path / "j.sqlite"
    async with _session(keys_ignored, journal) as zs:
        base_url = zs.base_url
    async with await open_journal(journal) as store:
        for key in ("died-submitting-00001", "gave-up-uncertain-001"):
            await store.begin(
                JournalRecord.for_request(GenerationRequest(prompt=key), key=key, base_url=base_url)
            )
        await store.update("gave-up-uncertain-001", JournalState.UNCERTAIN)
    with contextlib.closing(sqlite3.connect(journal)) as db:
        db.execute(
            "UPDATE zimage_creates SET updated_at = updated_at - ? WHERE key = ?",
            (IN_FLIGHT_WINDOW + 1, "died-submitting-00001"),
        )
        db.commit()
    async with _session(keys_ignored, journal) as zs:
        handles = await zs.recover(resubmit_uncertain=True)
        assert len(handles) == 2
        for handle in handles:
            await handle.wait()
        assert [r.state for r in await zs.unfinished()] == [JournalState.COMPLETED] * 2
    assert len(keys_ignored.ledger) == 2
