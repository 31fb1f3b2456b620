"""A journal row that cannot be read is reported without the request it holds.

A create's row holds its request body, whose callback URL may carry a token in its
query (``?token=...``). A row changed by hand (a ``state`` of ``'bogus'``, ``paths``
that are not JSON) raises :class:`JournalError` naming the create (its key) and the
column, and saying it was likely changed by hand; the token is in neither its text, nor
the text of any exception chained to it (cause or context), nor the locals of any frame
of any of their tracebacks, which error reporters (Sentry at its default settings) send.
Both stores: SQLite files and the throwaway PostgreSQL server.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from zimage_async import GenerationRequest, JournalError
from zimage_async._journal import Journal, JournalRecord, open_journal

from ._postgres import BASE, PostgresServer
from ._reports import CapturingTransport, rendered, report

TOKEN = "cb-token-5f08a2d7c4e1"
HOOK = f"https://hooks.example/zimage?token={TOKEN}"
KEY = "key-a-fox-0123456789"
#: The most exceptions a chain is followed through (a bound: a chain may loop).
CHAIN_BOUND = 100

#: Hand edits of a create's row: the SQL, and the column the error must name.
CREATE_EDITS = {
    "state": ("UPDATE zimage_creates SET state = 'bogus'", "state"),
    "paths-not-json": ("UPDATE zimage_creates SET paths = 'nope'", "paths"),
    "paths-of-numbers": ("UPDATE zimage_creates SET paths = '[1]'", "paths"),
    "item-index": ("UPDATE zimage_creates SET item_index = -5", "item_index"),
}
#: The same in SQLite, which also takes text in a REAL column.
SQLITE_CREATE_EDITS = {
    **CREATE_EDITS,
    "created-at": ("UPDATE zimage_creates SET created_at = 'yesterday'", "created_at"),
}


def exposed(error: BaseException) -> list[str]:
    """Every text an error reporter may take from *error*.

    The text and repr of *error* and of every exception chained to it (``__cause__``
    and ``__context__``, suppressed or not), and the repr of every local of every frame
    of every one of their tracebacks.
    """
    texts: list[str] = []
    pending: list[BaseException] = [error]
    seen: set[int] = set()
    while pending and len(seen) < CHAIN_BOUND:
        exc = pending.pop()
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        texts += [str(exc), repr(exc)]
        tb = exc.__traceback__
        while tb is not None:
            texts += [f"{name}={value!r}" for name, value in tb.tb_frame.f_locals.items()]
            tb = tb.tb_next
        pending += [e for e in (exc.__cause__, exc.__context__) if e is not None]
    return texts


def assert_hidden(error: BaseException, capture: CapturingTransport) -> None:
    """The token is in nothing *error* exposes: texts, chain, frames' locals, Sentry's report."""
    shown = [text for text in exposed(error) if TOKEN in text]
    assert shown == [], shown[:1]
    assert TOKEN not in rendered(error)
    envelope = report(capture, error)
    assert b'"vars"' in envelope  # the frames' locals were captured
    assert TOKEN.encode() not in envelope


def assert_names_the_row(error: BaseException, column: str) -> None:
    """*error* names the create (its key) and the column, and suggests a hand edit."""
    text = str(error)
    assert f"key {KEY!r}" in text
    assert f"its {column} column" in text
    assert "was it changed by hand?" in text


def _record() -> JournalRecord:
    """A create whose request carries the callback URL with the token."""
    return JournalRecord.for_request(
        GenerationRequest(prompt="a fox", callback_url=HOOK), key=KEY, base_url=BASE
    )


def _reads(journal: Journal) -> dict[str, Callable[[], Awaitable[object]]]:
    """The public reads of a create's row."""
    return {"get": lambda: journal.get(KEY), "records": journal.records}


# -- SQLite ---------------------------------------------------------------------------


@pytest.fixture
async def sqlite_journal(tmp_path: Path) -> AsyncIterator[Journal]:
    """An SQLite journal holding one create with the token; closed after the test."""
    journal = await open_journal(tmp_path / "journal.sqlite")
    try:
        await journal.begin(_record())
        yield journal
    finally:
        await journal.close()


def _sqlite_edit(path: Path, sql: str) -> None:
    db = sqlite3.connect(path)
    try:
        db.execute(sql)
        db.commit()
    finally:
        db.close()


@pytest.mark.parametrize("read", ["get", "records"])
@pytest.mark.parametrize("edit", SQLITE_CREATE_EDITS.values(), ids=SQLITE_CREATE_EDITS.keys())
async def test_an_unreadable_sqlite_create_is_told_without_its_token(
    tmp_path: Path,
    sqlite_journal: Journal,
    sentry: CapturingTransport,
    edit: tuple[str, str],
    read: str,
) -> None:
    """A create's row changed by hand: its key and column named, its request nowhere."""
    sql, column = edit
    _sqlite_edit(tmp_path / "journal.sqlite", sql)
    with pytest.raises(JournalError, match="cannot be read") as info:
        await _reads(sqlite_journal)[read]()
    assert_hidden(info.value, sentry)
    assert_names_the_row(info.value, column)


async def test_an_unreadable_sqlite_batch_item_is_told_without_its_token(
    tmp_path: Path, sqlite_journal: Journal, sentry: CapturingTransport
) -> None:
    """A batch item's row changed by hand: its batch and column named, its request nowhere."""
    await sqlite_journal.enqueue("b", [GenerationRequest(prompt="a cat", callback_url=HOOK)])
    _sqlite_edit(tmp_path / "journal.sqlite", "UPDATE zimage_batch_items SET idx = -5")
    with pytest.raises(JournalError, match="cannot be read") as info:
        await sqlite_journal.items("b")
    assert_hidden(info.value, sentry)
    assert "an item of batch 'b': its idx column is -5, not a number >= 0" in str(info.value)


# -- PostgreSQL -----------------------------------------------------------------------


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    """The URL of a new, empty database on the throwaway server (asyncpg needed)."""
    pytest.importorskip("asyncpg")
    return postgres.create_database()


@pytest.fixture
async def pg_journal(pg_url: str) -> AsyncIterator[Journal]:
    """A PostgreSQL journal holding one create with the token; closed after the test."""
    journal = await open_journal(pg_url)
    try:
        await journal.begin(_record())
        yield journal
    finally:
        await journal.close()


async def _pg_edit(url: str, sql: str) -> None:
    asyncpg = pytest.importorskip("asyncpg")
    db = await asyncpg.connect(url)
    try:
        await db.execute(sql)
    finally:
        await db.close()


@pytest.mark.parametrize("read", ["get", "records"])
@pytest.mark.parametrize("edit", CREATE_EDITS.values(), ids=CREATE_EDITS.keys())
async def test_an_unreadable_postgres_create_is_told_without_its_token(
    pg_url: str,
    pg_journal: Journal,
    sentry: CapturingTransport,
    edit: tuple[str, str],
    read: str,
) -> None:
    """A create's row changed by hand: its key and column named, its request nowhere."""
    sql, column = edit
    await _pg_edit(pg_url, sql)
    with pytest.raises(JournalError, match="cannot be read") as info:
        await _reads(pg_journal)[read]()
    assert_hidden(info.value, sentry)
    assert_names_the_row(info.value, column)


async def test_an_unreadable_postgres_batch_item_is_told_without_its_token(
    pg_url: str, pg_journal: Journal, sentry: CapturingTransport
) -> None:
    """A batch item's row changed by hand: its batch and column named, its request nowhere."""
    await pg_journal.enqueue("b", [GenerationRequest(prompt="a cat", callback_url=HOOK)])
    await _pg_edit(pg_url, "UPDATE zimage_batch_items SET idx = -5")
    with pytest.raises(JournalError, match="cannot be read") as info:
        await pg_journal.items("b")
    assert_hidden(info.value, sentry)
    assert "an item of batch 'b': its idx column is -5, not a number >= 0" in str(info.value)
