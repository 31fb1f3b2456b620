"""The PostgreSQL journal under hostile conditions: odd text, dropped connections, clocks.

And its fixes: a record's state moves forward only; a database of another format or
application is refused untouched; a create another session is still sending is not
begun again.
"""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any

import pytest

from zimage_async import GenerationRequest, JournalError
from zimage_async._journal import Journal, JournalRecord, JournalState, open_journal
from zimage_async._journal_moves import IN_FLIGHT_WINDOW

from .test_journal_forward import _moves_forward_only

asyncpg = pytest.importorskip("asyncpg")

BASE = "https://api.example"
PW = "S3cret-pw-of-the-journal"
BAD_TEXT = "nul \x00, lone \udc80 and \ud800 surrogates"
STORED_TEXT = "nul \ufffd, lone \ufffd and \ufffd surrogates"


@pytest.fixture
def journal_target(pg_url: str) -> str:
    """Only a PostgreSQL journal (the shared ``journal`` fixture opens it)."""
    return pg_url


def _record(prompt: str, **options: object) -> JournalRecord:
    return JournalRecord.for_request(
        GenerationRequest(prompt=prompt),
        key=f"key-{prompt.replace(' ', '-')}-0123456789",
        base_url=BASE,
        **options,  # type: ignore[arg-type]
    )


# -- J1 -------------------------------------------------------------------------------


async def test_server_text_with_nul_or_lone_surrogates_is_stored_replaced(
    journal: Journal,
) -> None:
    """NUL and lone surrogates in an error are stored as U+FFFD, not refused by the server."""
    for state in (JournalState.REJECTED, JournalState.FAILED):
        record = await journal.begin(_record(f"a cat {state.value}"))
        task_id = "task-1" if state is JournalState.FAILED else None
        await journal.update(
            record.key, state, task_id=task_id, error_code=BAD_TEXT, error_message=BAD_TEXT
        )
        stored = await journal.get(record.key)
        assert stored is not None
        assert (stored.state, stored.error_code, stored.error_message) == (
            state,
            STORED_TEXT,
            STORED_TEXT,
        )


# -- J5 -------------------------------------------------------------------------------


async def test_every_driver_error_becomes_a_journal_error(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The InternalClientError of a connection terminated during COMMIT is a JournalError."""
    import asyncpg
    import asyncpg.connection

    async def broken(*args: object, **kwargs: object) -> object:
        raise asyncpg.InternalClientError("cannot switch to state 15")

    monkeypatch.setattr(asyncpg.connection.Connection, "fetchrow", broken)
    with pytest.raises(JournalError, match="cannot switch to state 15"):
        await journal.get("key-a-cat-0123456789")


# -- J6 -------------------------------------------------------------------------------


async def _terminate_others(pg_url: str) -> None:
    """End every other backend of *pg_url*'s database (pg_terminate_backend), and wait for it."""
    import asyncpg

    admin = await asyncpg.connect(pg_url)
    try:
        query = (
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        assert await admin.fetchval(query) >= 1
        alive = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        for _ in range(100):  # bounded: the backends end within milliseconds
            if await admin.fetchval(alive) == 1:
                return
            await asyncio.sleep(0.05)
    finally:
        await admin.close()


async def test_a_connection_ended_while_idle_is_replaced_not_a_failure(
    journal: Journal, pg_url: str
) -> None:
    """A pooled connection whose backend was terminated while idle is replaced: writes go on."""
    record = await journal.begin(_record("a cat"))
    await _terminate_others(pg_url)
    errors: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context))
    stored = await journal.update(record.key, JournalState.CREATED, task_id="task-1")
    assert stored.task_id == "task-1"
    await _terminate_others(pg_url)
    assert await journal.get(record.key) is not None
    await journal.close()
    gc.collect()
    await asyncio.sleep(0)
    assert errors == []


async def test_a_transaction_whose_begin_finds_the_connection_lost_is_tried_once_more(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BEGIN failing on a lost connection (nothing sent yet) is retried once on another one."""
    import asyncpg
    import asyncpg.transaction

    record = await journal.begin(_record("a cat"))
    start = asyncpg.transaction.Transaction.start
    failures = [1]

    async def lost_once(self: asyncpg.transaction.Transaction) -> None:
        if failures:
            failures.pop()
            self._connection.terminate()  # type: ignore[attr-defined]
            raise asyncpg.ConnectionDoesNotExistError("connection was closed")
        await start(self)

    monkeypatch.setattr(asyncpg.transaction.Transaction, "start", lost_once)
    stored = await journal.update(record.key, JournalState.CREATED, task_id="task-1")
    assert stored.task_id == "task-1"
    assert failures == []
    failures[:] = [1, 1]
    with pytest.raises(JournalError, match="connection was closed"):  # twice: no more tries
        await journal.get(record.key)


# -- J4 -------------------------------------------------------------------------------


async def _held_item(journal: Journal) -> JournalRecord:
    """Item 0 of batch b1, claimed by worker-a for 600 s, its create begun (submitting)."""
    request = GenerationRequest(prompt="a lighthouse")
    await journal.enqueue("b1", [request])
    [item] = await journal.claim("b1", "worker-a", lease_seconds=600, limit=1)
    record = JournalRecord.for_request(
        request, key=item.key, base_url=BASE, batch_id="b1", item_index=0
    )
    return await journal.begin(record, worker_id="worker-a")


async def test_recover_on_a_machine_whose_clock_runs_ahead_leaves_a_held_item(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leases are judged by the store's clock: an hour's skew does not resend a held item."""
    import time

    from zimage_async import _journal_recovery, _journaling

    await _held_item(journal)
    skewed = time.time() + 3600
    for module in (_journaling, _journal_recovery):
        monkeypatch.setattr(module.time, "time", lambda: skewed)
    resent: list[str] = []

    async def resend(record: JournalRecord) -> object:
        resent.append(record.key)
        raise AssertionError("a held item was sent again")

    book = _journaling.Bookkeeper(journal, max_credits=None, base_url=BASE)
    handles = await book.recover(link_ttl=86400.0, resume=lambda r: None, resend=resend)  # type: ignore[arg-type,return-value]
    assert (handles, resent) == ([], [])


async def test_a_create_begun_without_a_worker_is_refused_for_an_item_held_by_one(
    journal: Journal,
) -> None:
    """begin() without worker_id does not take an item another worker holds on a live lease."""
    record = await _held_item(journal)
    with pytest.raises(JournalError, match="worker-a"):
        await journal.begin(record)
    stored = await journal.get(record.key)
    assert stored is not None
    assert stored.state is JournalState.SUBMITTING


async def test_a_transaction_whose_connection_is_lost_before_commit_is_run_once_more(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection lost mid-transaction (nothing committed) costs a retry, not a failure."""
    import asyncpg
    import asyncpg.connection

    record = await journal.begin(_record("a cat"))
    fetchrow = asyncpg.connection.Connection.fetchrow
    failures = [1]

    async def lost_once(self: asyncpg.connection.Connection, *args: Any, **kwargs: Any) -> Any:
        if failures and "UPDATE" in str(args[0]):
            failures.pop()
            self.terminate()
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle")
        return await fetchrow(self, *args, **kwargs)

    monkeypatch.setattr(asyncpg.connection.Connection, "fetchrow", lost_once)
    stored = await journal.update(record.key, JournalState.CREATED, task_id="task-1")
    assert (stored.task_id, failures) == ("task-1", [])


async def test_a_failed_commit_is_not_run_again(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A COMMIT that failed may have been applied: it is reported, never sent twice."""
    import asyncpg
    import asyncpg.transaction

    record = await journal.begin(_record("a cat"))
    commits: list[int] = []

    async def failing(self: asyncpg.transaction.Transaction) -> None:
        commits.append(1)
        raise asyncpg.ConnectionDoesNotExistError("connection was closed during COMMIT")

    monkeypatch.setattr(asyncpg.transaction.Transaction, "commit", failing)
    with pytest.raises(JournalError, match="during COMMIT"):
        await journal.update(record.key, JournalState.CREATED, task_id="task-1")
    assert commits == [1]


async def test_a_commit_the_driver_refused_to_send_is_run_again(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A COMMIT refused before sending (cannot switch to state): the transaction runs again."""
    import asyncpg
    import asyncpg.transaction

    record = await journal.begin(_record("a cat"))
    commit = asyncpg.transaction.Transaction.commit
    failures = [1]

    async def refused_once(self: asyncpg.transaction.Transaction) -> None:
        if failures:
            failures.pop()
            self._connection.terminate()  # type: ignore[attr-defined]
            raise asyncpg.InternalClientError(
                "cannot switch to state 15; another operation (2) is in progress"
            )
        await commit(self)

    monkeypatch.setattr(asyncpg.transaction.Transaction, "commit", refused_once)
    stored = await journal.update(record.key, JournalState.CREATED, task_id="task-1")
    assert (stored.task_id, failures) == ("task-1", [])


# -- states forward only, foreign databases, creates in flight ------------------------


async def _objects(pg_url: str) -> list[tuple[str, str]]:
    """Every table, index and row of the journal's meta table in *pg_url*'s public schema."""
    db = await asyncpg.connect(pg_url)
    try:
        rows = await db.fetch(
            "SELECT 'table', tablename FROM pg_tables WHERE schemaname = 'public'"
            " UNION ALL SELECT 'index', indexname FROM pg_indexes WHERE schemaname = 'public'"
        )
        found = [(str(r[0]), str(r[1])) for r in rows]
        if ("table", "zimage_journal_meta") in found:
            meta = await db.fetch("SELECT key, value FROM zimage_journal_meta")
            found += [(str(r[0]), str(r[1])) for r in meta]
        return sorted(found)
    finally:
        await db.close()


async def test_the_postgres_store_moves_a_record_forward_only(
    journal: Journal, tmp_path: Path
) -> None:
    """PostgreSQL: saved stays saved (same fields) when completed or failed is written over it."""
    await _moves_forward_only(journal, "forward-postgres-0001", tmp_path)


async def test_a_journal_of_a_newer_format_is_refused_and_left_as_it_was(pg_url: str) -> None:
    """Refused before anything is created in it: no table or index is added."""
    async with await open_journal(pg_url):
        pass
    db = await asyncpg.connect(pg_url)
    try:
        await db.execute("UPDATE zimage_journal_meta SET value = 'zimage-journal/2'")
        await db.execute("DROP INDEX zimage_creates_task")
        await db.execute("DROP TABLE zimage_prices")
        await db.execute("ALTER TABLE zimage_creates RENAME COLUMN task_id TO remote_id")
    finally:
        await db.close()
    before = await _objects(pg_url)
    with pytest.raises(JournalError, match="format 'zimage-journal/2'"):
        await open_journal(pg_url)
    assert await _objects(pg_url) == before


async def test_a_database_of_another_application_is_refused_and_left_as_it_was(
    pg_url: str,
) -> None:
    """Tables of its own and no journal: not a zimage journal; nothing added; no password."""
    db = await asyncpg.connect(pg_url)
    try:
        await db.execute("CREATE TABLE customers (id integer PRIMARY KEY, name text)")
    finally:
        await db.close()
    before = await _objects(pg_url)
    with pytest.raises(JournalError) as refused:
        await open_journal(pg_url.replace("postgres@", f"postgres:{PW}@", 1))
    message = str(refused.value)
    assert "is not a zimage journal" in message and "customers" in message
    assert pg_url.rpartition("/")[2] in message and PW not in message
    assert await _objects(pg_url) == before


async def test_a_create_still_being_sent_is_not_begun_again(journal: Journal, pg_url: str) -> None:
    """A fresh submitting record is in flight: begun again only once the window is over."""
    record = JournalRecord.for_request(
        GenerationRequest(prompt="in flight"), key="in-flight-postgres-01", base_url=BASE
    )
    await journal.begin(record)
    with pytest.raises(JournalError, match="is being sent"):
        await journal.begin(record)
    db = await asyncpg.connect(pg_url)
    try:
        await db.execute(
            "UPDATE zimage_creates SET updated_at = updated_at - $1", IN_FLIGHT_WINDOW + 1
        )
    finally:
        await db.close()
    begun = await journal.begin(record)  # its sender died long ago: sent again
    with pytest.raises(JournalError, match="is being sent"):
        await journal.begin(record)  # and not twice
    assert begun.state.value == "submitting"
