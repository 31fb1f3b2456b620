"""A journal record's state moves forward only: a delivered create stays delivered.

A handle waited on again after its images were saved reports ``completed`` again; a
late or repeated outcome must not make a ``saved`` (or ``failed``, ``expired``) record
unfinished, or ``recover()`` would fetch it again and later report its images lost.
"""

from __future__ import annotations

import time
from pathlib import Path

import attrs
import pytest

from zimage_async import GenerationRequest, JournalError
from zimage_async._journal import Journal, JournalRecord, JournalState, open_journal
from zimage_async._journal_moves import passed_already
from zimage_async.emulator import Emulator

from .test_recovery import _session

BASE = "https://api.example"


def _with(state: JournalState, task_id: str | None = "task-1") -> JournalRecord:
    record = JournalRecord.for_request(
        GenerationRequest(prompt="a cat"), key="forward-key-0123456789", base_url=BASE
    )
    return attrs.evolve(record, state=state, task_id=task_id)


@pytest.mark.parametrize(
    ("existing", "state", "kept"),
    [
        (JournalState.SAVED, JournalState.COMPLETED, True),
        (JournalState.FAILED, JournalState.COMPLETED, True),
        (JournalState.EXPIRED, JournalState.COMPLETED, True),
        (JournalState.SAVED, JournalState.FAILED, True),
        (JournalState.FAILED, JournalState.SAVED, True),
        (JournalState.SAVED, JournalState.EXPIRED, True),
        (JournalState.SAVED, JournalState.SAVED, False),  # saved again (new paths)
        (JournalState.COMPLETED, JournalState.COMPLETED, False),
        (JournalState.CREATED, JournalState.COMPLETED, False),
        (JournalState.COMPLETED, JournalState.SAVED, False),
        (JournalState.COMPLETED, JournalState.FAILED, False),  # no image after all
        (JournalState.COMPLETED, JournalState.EXPIRED, False),
        (JournalState.EXPIRED, JournalState.SAVED, False),  # delivered after all
    ],
)
def test_a_state_a_record_has_passed_changes_nothing(
    existing: JournalState, state: JournalState, kept: bool
) -> None:
    """Only a move forward (or the same state again) is written."""
    assert passed_already(_with(existing), state) is kept


async def test_waiting_again_after_saving_leaves_the_record_saved(
    emulator: Emulator, tmp_path: Path
) -> None:
    """save() then wait(): still saved, not unfinished, and nothing is fetched again."""
    journal = tmp_path / "j.sqlite"
    async with _session(emulator, journal) as zs:
        handle = await zs.submit("a lighthouse", idempotency_key="saved-then-waited-01")
        paths = await handle.save(tmp_path / "out")
        await handle.wait()
        await handle.result()
        assert await zs.unfinished() == []
    async with _session(emulator, journal) as zs:
        assert await zs.unfinished() == []
        assert await zs.recover() == []
    async with await open_journal(journal) as store:
        record = await store.get("saved-then-waited-01")
    assert record is not None
    assert record.state is JournalState.SAVED
    assert list(record.paths) == paths
    assert len(emulator.ledger) == 1


async def _moves_forward_only(journal: Journal, key: str, tmp_path: Path) -> None:
    """The store keeps a later state and its fields when an earlier one is written."""
    await journal.begin(
        JournalRecord.for_request(GenerationRequest(prompt=key), key=key, base_url=BASE)
    )
    await journal.update(key, JournalState.CREATED, task_id=f"task-{key}")
    await journal.update(key, JournalState.COMPLETED, completed_at=1000.0)
    saved = await journal.update(key, JournalState.SAVED, paths=[tmp_path / "a.png"])
    again = await journal.update(key, JournalState.COMPLETED, completed_at=time.time())
    assert again == saved
    assert await journal.update(key, JournalState.FAILED, error_code="late") == saved
    with pytest.raises(JournalError, match="not moved back to created"):
        await journal.update(key, JournalState.CREATED, task_id=f"task-{key}")
    stored = await journal.get(key)
    assert stored == saved
    assert stored.state is JournalState.SAVED and stored.completed_at == 1000.0
    assert await journal.unfinished() == []


async def test_the_sqlite_store_moves_a_record_forward_only(tmp_path: Path) -> None:
    """SQLite: saved stays saved (same fields) when completed or failed is written over it."""
    async with await open_journal(tmp_path / "j.sqlite") as journal:
        await _moves_forward_only(journal, "forward-sqlite-000001", tmp_path)
