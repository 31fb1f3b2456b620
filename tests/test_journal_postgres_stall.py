"""A worker stopped inside a PostgreSQL journal transaction does not stop the others.

A worker frozen (SIGSTOP, a debugger, a paused machine) in the middle of a journal
write holds its locks, the spend lock of a begin above all. The journal's connections
carry two server-side limits (docs/distributed.md): the server ends a session left idle
inside a transaction, releasing its locks, and a statement that waits too long for a
lock fails, as a :class:`JournalError` in plain words, before any create is sent.

The stopped worker is played by a session that takes the spend lock and then waits: a
bare asyncpg connection (a holder without the journal's limits, as another program's
session would be), or a journal whose begin is held inside its transaction. The limits
are made small here; every wait is bounded, so that a regression fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from zimage_async import (
    GenerationRequest,
    JournalError,
    Session,
    _journal_postgres,
    _journal_postgres_pool,
)
from zimage_async._journal import JournalState, open_journal
from zimage_async._journal_postgres_sql import SPEND_LOCK
from zimage_async.emulator import Emulator

from ._postgres import PostgresServer, journals, record
from .conftest import FAST_POLL, FAST_RETRY

asyncpg = pytest.importorskip("asyncpg")

#: The bound of every wait: far above the limits the tests set, far below a hang.
BOUND = 30.0
LOCK_SQL = "pg_advisory_xact_lock"


def _limits(monkeypatch: pytest.MonkeyPatch, *, idle: float, lock: float) -> None:
    """Make the journal's default limits (seconds) small for this test."""
    monkeypatch.setattr(_journal_postgres_pool, "IDLE_IN_TRANSACTION_LIMIT", idle, raising=False)
    monkeypatch.setattr(_journal_postgres_pool, "LOCK_WAIT_LIMIT", lock, raising=False)


@contextlib.asynccontextmanager
async def _stopped_holder(url: str) -> AsyncIterator[Any]:
    """A session that took the spend lock inside a transaction and went idle, for good."""
    db = await asyncpg.connect(url)
    try:
        await db.execute("BEGIN")
        await db.execute(f"SELECT {LOCK_SQL}($1)", SPEND_LOCK)
        yield db
    finally:
        db.terminate()


def _spend_lock_waits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the statements that take the spend lock, on every asyncpg connection."""
    taken: list[int] = []
    execute = asyncpg.connection.Connection.execute

    async def counting(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        if LOCK_SQL in query and args == (SPEND_LOCK,):
            taken.append(1)
        return await execute(self, query, *args, **kwargs)

    monkeypatch.setattr(asyncpg.connection.Connection, "execute", counting)
    return taken


def _stop_inside_begin(monkeypatch: pytest.MonkeyPatch) -> tuple[asyncio.Event, asyncio.Event]:
    """Hold the next begin inside its transaction (spend lock taken) until *go_on* is set.

    Returns (*inside*, *go_on*): *inside* is set once that begin is held. Later begins
    pass through.
    """
    inside, go_on = asyncio.Event(), asyncio.Event()
    prices = _journal_postgres._prices

    async def held(db: Any) -> Any:
        if not inside.is_set():
            inside.set()
            await go_on.wait()
        return await prices(db)

    monkeypatch.setattr(_journal_postgres, "_prices", held)
    return inside, go_on


async def _settings(journal: Any) -> tuple[int, int]:
    """The idle-in-transaction and lock limits (ms) of a connection of *journal*'s pool.

    Read after a ``RESET ALL``, which the pool runs on a connection given back to it.
    """
    for attempt in journal._attempts():
        async with attempt as db:
            await db.execute("RESET ALL")
            rows = await db.fetch(
                "SELECT name, setting FROM pg_settings WHERE name IN"
                " ('idle_in_transaction_session_timeout', 'lock_timeout')"
            )
    found = {str(name): int(setting) for name, setting in rows}
    return found["idle_in_transaction_session_timeout"], found["lock_timeout"]


async def test_a_create_behind_a_stopped_worker_fails_in_plain_words_and_is_not_sent(
    postgres: PostgresServer, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A begin waiting on a spend lock held for good fails after the lock limit, unsent.

    The lock is waited for once (not once per attempt), the error is a JournalError
    that says what happened, no create reaches the service and no record is written.
    """
    _limits(monkeypatch, idle=30.0, lock=1.0)
    url = postgres.create_database()
    async with (
        Session(
            api_key=emulator.api_key,
            base_url=emulator.base_url,
            journal=url,
            poll=FAST_POLL,
            retry=FAST_RETRY,
        ) as zs,
        _stopped_holder(url),
    ):
        waits = _spend_lock_waits(monkeypatch)  # the journal's, the holder's lock taken
        with pytest.raises(JournalError) as failed:
            await asyncio.wait_for(zs.submit("a cat"), BOUND)
    message = str(failed.value)
    assert "another worker" in message and "longer than 1 s" in message, message
    assert "stopped" in message and "was not sent" in message, message
    assert emulator.request_counts.get("create", 0) == 0
    assert waits == [1]
    async with await open_journal(url) as journal:
        assert await journal.records() == []


async def test_an_enqueue_behind_a_stopped_worker_fails_then_goes_through(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An enqueue (batch lock, then spend lock) fails in plain words; adds items once free."""
    _limits(monkeypatch, idle=30.0, lock=1.0)
    url = postgres.create_database()
    requests = [GenerationRequest(prompt="a lighthouse")]
    async with journals(url, 1) as (journal,):
        async with _stopped_holder(url):
            with pytest.raises(JournalError, match=r"longer than 1 s") as failed:
                await asyncio.wait_for(journal.enqueue("b1", requests), BOUND)
        assert "stopped" in str(failed.value)
        assert await journal.items("b1") == []
        assert await asyncio.wait_for(journal.enqueue("b1", requests), BOUND) == 1


async def test_a_worker_stopped_inside_a_begin_is_cut_off_and_the_others_go_on(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server ends the session of a worker stopped inside begin; another's begin goes on.

    The stopped worker, resumed, gets a JournalError saying its session was ended (not
    a driver error, not a retry behind the others' backs); its record was not written,
    and its next begin goes through on a new connection.
    """
    _limits(monkeypatch, idle=2.0, lock=BOUND)
    url = postgres.create_database()
    stopped_cat, live_cat = record("a stopped cat"), record("a live cat")
    async with journals(url, 2) as (stopped, other):
        inside, go_on = _stop_inside_begin(monkeypatch)
        holding = asyncio.ensure_future(stopped.begin(stopped_cat))
        try:
            await asyncio.wait_for(inside.wait(), BOUND)
            begun = await asyncio.wait_for(other.begin(live_cat), BOUND)
            assert begun.state is JournalState.SUBMITTING
            go_on.set()
            with pytest.raises(JournalError) as failed:
                await asyncio.wait_for(holding, BOUND)
        finally:
            go_on.set()
            holding.cancel()
            with contextlib.suppress(BaseException):
                await holding
        message = str(failed.value)
        assert "ended this worker's session" in message and "2 s" in message, message
        assert "stopped" in message and "was not sent" in message, message
        assert await other.get(stopped_cat.key) is None
        again = await asyncio.wait_for(stopped.begin(stopped_cat), BOUND)
        assert again.state is JournalState.SUBMITTING


@pytest.mark.parametrize("where", ["inside", "before its COMMIT"])
async def test_a_worker_whose_process_froze_in_a_begin_gets_a_journal_error(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """A begin whose whole process stood still (as under SIGSTOP) past the idle limit fails.

    The statement, or the COMMIT, it sends on going on reaches a session the server has
    ended: a JournalError saying so (not a driver error, nor a COMMIT that "may have been
    applied"), and nothing was written.
    """
    _limits(monkeypatch, idle=1.0, lock=BOUND)
    frozen: list[int] = []

    def freeze() -> None:
        if not frozen:
            frozen.append(1)
            time.sleep(3.0)  # the event loop too: nothing runs, as in a stopped process

    prices = _journal_postgres._prices
    commit = asyncpg.transaction.Transaction.commit

    async def held(db: Any) -> Any:
        freeze()
        return await prices(db)

    async def held_commit(self: Any) -> None:
        freeze()
        await commit(self)

    async with journals(postgres.create_database(), 1) as (journal,):
        if where == "inside":
            monkeypatch.setattr(_journal_postgres, "_prices", held)
        else:
            monkeypatch.setattr(asyncpg.transaction.Transaction, "commit", held_commit)
        with pytest.raises(JournalError, match="ended this worker's session") as failed:
            await asyncio.wait_for(journal.begin(record("a frozen cat")), BOUND)
        assert "longer than 1 s" in str(failed.value) and "was not sent" in str(failed.value)
        assert frozen == [1]
        assert await journal.get(record("a frozen cat").key) is None


async def test_the_limits_are_on_every_journal_connection_by_default(
    postgres: PostgresServer,
) -> None:
    """Without settings of the user's, a connection has the defaults, kept by RESET ALL."""
    from zimage_async._journal_postgres_sql import IDLE_IN_TRANSACTION_LIMIT, LOCK_WAIT_LIMIT

    assert (IDLE_IN_TRANSACTION_LIMIT, LOCK_WAIT_LIMIT) == (30.0, 60.0)
    async with journals(postgres.create_database(), 1) as (journal,):
        assert await _settings(journal) == (30_000, 60_000)


async def test_the_users_own_limits_are_kept_and_named(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A limit set in the URL or on the database is kept, and the error names its value."""
    _limits(monkeypatch, idle=30.0, lock=60.0)
    url = postgres.create_database()
    admin = await asyncpg.connect(url)
    try:
        name = await admin.fetchval("SELECT current_database()")
        await admin.execute(f"ALTER DATABASE \"{name}\" SET lock_timeout = '1500ms'")
    finally:
        await admin.close()
    async with journals(f"{url}?idle_in_transaction_session_timeout=7s", 1) as (journal,):
        assert await _settings(journal) == (7_000, 1_500)
        async with _stopped_holder(url):
            with pytest.raises(JournalError, match=r"longer than 1\.5 s"):
                await asyncio.wait_for(journal.begin(record("a cat")), BOUND)
