"""A callback URL's token stays out of what the journal and the receiver report.

A callback URL's query (``?token=...``) is a secret of the receiver. It must show in no
error's text, repr, chained causes or contexts, nor in the locals of the frames an error
reporter (Sentry at its default settings) captures; and in no log line. Here: a create
the journal refuses, and a journal write that fails, in both stores (the request the
journal keeps holds the URL); a batch whose items cannot be added; a request aiohttp
cannot read, which its refusal quotes; a callback URL urllib cannot parse.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from zimage_async import (
    CallbackReceiver,
    GenerationRequest,
    InvalidRequestError,
    JournalError,
    Session,
)
from zimage_async._journal import Journal, JournalRecord, JournalState, open_journal
from zimage_async._secret import frameless_refusals, without_queries
from zimage_async.emulator import Emulator

from ._postgres import BASE, PostgresServer
from ._reports import CapturingTransport, rendered, report

TOKEN = "cb-token-7e31c9a05d2b"
HOOK = f"https://hooks.example/zimage?token={TOKEN}"
#: The words of the failure the triggers below raise, as a full disk would.
FULL = "could not extend file: No space left on device"
#: The bound of every wait, far above what each takes.
BOUND = 10.0


def _assert_hidden(error: BaseException, capture: CapturingTransport) -> None:
    """The token is in neither the error's text nor its report (frames' locals included)."""
    text = f"{error} {error!r} {rendered(error)}"
    envelope = report(capture, error)
    assert b'"vars"' in envelope  # the frames' locals were captured
    assert TOKEN not in text
    assert TOKEN.encode() not in envelope


def _record(prompt: str) -> JournalRecord:
    """A create's record for *prompt* whose request carries the callback URL with the token."""
    return JournalRecord.for_request(
        GenerationRequest(prompt=prompt, callback_url=HOOK),
        key=f"key-{prompt.replace(' ', '-')}-0123456789",
        base_url=BASE,
    )


def _requests(count: int, prompt: str = "a cat") -> list[GenerationRequest]:
    """*count* batch items, each with the callback URL holding the token."""
    return [GenerationRequest(prompt=f"{prompt} {i}", callback_url=HOOK) for i in range(count)]


# -- the journal's stores -----------------------------------------------------------------


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    """The URL of a new, empty database on the throwaway server (asyncpg needed)."""
    pytest.importorskip("asyncpg")
    return postgres.create_database()


async def _pg_fail(url: str, table: str, when: str) -> None:
    """Make every *when* (INSERT, UPDATE) of a row of *table* fail, as a full disk would."""
    asyncpg = pytest.importorskip("asyncpg")
    db = await asyncpg.connect(url)
    try:
        await db.execute(
            "CREATE OR REPLACE FUNCTION full_disk() RETURNS trigger AS $$"
            f" BEGIN RAISE EXCEPTION '{FULL}'; END $$ LANGUAGE plpgsql;"
            f" CREATE TRIGGER full_disk BEFORE {when} ON {table}"
            " FOR EACH ROW EXECUTE FUNCTION full_disk()"
        )
    finally:
        await db.close()


def _sqlite_fail(path: Path, table: str, when: str) -> None:
    """Make every *when* (INSERT, UPDATE) of a row of *table* fail, as a full disk would."""
    db = sqlite3.connect(path)
    try:
        db.execute(
            f"CREATE TRIGGER full_disk BEFORE {when} ON {table}"
            " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
        db.commit()
    finally:
        db.close()


@pytest.fixture
async def pg_journal(pg_url: str) -> AsyncIterator[Journal]:
    """A PostgreSQL journal on a new database; closed after the test."""
    journal = await open_journal(pg_url)
    try:
        yield journal
    finally:
        await journal.close()


@pytest.fixture
async def sqlite_journal(tmp_path: Path) -> AsyncIterator[Journal]:
    """An SQLite journal in the test's directory; closed after the test."""
    journal = await open_journal(tmp_path / "journal.sqlite")
    try:
        yield journal
    finally:
        await journal.close()


async def test_a_postgres_create_refused_by_the_journal_does_not_show_the_token(
    pg_journal: Journal, sentry: CapturingTransport
) -> None:
    """A create refused over the stored one (its task known): no frame holds the stored row."""
    record = _record("a fox")
    await pg_journal.begin(record)
    await pg_journal.update(record.key, JournalState.CREATED, task_id="task-1")
    with pytest.raises(JournalError, match="already made task task-1") as info:
        await pg_journal.begin(record)
    _assert_hidden(info.value, sentry)


async def test_a_postgres_move_refused_by_the_journal_does_not_show_the_token(
    pg_journal: Journal, sentry: CapturingTransport
) -> None:
    """An update refused over the stored create (another task id): no frame holds its row."""
    record = _record("a fox")
    await pg_journal.begin(record)
    await pg_journal.update(record.key, JournalState.CREATED, task_id="task-1")
    with pytest.raises(JournalError, match="already has task task-1") as info:
        await pg_journal.update(record.key, JournalState.CREATED, task_id="task-2")
    _assert_hidden(info.value, sentry)


async def test_a_failed_postgres_update_does_not_show_the_token(
    pg_url: str, pg_journal: Journal, sentry: CapturingTransport
) -> None:
    """An update the database fails (a full disk): no frame holds the stored create's row."""
    record = _record("a fox")
    await pg_journal.begin(record)
    await _pg_fail(pg_url, "zimage_creates", "UPDATE")
    with pytest.raises(JournalError, match="No space left on device") as info:
        await pg_journal.update(record.key, JournalState.CREATED, task_id="task-1")
    _assert_hidden(info.value, sentry)


async def test_a_session_resending_a_key_with_a_task_does_not_show_the_token(
    pg_url: str, sentry: CapturingTransport
) -> None:
    """A session's second submit with one key (a retried job) is refused without the token."""
    receiver = CallbackReceiver()
    async with (
        Emulator(task_duration=0.05, callback_mode="permissive") as emu,
        receiver.serve() as url,
        Session(
            api_key=emu.api_key,
            base_url=emu.base_url,
            callbacks=receiver,
            callback_url=f"{url}?token={TOKEN}",
            journal=pg_url,
        ) as zs,
    ):
        await zs.submit("a fox", idempotency_key="order-0123456789abcdef")
        with pytest.raises(JournalError, match="already made task") as info:
            await zs.submit("a fox", idempotency_key="order-0123456789abcdef")
    _assert_hidden(info.value, sentry)


@pytest.mark.parametrize("when", ["INSERT", "UPDATE"])
async def test_a_failed_postgres_enqueue_does_not_show_the_items_token(
    pg_url: str, pg_journal: Journal, sentry: CapturingTransport, when: str
) -> None:
    """Items the database fails to add (or to change) are in no frame, nor in any cause's."""
    if when == "UPDATE":  # items with no create yet: a changed list changes them
        assert await pg_journal.enqueue("b", _requests(2, "a dog")) == 2
    await _pg_fail(pg_url, "zimage_batch_items", when)
    with pytest.raises(JournalError) as info:
        await pg_journal.enqueue("b", _requests(2))
    assert str(info.value) == f"the journal {pg_journal.location} failed: {FULL}"
    _assert_hidden(info.value, sentry)


@pytest.mark.parametrize("when", ["INSERT", "UPDATE"])
async def test_a_failed_sqlite_enqueue_does_not_show_the_items_token(
    tmp_path: Path, sqlite_journal: Journal, sentry: CapturingTransport, when: str
) -> None:
    """Items SQLite fails to add (or to change) are in no frame, nor in any cause's."""
    if when == "UPDATE":
        assert await sqlite_journal.enqueue("b", _requests(2, "a dog")) == 2
    _sqlite_fail(tmp_path / "journal.sqlite", "zimage_batch_items", when)
    with pytest.raises(JournalError) as info:
        await sqlite_journal.enqueue("b", _requests(2))
    assert (
        str(info.value) == f"the journal {sqlite_journal.location} failed: database or disk is full"
    )
    _assert_hidden(info.value, sentry)


async def test_a_failed_sqlite_enqueue_changes_nothing_and_the_next_one_works(
    tmp_path: Path, sqlite_journal: Journal
) -> None:
    """After a failed enqueue the batch is as it was, and adding its items works once fixed."""
    _sqlite_fail(tmp_path / "journal.sqlite", "zimage_batch_items", "INSERT")
    with pytest.raises(JournalError):
        await sqlite_journal.enqueue("b", _requests(2))
    assert await sqlite_journal.items("b") == []
    db = sqlite3.connect(tmp_path / "journal.sqlite")
    try:
        db.execute("DROP TRIGGER full_disk")
        db.commit()
    finally:
        db.close()
    assert await sqlite_journal.enqueue("b", _requests(2)) == 2


# -- requests aiohttp cannot read -----------------------------------------------------------

#: Request heads aiohttp refuses while quoting the request line, query and all.
MALFORMED = {
    "bad char in query": "POST /hook?lang=fr-\u00e9&token={t} HTTP/1.1\r\n".encode(),
    "control char in target": b"POST /hook?token={t}\x01 HTTP/1.1\r\n",
    "bad version": b"POST /hook?token={t} HTTP/9.9\r\n",
    "space in target": b"POST /hook?token={t} x HTTP/1.1\r\n",
    "space in query": b"POST /hook?a=1 &token={t} HTTP/1.1\r\n",
    "bad method": b"PO{T /hook?token={t} HTTP/1.1\r\n",
    "bare LF": b"POST /hook?token={t} HTTP/1.1\n",
    "backslash in query": b"POST /hook?a=\\r\\n&token={t}\x01 HTTP/1.1\r\n",
}


@pytest.mark.parametrize("line", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_request_aiohttp_refuses_is_logged_without_its_query(
    caplog: pytest.LogCaptureFixture, line: bytes
) -> None:
    """A refusal by aiohttp quotes the request line: the receiver logs it, its query masked."""
    caplog.set_level(logging.DEBUG)
    receiver = CallbackReceiver()
    async with receiver.serve() as url:
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            head = line.replace(b"{t}", TOKEN.encode())
            eol = b"\n" if head.endswith(b"1\n") else b"\r\n"
            writer.write(head + b"Host: x" + eol + b"Content-Length: 2" + eol + eol + b"{}")
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(200), BOUND)
        finally:
            writer.close()
        for _ in range(int(BOUND / 0.01)):  # aiohttp logs after it answers
            if receiver.refused:
                break
            await asyncio.sleep(0.01)
    assert answer.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400"))
    assert receiver.refused == 1
    lines = [r.getMessage() for r in caplog.records]
    ours = [m for m in lines if m.startswith("refused a task callback: aiohttp could not read")]
    assert len(ours) == 1
    assert "?***" in ours[0]
    assert "/hook" in ours[0]  # what is left of the quote still says what was wrong
    assert not any(TOKEN in m for m in lines)


def test_the_version_aiohttp_refused_is_still_shown() -> None:
    """Masking the query keeps the rest of the request line: its version, say."""
    shown = without_queries(f"Invalid HTTP version: b'POST /hook?token={TOKEN} HTTP/9.9' ^")
    assert shown == "Invalid HTTP version: b'POST /hook?*** HTTP/9.9' ^"


# -- callback URLs urllib cannot parse ------------------------------------------------------

UNPARSABLE = f"https://[2001:db8::1/hook?token={TOKEN}"


@pytest.mark.parametrize("how", ["GenerationRequest", "Session"])
def test_an_unparsable_callback_url_leaves_no_context_with_the_token(
    sentry: CapturingTransport, how: str
) -> None:
    """A URL urllib refuses: the refusal chains no urllib error, whose frames hold the URL."""

    def refused() -> object:
        if how == "GenerationRequest":
            return GenerationRequest(prompt="a fox", callback_url=UNPARSABLE)
        receiver = CallbackReceiver()
        return Session(api_key="sk-test-0123456789", callbacks=receiver, callback_url=UNPARSABLE)

    with pytest.raises(InvalidRequestError) as info:
        refused()
    error = info.value
    assert error.field == "callback_url"
    assert "does not parse as a URL" in str(error)
    assert error.__context__ is None and error.__cause__ is None
    _assert_hidden(error, sentry)


def test_a_frameless_refusal_keeps_no_context() -> None:
    """A constructor's refusal raised while it handled another error keeps none of that error.

    That error's frames (the constructor's helpers) hold the arguments: the secrets.
    """

    def fail(secret: str) -> None:
        raise ValueError("no")

    class Taking:
        @frameless_refusals
        def __init__(self, secret: str) -> None:
            try:
                fail(secret)
            except ValueError:
                raise InvalidRequestError("secret", "a good one", "it is not") from None

    with pytest.raises(InvalidRequestError) as info:
        Taking(TOKEN)
    assert info.value.__context__ is None and info.value.__cause__ is None
    assert TOKEN not in rendered(info.value)
