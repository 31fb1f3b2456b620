"""The journal under hostile conditions: failing writes, hand-edited rows, odd text."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from zimage_async import (
    GenerationRequest,
    JournalError,
    LeaseLostError,
    Session,
    _journal_sqlite_file,
)
from zimage_async._batchjournal import note_held
from zimage_async._batchrun import ItemRunner
from zimage_async._journal import JournalRecord, JournalState
from zimage_async._journal_sqlite import SqliteJournal
from zimage_async.emulator import Emulator, FaultPlan, FaultRule

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


def _fail_created_writes(monkeypatch: pytest.MonkeyPatch, *, times: float) -> None:
    """The first *times* journal writes of ``created`` fail, as with a locked file."""
    update = SqliteJournal.update
    failed: list[str] = []

    async def failing(self: SqliteJournal, key: str, state: JournalState, **fields: Any) -> Any:
        if state is JournalState.CREATED and len(failed) < times:
            failed.append(key)
            raise JournalError(f"the journal {self.location} failed: database is locked")
        return await update(self, key, state, **fields)

    monkeypatch.setattr(SqliteJournal, "update", failing)


@pytest.fixture
def created_write_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every journal write of ``created`` fails, as with a locked file or a stopped server."""
    _fail_created_writes(monkeypatch, times=float("inf"))


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


@pytest.fixture
def created_write_fails_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first journal write of ``created`` fails (a lock held a while); later ones work."""
    _fail_created_writes(monkeypatch, times=1)


@pytest.mark.usefixtures("created_write_fails_once")
async def test_collecting_a_task_left_unrecorded_records_it(
    emulator: Emulator, tmp_path: Path
) -> None:
    """The error's task_id names the billed task; collecting it as advised records it saved.

    The error named the task in its message only (``task_id`` None), and the record
    stayed ``submitting`` with no task for good: a later recovery could send it again.
    """
    journal = tmp_path / "j.sqlite"
    async with _session(emulator, journal) as zs:
        with pytest.raises(JournalError) as caught:
            await zs.submit("a lighthouse", idempotency_key="order-0002-image-0001")
        task_id = emulator.ledger[0].task_id
        assert caught.value.task_id == task_id
        assert [r.state for r in await zs.unfinished()] == [JournalState.SUBMITTING]
        await zs.task(task_id).save(tmp_path / "out")
        assert await zs.unfinished() == []  # saved, under its key: nothing left to send
        assert (await zs.spent()).creates == 1
    assert len(emulator.ledger) == 1


@pytest.mark.usefixtures("created_write_fails_once")
async def test_a_task_left_unrecorded_is_recorded_when_the_session_closes(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Not collected: the close writes its id, so the journal shows it created, not unsent."""
    journal = tmp_path / "j.sqlite"
    async with _session(emulator, journal) as zs:
        with pytest.raises(JournalError):
            await zs.submit("a lighthouse", idempotency_key="order-0003-image-0001")
    async with _session(emulator, journal) as zs:
        [record] = await zs.unfinished()
    assert record.state is JournalState.CREATED
    assert record.task_id == emulator.ledger[0].task_id


@pytest.mark.usefixtures("created_write_fails")
async def test_a_batch_names_every_task_it_could_not_record(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Three creates in flight, none recorded: the error names all three billed tasks.

    It named the first one only: the others were paid for and named nowhere.
    """
    emulator.faults = FaultPlan(
        rules=(FaultRule(kind="slow", endpoint="create", rate=1.0, delay_seconds=0.5),)
    )
    prompts = ["a cat", "a dog", "a fox"]

    async def run(zs: Session) -> None:
        async with zs.generate_many(prompts, concurrency=3) as batch:
            async for _ in batch:
                pass

    async with _session(emulator, tmp_path / "j.sqlite") as zs:
        with pytest.raises(JournalError) as caught:
            await run(zs)
    assert len(emulator.ledger) == 3
    message = str(caught.value)
    for created in emulator.ledger:
        assert created.task_id in message
    assert "do not submit" in message


async def test_a_batch_names_the_one_task_left_unrecorded_after_another_failure(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 1's begin fails (no task); item 0's task, answered meanwhile, goes unrecorded.

    The error was item 1's alone: the one billed task was named nowhere.
    """
    begin, update = SqliteJournal.begin, SqliteJournal.update

    async def failing_begin(self: SqliteJournal, record: JournalRecord, **kw: Any) -> Any:
        if record.item_index == 1:  # while item 0's create is at the service
            await asyncio.sleep(0.15)
            raise JournalError(f"the journal {self.location} failed: disk I/O error")
        return await begin(self, record, **kw)

    async def failing_update(self: SqliteJournal, key: str, state: JournalState, **f: Any) -> Any:
        if state is JournalState.CREATED:
            raise JournalError(f"the journal {self.location} failed: database is locked")
        return await update(self, key, state, **f)

    monkeypatch.setattr(SqliteJournal, "begin", failing_begin)
    monkeypatch.setattr(SqliteJournal, "update", failing_update)
    emulator.faults = FaultPlan(
        rules=(FaultRule(kind="slow", endpoint="create", rate=1.0, delay_seconds=0.5),)
    )

    async def run(zs: Session) -> None:
        async with zs.generate_many(["a cat", "a dog"], concurrency=2) as batch:
            async for _ in batch:
                pass

    async with _session(emulator, tmp_path / "j.sqlite") as zs:
        with pytest.raises(JournalError) as caught:
            await run(zs)
    (billed,) = emulator.ledger
    assert billed.task_id in str(caught.value)
    assert "disk I/O error" in str(caught.value)


async def _batch_of_a_cat(zs: Session, out: Path) -> list[Any]:
    """Run a batch of one prompt into *out*; return its items."""
    async with zs.generate_many(["a cat"], output_dir=out) as batch:
        return [item async for item in batch]


async def _stopped_batch(emulator: Emulator, journal: Path, out: Path) -> str:
    """Run that batch on *journal*; return the message of the JournalError that stops it."""
    async with _session(emulator, journal) as zs:
        with pytest.raises(JournalError) as caught:
            await _batch_of_a_cat(zs, out)
    return str(caught.value)


@pytest.mark.parametrize("failing", [JournalState.COMPLETED, JournalState.SAVED])
async def test_a_task_recorded_before_a_later_write_failed_is_not_called_unrecorded(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: JournalState
) -> None:
    """A write after ``created`` fails: the task is in the journal, and a rerun resumes it.

    The error said the task "could not be recorded" and to collect it with ``zimage
    task``, though the journal held it and the same batch run again resumed it, unpaid.
    """
    update = SqliteJournal.update

    async def failing_update(self: SqliteJournal, key: str, state: JournalState, **f: Any) -> Any:
        if state is failing:
            raise JournalError(f"the journal {self.location} failed: database is locked")
        return await update(self, key, state, **f)

    journal, out = tmp_path / "j.sqlite", tmp_path / "out"
    with monkeypatch.context() as patch:
        patch.setattr(SqliteJournal, "update", failing_update)
        message = await _stopped_batch(emulator, journal, out)
    (billed,) = emulator.ledger
    assert "database is locked" in message
    assert f"task {billed.task_id} (item 0) is recorded in the journal" in message
    assert "run the batch again" in message
    assert "could not be recorded" not in message
    assert "do not submit" not in message
    async with _session(emulator, journal) as zs:
        [item] = await _batch_of_a_cat(zs, out)
    assert item.ok, item.error
    assert item.task_id == billed.task_id
    assert len(emulator.ledger) == 1  # resumed by its id: nothing paid twice


# -- J3: a worker whose lease lapsed answers late ---------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def _taken_over(tmp_path: Path) -> tuple[SqliteJournal, str]:
    """Item 0 begun by worker A, whose lease lapsed, then taken over and recorded by B."""
    clock = _Clock()
    journal = await SqliteJournal.open(tmp_path / "j.sqlite", clock=clock)
    request = GenerationRequest(prompt="a cat")
    await journal.enqueue("b", [request])
    [item] = await journal.claim("b", "A", lease_seconds=1, limit=1)
    record = JournalRecord.for_request(
        request, key=item.key, base_url="https://api.example", batch_id="b", item_index=0
    )
    await journal.begin(record, worker_id="A")
    clock.now += 10
    await journal.claim("b", "B", lease_seconds=600, limit=1)
    await journal.begin(record, worker_id="B")
    await journal.update(item.key, JournalState.CREATED, task_id="task-of-b")
    return journal, item.key


async def test_a_late_answer_never_overwrites_the_task_the_new_holder_recorded(
    tmp_path: Path,
) -> None:
    """Another task id over a recorded one is refused; the journal keeps the new holder's."""
    journal, key = await _taken_over(tmp_path)
    try:
        with pytest.raises(JournalError, match="task-of-b"):
            await journal.update(key, JournalState.CREATED, task_id="task-of-a")
        with pytest.raises(LeaseLostError, match="task-of-a"):
            await note_held(journal, key, JournalState.CREATED, worker_id="A", task_id="task-of-a")
        stored = await journal.get(key)
        assert stored is not None
        assert (stored.state, stored.task_id) == (JournalState.CREATED, "task-of-b")
    finally:
        await journal.close()


async def test_a_late_created_never_moves_a_saved_create_back(tmp_path: Path) -> None:
    """A late ``created`` of the same task leaves a saved record saved."""
    journal, key = await _taken_over(tmp_path)
    try:
        await journal.update(key, JournalState.SAVED, paths=[tmp_path / "a.png"])
        with pytest.raises(LeaseLostError):
            await note_held(journal, key, JournalState.CREATED, worker_id="A", task_id="task-of-b")
        stored = await journal.get(key)
        assert stored is not None
        assert stored.state is JournalState.SAVED
    finally:
        await journal.close()


async def test_a_worker_reports_its_late_task_as_billed_and_unrecorded(tmp_path: Path) -> None:
    """The late answer's task is named as billed; a late answer of the same task is not."""
    journal, key = await _taken_over(tmp_path)
    options = SimpleNamespace(worker_id="A")
    runner = ItemRunner(journal, None, [GenerationRequest(prompt="a cat")], options, [])  # type: ignore[arg-type]
    try:
        with pytest.raises(JournalError) as caught:
            await runner._created(0, key, "task-of-a")
        assert not isinstance(caught.value, LeaseLostError)
        assert "task task-of-a (item 0) was created and is billed" in str(caught.value)
        await journal.update(key, JournalState.SAVED, paths=[tmp_path / "a.png"])
        with pytest.raises(LeaseLostError):  # the new holder's own task: left to it
            await runner._created(0, key, "task-of-b")
    finally:
        await journal.close()


# -- J1: server text that a store cannot hold -------------------------------------------

BAD_TEXT = "nul \x00, lone \udc80 and \ud800 surrogates"
STORED_TEXT = "nul \ufffd, lone \ufffd and \ufffd surrogates"


async def test_server_text_with_nul_or_lone_surrogates_is_stored_replaced(tmp_path: Path) -> None:
    """An error message or code with NUL or a lone surrogate is stored, U+FFFD in their place."""
    journal = await SqliteJournal.open(tmp_path / "j.sqlite")
    try:
        for state in (JournalState.REJECTED, JournalState.UNCERTAIN):
            record = JournalRecord.for_request(
                GenerationRequest(prompt=f"a cat {state.value}"),
                key=f"key-{state.value}-0123456789",
                base_url="https://api.example",
            )
            await journal.begin(record)
            await journal.update(record.key, state, error_code=BAD_TEXT, error_message=BAD_TEXT)
            stored = await journal.get(record.key)
            assert stored is not None
            assert (stored.state, stored.error_code, stored.error_message) == (
                state,
                STORED_TEXT,
                STORED_TEXT,
            )
    finally:
        await journal.close()


async def test_a_task_failing_with_unstorable_text_raises_the_task_error(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The TaskFailedError is raised and recorded, not replaced by a JournalError."""
    from zimage_async import TaskFailedError
    from zimage_async._handle import TaskHandle

    async def failing(self: TaskHandle, *args: Any, **kwargs: Any) -> Any:
        raise TaskFailedError(task_id=self.id, code="service_error", message=BAD_TEXT)

    monkeypatch.setattr(TaskHandle, "wait", failing)
    async with _session(emulator, tmp_path / "j.sqlite") as zs:
        handle = await zs.submit("a lighthouse")
        with pytest.raises(TaskFailedError):
            await handle.wait()
        [record] = await zs._book.journal.records()  # type: ignore[union-attr]
    assert (record.state, record.error_message) == (JournalState.FAILED, STORED_TEXT)


# -- J8: the disk is full --------------------------------------------------------------


class _SelfRollingBack:
    """A connection on which an UPDATE fails as on a full disk: SQLite rolls back by itself."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql.startswith("UPDATE zimage_creates"):
            self._db.execute("ROLLBACK")
            raise sqlite3.OperationalError("database or disk is full")
        return self._db.execute(sql, *args)


async def test_a_full_disk_is_reported_as_such(tmp_path: Path) -> None:
    """A write SQLite rolled back itself raises its own error, not "cannot rollback"."""
    journal = await SqliteJournal.open(tmp_path / "j.sqlite")
    try:
        record = await journal.begin(
            JournalRecord.for_request(
                GenerationRequest(prompt="a cat"),
                key="key-a-cat-0123456789",
                base_url="https://api.example",
            )
        )
        journal._db = _SelfRollingBack(journal._db)  # type: ignore[assignment]
        with pytest.raises(JournalError) as caught:
            await journal.update(record.key, JournalState.CREATED, task_id="task-1")
        assert "database or disk is full" in str(caught.value)
        assert "cannot rollback" not in str(caught.value)
    finally:
        journal._db = journal._db._db  # type: ignore[attr-defined]
        await journal.close()


async def test_a_database_at_its_size_limit_is_reported_full(tmp_path: Path) -> None:
    """A write past PRAGMA max_page_count fails as full, and the journal stays usable."""
    journal = await SqliteJournal.open(tmp_path / "j.sqlite")
    try:
        record = await journal.begin(
            JournalRecord.for_request(
                GenerationRequest(prompt="a cat"),
                key="key-a-cat-0123456789",
                base_url="https://api.example",
            )
        )

        def limit(db: sqlite3.Connection) -> None:
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            db.execute(f"PRAGMA max_page_count = {pages}")

        await journal._run(limit)
        with pytest.raises(JournalError, match="full"):
            await journal.update(record.key, JournalState.FAILED, error_message="x" * 100_000)
        assert not await journal._run(lambda db: db.in_transaction)
        stored = await journal.get(record.key)
        assert stored is not None
        assert stored.state is JournalState.SUBMITTING
    finally:
        await journal.close()


# -- J10: another process holds the journal's lock (a worker stopped mid-write) ----------


@pytest.fixture
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Writes wait 0.2 s, not 30 s, for another process's lock on the journal file."""
    monkeypatch.setattr(_journal_sqlite_file, "BUSY_TIMEOUT_MS", 200)


def _locked(path: Path) -> sqlite3.Connection:
    """Another connection to *path* in a write transaction: a worker stopped (SIGSTOP) there."""
    holder = sqlite3.connect(path, timeout=0, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


@pytest.mark.usefixtures("short_busy_timeout")
async def test_a_journal_locked_by_another_process_says_so_and_for_how_long(
    tmp_path: Path,
) -> None:
    """A write, a claim and an open past the busy timeout name the file and the wait.

    The error was SQLite's bare "database is locked", which does not say that another
    process holds the file, nor that the write waited for it.
    """
    path = tmp_path / "j.sqlite"
    journal = await SqliteJournal.open(path)
    try:
        await journal.enqueue("b", [GenerationRequest(prompt="a cat")])
        holder = _locked(path)
        try:
            attempts = (
                lambda: journal.claim("b", "w", lease_seconds=60, limit=1),
                lambda: SqliteJournal.open(path),
            )
            for attempt in attempts:
                with pytest.raises(JournalError) as caught:
                    await attempt()
                assert f"the journal {path} stayed locked by another process for 0.2 s" in str(
                    caught.value
                )
        finally:
            holder.close()
        assert len(await journal.claim("b", "w", lease_seconds=60, limit=1)) == 1
    finally:
        await journal.close()


@pytest.mark.usefixtures("short_busy_timeout")
async def test_a_batch_whose_journal_stays_locked_stops_naming_the_lock_and_its_task(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ``completed`` write waits for a lock held elsewhere, then the batch stops.

    The message says the journal stayed locked, and that the task is recorded and a rerun
    resumes it; once the lock is gone, the rerun does so and pays nothing more.
    """
    path = tmp_path / "j.sqlite"
    update = SqliteJournal.update

    async def held_update(self: SqliteJournal, key: str, state: JournalState, **f: Any) -> Any:
        if state is not JournalState.COMPLETED:
            return await update(self, key, state, **f)
        holder = _locked(path)  # for the length of this write only
        try:
            return await update(self, key, state, **f)
        finally:
            holder.close()

    with monkeypatch.context() as patch:
        patch.setattr(SqliteJournal, "update", held_update)
        message = await _stopped_batch(emulator, path, tmp_path / "out")
    (billed,) = emulator.ledger
    assert f"the journal {path} stayed locked by another process for 0.2 s" in message
    assert f"task {billed.task_id} (item 0) is recorded in the journal" in message
    async with _session(emulator, path) as zs:
        [item] = await _batch_of_a_cat(zs, tmp_path / "out")
    assert item.ok, item.error
    assert len(emulator.ledger) == 1


# -- J7: hand-edited rows ----------------------------------------------------------------


async def _edited(tmp_path: Path, sql: str, *args: str) -> SqliteJournal:
    """A journal with one create and one batch item, then *sql* run on its file."""
    path = tmp_path / "j.sqlite"
    journal = await SqliteJournal.open(path)
    request = GenerationRequest(prompt="a cat")
    await journal.enqueue("b", [request])
    [item] = await journal.claim("b", "w", lease_seconds=60, limit=1)
    record = JournalRecord.for_request(
        request, key=item.key, base_url="https://api.example", batch_id="b", item_index=0
    )
    await journal.begin(record, worker_id="w")
    await journal.update(record.key, JournalState.CREATED, task_id="task-1")
    await journal.close()
    db = sqlite3.connect(path)
    with db:
        db.execute(sql, args)
    db.close()
    return await SqliteJournal.open(path)


async def _read_all(journal: SqliteJournal) -> None:
    await journal.records()
    await journal.items("b")


@pytest.mark.parametrize(
    "sql",
    [
        pytest.param("UPDATE zimage_creates SET paths = '5'", id="paths-5"),
        pytest.param("UPDATE zimage_creates SET paths = 'null'", id="paths-null"),
        pytest.param("UPDATE zimage_creates SET paths = '[1]'", id="paths-of-numbers"),
        pytest.param("UPDATE zimage_creates SET paths = 'nope'", id="paths-not-json"),
        pytest.param("UPDATE zimage_creates SET item_index = -5", id="negative-item-index"),
        pytest.param("UPDATE zimage_batch_items SET idx = -5", id="negative-idx"),
    ],
)
async def test_a_hand_edited_row_is_a_journal_error_naming_it(tmp_path: Path, sql: str) -> None:
    """Reading a row edited into nonsense raises JournalError naming the row, nothing bare."""
    journal = await _edited(tmp_path, sql)
    try:
        with pytest.raises(JournalError, match="cannot be read") as caught:
            await _read_all(journal)
        assert "key " in str(caught.value) or "batch 'b'" in str(caught.value)
    finally:
        await journal.close()


@pytest.mark.parametrize(
    "request_json",
    ["{", "[]", "5", '{"model": "z-image-turbo"}', '{"prompt": 7}'],
)
async def test_an_unreadable_request_is_a_journal_error_naming_the_row(
    tmp_path: Path, request_json: str
) -> None:
    """A create's or an item's request edited into nonsense: JournalError naming the row."""
    edit = "UPDATE zimage_creates SET request = ?"
    journal = await _edited(tmp_path, edit, request_json)
    try:
        [record] = await journal.records()
        with pytest.raises(JournalError, match=f"key {record.key!r}"):
            record.request()
    finally:
        await journal.close()
    edit = "UPDATE zimage_batch_items SET request = ?"
    journal = await _edited(tmp_path / "items", edit, request_json)
    try:
        [item] = await journal.items("b")
        with pytest.raises(JournalError, match="item 0 of batch 'b'"):
            item.request()
    finally:
        await journal.close()


async def test_a_batch_item_with_a_negative_index_is_refused_when_enqueued(
    tmp_path: Path,
) -> None:
    """Running a batch whose item index was edited to -5: JournalError naming the batch."""
    journal = await _edited(tmp_path, "UPDATE zimage_batch_items SET idx = -5")
    try:
        with pytest.raises(JournalError, match=r"batch 'b'.*-5"):
            await journal.enqueue("b", [GenerationRequest(prompt="a cat")])
    finally:
        await journal.close()


# -- J9a: recover reads each batch once ---------------------------------------------------


async def test_recover_reads_a_batchs_items_once_not_once_per_create(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recovering many unfinished creates of one batch reads its items once."""
    from zimage_async._journaling import Bookkeeper

    journal = await SqliteJournal.open(tmp_path / "j.sqlite")
    requests = [GenerationRequest(prompt=f"a cat {n}") for n in range(6)]
    await journal.enqueue("b", requests)
    for item in await journal.claim("b", "w", lease_seconds=600, limit=6):
        record = JournalRecord.for_request(
            requests[item.index],
            key=item.key,
            base_url="https://api.example",
            batch_id="b",
            item_index=item.index,
        )
        await journal.begin(record, worker_id="w")
    reads: list[str] = []
    items = journal.items

    async def counted(batch_id: str, *args: Any, **kwargs: Any) -> Any:
        reads.append(batch_id)
        return await items(batch_id, *args, **kwargs)

    monkeypatch.setattr(journal, "items", counted)
    resent: list[str] = []

    async def resend(record: JournalRecord) -> Any:
        resent.append(record.key)
        raise AssertionError("a live lease's item is never resent")

    book = Bookkeeper(journal, max_credits=None, base_url="https://api.example")
    try:
        handles = await book.recover(link_ttl=86400.0, resume=lambda r: None, resend=resend)  # type: ignore[arg-type,return-value]
    finally:
        await journal.close()
    assert (handles, resent) == ([], [])
    assert reads == ["b"]


# -- J9b: batch ids -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "batch_id", ["b\x00", "a\nb", "tab\there", "esc\x1b[2J", "del\x7f", "c1\x85"]
)
def test_a_batch_id_with_control_characters_is_refused(batch_id: str) -> None:
    """NUL (which PostgreSQL cannot store) and other control characters are refused up front."""
    from zimage_async import InvalidRequestError
    from zimage_async._batchoptions import check_batch_id

    with pytest.raises(InvalidRequestError, match="batch_id"):
        check_batch_id(batch_id)


def test_a_batch_id_of_printable_text_is_kept() -> None:
    from zimage_async._batchoptions import check_batch_id

    assert check_batch_id("prompts.txt: Ünïcode 猫 ok") == "prompts.txt: Ünïcode 猫 ok"


# -- CLI #19: a symlink planted at the journal's path ---------------------------------------


async def test_a_journal_path_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    """A link at the journal's path is not followed: its target is left as it was."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"")
    link = tmp_path / "out" / "zimage-journal.sqlite"
    link.parent.mkdir()
    link.symlink_to(victim)
    with pytest.raises(JournalError, match="symbolic link"):
        await SqliteJournal.open(link)
    assert victim.read_bytes() == b""
    assert link.is_symlink()


# -- J4: leases by the journal's clock -------------------------------------------------------


async def test_a_create_begun_without_a_worker_leaves_a_held_item_until_its_lease_ends(
    tmp_path: Path,
) -> None:
    """begin() with no worker is refused while a worker's lease runs (the journal's clock)."""
    clock = _Clock()
    journal = await SqliteJournal.open(tmp_path / "j.sqlite", clock=clock)
    try:
        request = GenerationRequest(prompt="a cat")
        await journal.enqueue("b", [request])
        [item] = await journal.claim("b", "worker-a", lease_seconds=600, limit=1)
        record = JournalRecord.for_request(
            request, key=item.key, base_url="https://api.example", batch_id="b", item_index=0
        )
        await journal.begin(record, worker_id="worker-a")
        assert await journal.now() == clock.now
        with pytest.raises(JournalError, match="held by worker 'worker-a'"):
            await journal.begin(record)
        clock.now += 601
        assert (await journal.begin(record)).state is JournalState.SUBMITTING
    finally:
        await journal.close()


async def test_a_damaged_journal_is_refused_with_advice_to_keep_it(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A journal cut short is refused; the error says to keep it, not only to use another."""
    journal = tmp_path / "j.sqlite"
    async with _session(emulator, journal) as zs:
        await zs.submit("a lighthouse")
    data = journal.read_bytes()
    journal.write_bytes(data[: len(data) // 2])
    with pytest.raises(JournalError) as caught:
        async with _session(emulator, journal):
            pass
    message = str(caught.value)
    assert "is not a zimage journal" in message
    assert "keep it" in message and ".recover" in message


async def test_a_resend_refused_by_the_journal_is_not_logged_as_sent(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """recover(): a resend the journal refuses before sending is not said to be sent."""
    journal = tmp_path / "j.sqlite"
    async with _session(emulator, journal) as zs:
        base_url = zs.base_url
    async with await SqliteJournal.open(journal) as store:
        key = "gave-up-uncertain-002"
        await store.begin(
            JournalRecord.for_request(
                GenerationRequest(prompt="an owl"), key=key, base_url=base_url
            )
        )
        await store.update(key, JournalState.UNCERTAIN)

    async def refusing(self: SqliteJournal, *args: Any, **kwargs: Any) -> Any:
        raise JournalError(
            f"the journal {self.location} failed: attempt to write a readonly database"
        )

    monkeypatch.setattr(SqliteJournal, "begin", refusing)
    async with _session(emulator, journal) as zs:
        assert not await zs.recover(resubmit_uncertain=True)
    assert not emulator.ledger
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert key in warning and "readonly" in warning
    assert "sent again, got no task back" not in warning
