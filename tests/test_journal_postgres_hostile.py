"""The PostgreSQL journal under hostile conditions: odd text, dropped connections, clocks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from zimage_async import GenerationRequest, JournalError
from zimage_async._journal import Journal, JournalRecord, JournalState, open_journal

from ._postgres import PostgresServer, throwaway_server

BASE = "https://api.example"
BAD_TEXT = "nul \x00, lone \udc80 and \ud800 surrogates"
STORED_TEXT = "nul \ufffd, lone \ufffd and \ufffd surrogates"


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
    """asyncpg's InternalClientError (a connection terminated during COMMIT) is a JournalError."""
    import asyncpg
    import asyncpg.connection

    async def broken(*args: object, **kwargs: object) -> object:
        raise asyncpg.InternalClientError("cannot switch to state 15")

    monkeypatch.setattr(asyncpg.connection.Connection, "fetchrow", broken)
    with pytest.raises(JournalError, match="cannot switch to state 15"):
        await journal.get("key-a-cat-0123456789")
