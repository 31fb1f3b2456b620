"""The PostgreSQL journal's races between workers, made to happen at the worst moment.

Each test runs one transaction of one worker's journal up to a chosen statement, has
another worker's journal commit there (the interleaving READ COMMITTED allows), and
checks the promise of docs/distributed.md that this interleaving could break.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import asyncpg
import pytest

from zimage_async import GenerationRequest, JournalError, SpendLimitError
from zimage_async._journal import (
    Journal,
    JournalRecord,
    JournalState,
    SpendLimit,
)
from zimage_async._journal_postgres import PostgresJournal

from ._postgres import PostgresServer, item_record, journals, record

#: The price the first create's answer brings; two of them do not fit under LIMIT.
PRICE = 0.026
LIMIT = 0.03

_Hook = Callable[[], Awaitable[None]]


@pytest.fixture
async def pair(postgres: PostgresServer) -> AsyncIterator[tuple[str, list[Journal]]]:
    """A new database's URL, and two journals on it (two workers, each its own pool)."""
    url = postgres.create_database()
    async with journals(url, 2) as opened:
        yield url, opened


class _Interposed:
    """A connection that runs *hook* once, right after its first fetch matching *marker*."""

    def __init__(self, db: Any, marker: str, hook: list[_Hook]) -> None:
        self._db = db
        self._marker = marker
        self._hook = hook

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    async def fetch(self, query: str, *args: Any) -> Any:
        rows = await self._db.fetch(query, *args)
        if self._marker in query and self._hook:
            await self._hook.pop()()
        return rows


def _interpose(monkeypatch: pytest.MonkeyPatch, journal: Journal, marker: str, hook: _Hook) -> None:
    """Have *journal* run *hook* inside its transaction, after its first read of *marker*."""
    assert isinstance(journal, PostgresJournal)
    original = journal._attempts
    pending = [hook]

    @contextlib.asynccontextmanager
    async def wrapped(attempt: contextlib.AbstractAsyncContextManager[Any]) -> AsyncIterator[Any]:
        async with attempt as db:
            yield _Interposed(db, marker, pending)

    def attempts(*first: Any) -> Iterator[contextlib.AbstractAsyncContextManager[Any]]:
        for attempt in original(*first):
            yield wrapped(attempt)

    monkeypatch.setattr(journal, "_attempts", attempts)


async def _settled(task: asyncio.Future[Any], url: str) -> None:
    """Wait until *task* is done or waits for an advisory lock (bounded: 10 s)."""
    watcher = await asyncpg.connect(url)
    try:
        for _ in range(500):
            if task.done() or await watcher.fetchval(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted)"
            ):
                return
            await asyncio.sleep(0.02)
        raise AssertionError("the other worker neither finished nor waited for a lock")
    finally:
        await watcher.close()


async def test_price_recorded_mid_begin_is_checked_not_counted_as_zero(
    pair: tuple[str, list[Journal]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first price committed during a begin's check still counts: no create at 0 over a limit.

    docs/distributed.md: only one create of an unpriced model and size is sent at a time
    under a limit; the others wait for its answer's price, then are checked at that price.
    Here the first create's answer (its price) commits right after the second begin read
    the known prices (none yet): the second create must be refused at that price.
    """
    _, (first, second) = pair
    limits = [SpendLimit(max_credits=LIMIT)]
    sent = await first.begin(record("first"), limits=limits)
    assert sent.expected_cost is None

    async def answer() -> None:
        await first.update(sent.key, JournalState.CREATED, task_id="t-1", credits_reserved=PRICE)

    _interpose(monkeypatch, second, "FROM zimage_prices", answer)
    with pytest.raises(SpendLimitError):
        await second.begin(record("second"), limits=limits)
    assert await second.get(record("second").key) is None
    assert (await second.spent()).credits == pytest.approx(PRICE)


async def test_edit_landing_after_an_old_list_begin_is_refused(
    pair: tuple[str, list[Journal]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An edited item and an old-list worker's begin of it: only one request can be sent.

    docs/distributed.md: adding items is refused if an item whose create was already
    sent has a different request now, and an edit between a claim and a send is refused
    the same way. Here the old-list worker's begin comes right after the edit read the
    items (no create yet) and before it wrote the new request: that begin must be
    refused (the item's key changed), so the old request is never sent.
    """
    url, (old_worker, editor) = pair
    await old_worker.enqueue("b", [GenerationRequest(prompt="p0 old")])
    (item,) = await old_worker.claim("b", "w-old", lease_seconds=3600, limit=1)
    begins: list[asyncio.Future[JournalRecord]] = []

    async def old_list_begin() -> None:
        begun = asyncio.ensure_future(old_worker.begin(item_record(item), worker_id="w-old"))
        begins.append(begun)
        await _settled(begun, url)

    _interpose(monkeypatch, editor, "FROM zimage_batch_items i", old_list_begin)
    await editor.enqueue("b", [GenerationRequest(prompt="p0 NEW")])
    (begun,) = begins
    with pytest.raises(JournalError, match="is sent with key"):
        await asyncio.wait_for(begun, 10)
    assert await old_worker.get(item.key) is None
    (edited,) = await old_worker.items("b")
    assert edited.request().prompt == "p0 NEW"
    assert edited.key != item.key
