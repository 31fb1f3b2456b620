"""A create cancelled while its journal entry is written is recorded as never sent.

The journal's write of a create's ``submitting`` entry runs in its own thread (or on
the database server) and goes on when the awaiting task is cancelled. Cancelled then,
the create was never sent, yet its entry stayed ``submitting``: counted as spent and
uncertain, and sent (and billed) by ``recover(resubmit_uncertain=True)`` half an hour
later. It is ``rejected`` now, as a create cancelled before it was handed over; a
cancel that came before the entry was written leaves nothing, and logs nothing.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from zimage_async._journal import JournalRecord, JournalState, open_journal
from zimage_async._journal_sqlite import SqliteJournal
from zimage_async.emulator import Emulator

from .test_recovery import _session

KEY = "cancelled-while-begun-0001"


def _held_begin(monkeypatch: pytest.MonkeyPatch, *, written: bool) -> asyncio.Event:
    """Hold every begin until cancelled: after its entry is written, or before."""
    begin = SqliteJournal.begin
    reached = asyncio.Event()

    async def held(self: SqliteJournal, record: JournalRecord, **options: Any) -> Any:
        stored = await begin(self, record, **options) if written else None
        reached.set()
        await asyncio.sleep(30)  # the cancel lands here  # pragma: no cover - cancelled
        return stored  # pragma: no cover

    monkeypatch.setattr(SqliteJournal, "begin", held)
    return reached


async def _cancelled_submit(emulator: Emulator, journal: Path, reached: asyncio.Event) -> None:
    async with _session(emulator, journal) as zs:
        submit = asyncio.create_task(zs.submit("a cat", idempotency_key=KEY))
        await asyncio.wait_for(reached.wait(), 10)
        submit.cancel()
        with pytest.raises(asyncio.CancelledError):
            await submit


async def test_a_create_cancelled_after_its_entry_was_written_is_rejected(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never sent: ``rejected``, nothing spent, and recovery sends nothing."""
    reached = _held_begin(monkeypatch, written=True)
    await _cancelled_submit(emulator, tmp_path / "j.sqlite", reached)
    monkeypatch.undo()
    async with await open_journal(tmp_path / "j.sqlite") as journal:
        record = await journal.get(KEY)
        spent = await journal.spent()
    assert record is not None
    assert record.state is JournalState.REJECTED
    assert (spent.creates, spent.uncertain) == (0, 0)
    async with _session(emulator, tmp_path / "j.sqlite") as zs:
        assert await zs.recover(resubmit_uncertain=True) == []
    assert emulator.request_counts.get("create", 0) == 0


async def test_a_create_cancelled_before_its_entry_was_written_leaves_nothing(
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No entry, and no WARNING about one that could not be recorded."""
    reached = _held_begin(monkeypatch, written=False)
    with caplog.at_level(logging.WARNING, logger="zimage_async"):
        await _cancelled_submit(emulator, tmp_path / "j.sqlite", reached)
    monkeypatch.undo()
    async with await open_journal(tmp_path / "j.sqlite") as journal:
        assert await journal.get(KEY) is None
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert emulator.request_counts.get("create", 0) == 0
