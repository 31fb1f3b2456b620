"""A cancelled create whose journal write fails stays cancelled, and its key is logged.

The record of a cancelled create (``uncertain`` if it was sent, ``rejected`` if not) may
fail to be written (a read-only file, a lost server). The cancellation still propagates
(``asyncio.timeout``, TaskGroups and Ctrl-C depend on it) and the failure is logged at
WARNING naming the create's idempotency key, as the journal-less path does, and never
the API key.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from zimage_async import GenerationRequest, JournalError
from zimage_async._journal import JournalRecord, JournalState, open_journal
from zimage_async._journal_sqlite import SqliteJournal
from zimage_async._journaling import Bookkeeper
from zimage_async.emulator import Emulator, FaultPlan, FaultRule

from .conftest import until
from .test_recovery import _session


@pytest.fixture
def unanswered_write_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """Writing ``uncertain`` or ``rejected`` fails, as with a journal gone read-only."""
    update = SqliteJournal.update

    async def failing(self: SqliteJournal, key: str, state: JournalState, **fields: Any) -> Any:
        if state in (JournalState.UNCERTAIN, JournalState.REJECTED):
            raise JournalError(f"the journal {self.location} failed: disk I/O error")
        return await update(self, key, state, **fields)

    monkeypatch.setattr(SqliteJournal, "update", failing)


@pytest.mark.usefixtures("unanswered_write_fails")
async def test_a_cancelled_create_whose_record_fails_is_still_cancelled(
    emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Cancelled mid-send: CancelledError, not JournalError; the key is in a WARNING."""
    emulator.faults = FaultPlan.script("create", [FaultRule(kind="slow", delay_seconds=1.0)])
    async with _session(emulator, tmp_path / "j.sqlite") as zs:
        submit = asyncio.create_task(zs.submit("a cat", idempotency_key="cancelled-unwritten-01"))
        await until(lambda: emulator.faults_injected.get("slow", 0) > 0)
        await asyncio.sleep(0.05)
        with caplog.at_level(logging.WARNING, logger="zimage_async"):
            submit.cancel()
            with pytest.raises(asyncio.CancelledError):
                await submit
        assert submit.cancelled()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("cancelled-unwritten-01" in r.getMessage() for r in warnings)
    assert any("billed" in r.getMessage() for r in warnings)
    assert emulator.api_key not in caplog.text


@pytest.mark.usefixtures("unanswered_write_fails")
async def test_a_create_cancelled_before_sending_whose_record_fails_is_still_cancelled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Cancelled before it was handed over: cancelled; the key is logged, nothing billed."""
    store = await SqliteJournal.open(tmp_path / "j.sqlite")
    book = Bookkeeper(store, max_credits=None)
    waiting = asyncio.Event()

    async def send() -> object:
        waiting.set()  # waiting for a connection: never handed over
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    create = asyncio.ensure_future(
        book.create_from(
            JournalRecord.for_request(
                GenerationRequest(prompt="a cat"),
                key="never-sent-unwritten-1",
                base_url="http://127.0.0.1:1/apiv1",
            ),
            send=send,  # type: ignore[arg-type]
        )
    )
    await waiting.wait()
    with caplog.at_level(logging.WARNING, logger="zimage_async"):
        create.cancel()
        with pytest.raises(asyncio.CancelledError):
            await create
    assert create.cancelled()
    await book.close()
    assert "never-sent-unwritten-1" in caplog.text and "not sent" in caplog.text
    async with await open_journal(tmp_path / "j.sqlite") as journal:
        record = await journal.get("never-sent-unwritten-1")
    assert record is not None and record.state is JournalState.SUBMITTING
