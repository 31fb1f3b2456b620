"""The PostgreSQL journal's fixes: states forward only, foreign databases, creates in flight.

A record's state moves forward only; a database of another format or application is
refused untouched; a create another session is still sending is not begun again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from zimage_async import GenerationRequest, JournalError
from zimage_async._journal import Journal, JournalRecord, open_journal
from zimage_async._journal_moves import IN_FLIGHT_WINDOW

from ._postgres import PostgresServer, throwaway_server
from .test_journal_forward import _moves_forward_only

asyncpg = pytest.importorskip("asyncpg")

BASE = "https://api.example"
PW = "S3cret-pw-of-the-journal"


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server on 127.0.0.1 for this module, removed afterwards."""
    with throwaway_server() as server:
        yield server


@pytest.fixture
def url(postgres: PostgresServer) -> str:
    """The URL of a new, empty database on the throwaway server."""
    return postgres.create_database()


@pytest.fixture
async def journal(url: str) -> AsyncIterator[Journal]:
    opened = await open_journal(url)
    try:
        yield opened
    finally:
        await opened.close()


async def _objects(url: str) -> list[tuple[str, str]]:
    """Every table, index and row of the journal's meta table in *url*'s public schema."""
    db = await asyncpg.connect(url)
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


async def test_a_journal_of_a_newer_format_is_refused_and_left_as_it_was(url: str) -> None:
    """Refused before anything is created in it: no table or index is added."""
    async with await open_journal(url):
        pass
    db = await asyncpg.connect(url)
    try:
        await db.execute("UPDATE zimage_journal_meta SET value = 'zimage-journal/2'")
        await db.execute("DROP INDEX zimage_creates_task")
        await db.execute("DROP TABLE zimage_prices")
        await db.execute("ALTER TABLE zimage_creates RENAME COLUMN task_id TO remote_id")
    finally:
        await db.close()
    before = await _objects(url)
    with pytest.raises(JournalError, match="format 'zimage-journal/2'"):
        await open_journal(url)
    assert await _objects(url) == before


async def test_a_database_of_another_application_is_refused_and_left_as_it_was(
    url: str,
) -> None:
    """Tables of its own and no journal: not a zimage journal; nothing added; no password."""
    db = await asyncpg.connect(url)
    try:
        await db.execute("CREATE TABLE customers (id integer PRIMARY KEY, name text)")
    finally:
        await db.close()
    before = await _objects(url)
    with pytest.raises(JournalError) as refused:
        await open_journal(url.replace("postgres@", f"postgres:{PW}@", 1))
    message = str(refused.value)
    assert "is not a zimage journal" in message and "customers" in message
    assert url.rpartition("/")[2] in message and PW not in message
    assert await _objects(url) == before


async def test_a_create_still_being_sent_is_not_begun_again(journal: Journal, url: str) -> None:
    """A fresh submitting record is in flight: begun again only once the window is over."""
    record = JournalRecord.for_request(
        GenerationRequest(prompt="in flight"), key="in-flight-postgres-01", base_url=BASE
    )
    await journal.begin(record)
    with pytest.raises(JournalError, match="is being sent"):
        await journal.begin(record)
    db = await asyncpg.connect(url)
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
