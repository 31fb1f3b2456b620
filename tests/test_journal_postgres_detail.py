"""A PostgreSQL journal's failure is told without the row it failed on.

asyncpg's ``str()`` of a server error appends the server's DETAIL, which for a
constraint violation quotes the row (``Failing row contains (...)``, ``Key
(request)=(...) already exists``); its errors for a value it cannot encode quote the
value; and the frames of its calls hold the statement's arguments. A create's row holds
its request, whose callback URL may carry a token. The :class:`JournalError` keeps the
server's message and SQLSTATE, and quotes no value; it chains none of the driver's
exceptions, and keeps none of their frames. Against the throwaway PostgreSQL server.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from zimage_async import GenerationRequest, JournalError
from zimage_async._journal import Journal, JournalRecord, JournalState

from ._postgres import BASE
from ._reports import CapturingTransport
from .test_journal_row_secrets import HOOK, TOKEN, assert_hidden, exposed

asyncpg = pytest.importorskip("asyncpg")

#: The words of the failure the trigger below raises, as a full disk would.
FULL = "could not extend file: No space left on device"


@pytest.fixture
def journal_target(pg_url: str) -> str:
    """Only a PostgreSQL journal (the shared ``journal`` fixture opens it)."""
    return pg_url


async def _admin(pg_url: str, sql: str) -> None:
    """Run *sql* on the journal's database as its administrator would, by hand."""
    db = await asyncpg.connect(pg_url)
    try:
        await db.execute(sql)
    finally:
        await db.close()


def _record(key: str = "key-a-fox-0123456789") -> JournalRecord:
    """A create whose request carries the callback URL with the token."""
    return JournalRecord.for_request(
        GenerationRequest(prompt="a fox", callback_url=HOOK), key=key, base_url=BASE
    )


async def _created(journal: Journal) -> None:
    """Begin the create, then record its task: the update a CHECK constraint refuses."""
    record = _record()
    await journal.begin(record)
    await journal.update(record.key, JournalState.CREATED, task_id="task-1")


async def _twice(journal: Journal) -> None:
    """Begin two creates of one request: the second one a UNIQUE index refuses."""
    await journal.begin(_record())
    await journal.begin(_record("key-a-fox-again-0123456789"))


#: Constraints added by hand, each with the writes it refuses and the words of the refusal.
CONSTRAINTS: dict[str, tuple[str, Any, str]] = {
    "check": (
        "ALTER TABLE zimage_creates ADD CONSTRAINT no_created CHECK (state <> 'created')",
        _created,
        'new row for relation "zimage_creates" violates check constraint "no_created"'
        " (SQLSTATE 23514)",
    ),
    "unique": (
        "CREATE UNIQUE INDEX one_request ON zimage_creates (request)",
        _twice,
        'duplicate key value violates unique constraint "one_request" (SQLSTATE 23505)',
    ),
}


def _unencodable() -> JournalRecord:
    """A create whose request holds a lone surrogate, after a short callback URL."""
    body = {"callback_url": f"https://h/?t={TOKEN}", "prompt": "a \udc80 fox"}
    return JournalRecord(
        key="key-a-fox-0123456789",
        fingerprint="0" * 64,
        request_json=json.dumps(body, sort_keys=True, ensure_ascii=False),
        model="z-image-turbo",
        size=None,
        state=JournalState.SUBMITTING,
        base_url=BASE,
    )


@pytest.mark.parametrize("constraint", CONSTRAINTS.values(), ids=CONSTRAINTS.keys())
async def test_a_constraint_violation_is_told_without_the_row(
    pg_url: str,
    journal: Journal,
    sentry: CapturingTransport,
    constraint: tuple[str, Any, str],
) -> None:
    """The server's message and SQLSTATE are kept; its DETAIL, quoting the row, is not."""
    sql, writes, words = constraint
    await _admin(pg_url, sql)
    with pytest.raises(JournalError) as info:
        await writes(journal)
    assert_hidden(info.value, sentry)
    assert not [text for text in exposed(info.value) if "?token=" in text]  # nor a part of it
    assert str(info.value) == f"the journal {journal.location} failed: {words}"


async def test_a_failed_postgres_begin_keeps_no_frame_with_the_request(
    pg_url: str, journal: Journal, sentry: CapturingTransport
) -> None:
    """A begin the database fails: asyncpg's frames (its arguments: the request) are not kept."""
    await _admin(
        pg_url,
        "CREATE FUNCTION full_disk() RETURNS trigger AS $$"
        f" BEGIN RAISE EXCEPTION '{FULL}'; END $$ LANGUAGE plpgsql;"
        " CREATE TRIGGER full_disk BEFORE INSERT ON zimage_creates"
        " FOR EACH ROW EXECUTE FUNCTION full_disk()",
    )
    with pytest.raises(JournalError) as info:
        await journal.begin(_record())
    assert_hidden(info.value, sentry)
    assert str(info.value) == f"the journal {journal.location} failed: {FULL}"
    assert info.value.__cause__ is None and info.value.__context__ is None


async def test_a_value_the_driver_cannot_encode_is_not_quoted(
    journal: Journal, sentry: CapturingTransport
) -> None:
    """A request asyncpg cannot encode (a lone surrogate): its argument named, never quoted.

    asyncpg quotes the first 40 characters of the value, and chains the codec's error,
    whose repr holds all of it: the callback URL is put first, and short.
    """
    with pytest.raises(JournalError) as info:
        await journal.begin(_unencodable())
    assert_hidden(info.value, sentry)
    assert str(info.value).startswith(
        f"the journal {journal.location} failed: invalid input for query argument $3 ("
    )
    assert "surrogates not allowed" in str(info.value)
    assert not [text for text in exposed(info.value) if "https://h/" in text]
