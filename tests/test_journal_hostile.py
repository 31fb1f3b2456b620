"""The journal under hostile conditions: failing writes, hand-edited rows, odd text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from zimage_async import JournalError, Session
from zimage_async._journal import JournalState, open_journal
from zimage_async._journal_sqlite import SqliteJournal
from zimage_async.emulator import Emulator

from .conftest import FAST_POLL, FAST_RETRY


def _session(emulator: Emulator, journal: Path, **options: Any) -> Session:
    return Session(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        poll=FAST_POLL,
        retry=FAST_RETRY,
        journal=journal,
        **options,
    )


# -- J2: the write after the create fails -----------------------------------------------


@pytest.fixture
def created_write_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every journal write of ``created`` fails, as with a locked file or a stopped server."""
    update = SqliteJournal.update

    async def failing(self: SqliteJournal, key: str, state: JournalState, **fields: Any) -> Any:
        if state is JournalState.CREATED:
            raise JournalError(f"the journal {self.location} failed: database is locked")
        return await update(self, key, state, **fields)

    monkeypatch.setattr(SqliteJournal, "update", failing)


@pytest.mark.usefixtures("created_write_fails")
async def test_a_task_not_recorded_after_its_create_is_named_in_the_error(
    emulator: Emulator, tmp_path: Path
) -> None:
    """submit() whose ``created`` write fails raises JournalError naming the billed task."""
    key = "order-0001-image-0001"
    async with _session(emulator, tmp_path / "j.sqlite") as zs:
        with pytest.raises(JournalError) as caught:
            await zs.submit("a lighthouse", idempotency_key=key)
    assert len(emulator.ledger) == 1
    task_id = emulator.ledger[0].task_id
    message = str(caught.value)
    assert task_id in message
    assert key in message
    assert f"zimage task {task_id}" in message
    assert "database is locked" in message
