"""Recovery acts only on this service's creates, gives expired ones an end, and loses nothing.

``Session.recover`` resumes and resends only the records made at the session's base URL;
completed tasks whose links expired are settled as ``expired`` (and reported);
``Session.task`` records to the journal when it holds the task; closing waits for the
record a cancelled create is still writing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from zimage_async import GenerationRequest, Session
from zimage_async._journal import JournalRecord, JournalState, open_journal
from zimage_async._journal_sqlite import SqliteJournal
from zimage_async._journaling import Bookkeeper
from zimage_async._sending import handing_over
from zimage_async.emulator import Emulator, FaultPlan

from .conftest import FAST_POLL
from .test_recovery import _session

OTHER = "https://other-service.example/apiv1"


async def _record(
    path: Path, key: str, state: JournalState, *, base_url: str, **fields: object
) -> None:
    """Write a record in *state* made at *base_url* straight into the journal."""
    async with await open_journal(path) as journal:
        record = JournalRecord.for_request(
            GenerationRequest(prompt=f"made at {base_url}"), key=key, base_url=base_url
        )
        await journal.begin(record)
        if state is not JournalState.SUBMITTING:
            await journal.update(key, state, **fields)  # type: ignore[arg-type]


async def test_recover_never_resends_or_resumes_a_create_made_at_another_service(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Records of another base URL get no handle and no request, and stay unfinished."""
    journal = tmp_path / "j.sqlite"
    await _record(journal, "other-uncertain-0001", JournalState.UNCERTAIN, base_url=OTHER)
    await _record(journal, "other-submitting-01", JournalState.SUBMITTING, base_url=OTHER)
    await _record(
        journal,
        "other-created-00001",
        JournalState.CREATED,
        base_url=OTHER,
        task_id="task-unified-1757165031-uyujaw3d",
    )
    async with _session(emulator, journal) as zs:
        assert await zs.recover(resubmit_uncertain=True) == []
        left = {record.key for record in await zs.unfinished()}
    assert left == {"other-uncertain-0001", "other-submitting-01", "other-created-00001"}
    assert emulator.ledger == ()
    assert emulator.request_counts.get("create", 0) == 0
    assert emulator.request_counts.get("task", 0) == 0


async def test_recover_resends_this_services_uncertain_create_with_its_key(
    emulator: Emulator, tmp_path: Path
) -> None:
    """An uncertain record of this base URL is sent again (once) when asked."""
    journal = tmp_path / "j.sqlite"
    await _record(journal, "mine-uncertain-00001", JournalState.UNCERTAIN, base_url=OTHER)
    async with _session(emulator, journal) as zs:
        await _record(journal, "mine-uncertain-00002", JournalState.UNCERTAIN, base_url=zs.base_url)
        handles = await zs.recover(resubmit_uncertain=True)
        assert len(handles) == 1
        await handles[0].save(tmp_path / "out")
        left = [record.key for record in await zs.unfinished()]
    assert left == ["mine-uncertain-00001"]
    assert len(emulator.ledger) == 1


async def test_a_refused_resend_does_not_stop_the_recovery_of_the_others(
    emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused resend stays uncertain (its key kept) and is logged; the next ones recover."""
    journal = tmp_path / "j.sqlite"
    async with _session(emulator, journal) as zs:
        for key in ("refused-create-00001", "second-create-000002"):
            await _record(journal, key, JournalState.UNCERTAIN, base_url=zs.base_url)
        emulator.faults = FaultPlan.script("create", ["http_402"])
        with caplog.at_level(logging.WARNING, logger="zimage_async"):
            handles = await zs.recover(resubmit_uncertain=True)
        assert len(handles) == 1
        await handles[0].wait()
    async with await open_journal(journal) as store:
        refused = await store.get("refused-create-00001")
    assert refused is not None and refused.state is JournalState.UNCERTAIN
    assert "refused-create-00001" in caplog.text


async def test_a_completed_task_whose_links_expired_is_settled_as_expired_and_reported(
    emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """recover() marks it ``expired`` (still counted as spent), logs it, lists it no more."""
    journal = tmp_path / "j.sqlite"
    async with _session(emulator, journal) as zs:
        handle = await zs.submit("a fox", idempotency_key="expired-links-000001")
        await handle.wait()
    async with await open_journal(journal) as store:
        await store.update(
            "expired-links-000001", JournalState.COMPLETED, completed_at=time.time() - 90000
        )
    async with _session(emulator, journal) as zs:
        with caplog.at_level(logging.WARNING, logger="zimage_async"):
            assert await zs.recover() == []
        assert await zs.unfinished() == []
        assert (await zs.spent()).creates == 1
    async with await open_journal(journal) as store:
        record = await store.get("expired-links-000001")
    assert record is not None and record.state is JournalState.EXPIRED
    assert not record.state.unfinished and record.state.counts_as_spent
    assert handle.id in caplog.text and "expired" in caplog.text
    assert len(emulator.ledger) == 1


async def test_session_task_records_to_the_journal_that_holds_the_task(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A handle from Session.task(id) of a journaled task records its paths as saved."""
    journal = tmp_path / "j.sqlite"
    async with _session(emulator, journal) as zs:
        handle = await zs.submit("a heron", idempotency_key="task-by-id-00000001")
        other = await Session(
            api_key=emulator.api_key, base_url=emulator.base_url, poll=FAST_POLL
        ).__aenter__()
        try:
            unjournaled = await other.submit("not in the journal")
        finally:
            await other.close()
    async with _session(emulator, journal) as zs:
        paths = await zs.task(handle.id).save(tmp_path / "out")
        assert await zs.unfinished() == []
        assert await zs.task(unjournaled.id).save(tmp_path / "other")  # recorded nowhere
    async with await open_journal(journal) as store:
        record = await store.get("task-by-id-00000001")
        assert len(await store.records()) == 1
    assert record is not None and record.state is JournalState.SAVED
    assert list(record.paths) == paths


class _SlowUpdates(SqliteJournal):
    """A journal whose writes take a while, as a busy database's do."""

    async def update(self, key: str, state: JournalState, **fields: object) -> JournalRecord:
        await asyncio.sleep(0.2)
        return await super().update(key, state, **fields)  # type: ignore[arg-type]


async def test_closing_waits_for_the_uncertain_record_of_a_cancelled_create(
    tmp_path: Path,
) -> None:
    """Cancelled twice mid-create, then closed at once: the record still says uncertain."""
    store = await _SlowUpdates.open(tmp_path / "j.sqlite")
    book = Bookkeeper(store, max_credits=None)
    sending = asyncio.Event()

    async def send() -> object:
        handing_over()  # as the transport does: the create is with the HTTP client
        sending.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    create = asyncio.ensure_future(
        book.create_from(
            JournalRecord.for_request(
                GenerationRequest(prompt="a cat"),
                key="cancelled-create-001",
                base_url="http://127.0.0.1:1/apiv1",
            ),
            send=send,  # type: ignore[arg-type]
        )
    )
    await sending.wait()
    create.cancel()
    await asyncio.sleep(0)  # the create starts writing `uncertain`, shielded
    create.cancel()  # a second Ctrl-C: the caller stops waiting for that write
    with pytest.raises(asyncio.CancelledError):
        await create
    await book.close()
    async with await open_journal(tmp_path / "j.sqlite") as journal:
        record = await journal.get("cancelled-create-001")
    assert record is not None and record.state is JournalState.UNCERTAIN


async def test_session_task_leaves_a_delivered_record_delivered(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Waiting again for a saved task through Session.task does not make it unfinished."""
    journal = tmp_path / "j.sqlite"
    async with _session(emulator, journal) as zs:
        await zs.generate("a wren", idempotency_key="saved-already-000001")
        task_id = emulator.ledger[0].task_id
        await zs.task(task_id).wait()
        assert await zs.unfinished() == []
    async with await open_journal(journal) as store:
        record = await store.get("saved-already-000001")
    assert record is not None and record.state is JournalState.SAVED
