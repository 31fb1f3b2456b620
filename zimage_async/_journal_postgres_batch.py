"""The PostgreSQL journal's batch items: enqueue, claim with a lease, renew, release.

A base of :class:`._journal_postgres.PostgresJournal`. Claims pick free items with
``SELECT ... FOR UPDATE SKIP LOCKED`` and lease them in the same statement, so no item
is claimed twice; lease times are the server's clock, the same for every worker.
:meth:`enqueue` and :meth:`reopen` lock the batch (an advisory lock on its id), so
workers starting together add its items once; :meth:`enqueue` then takes the spend
lock too (the order: batch, then spend; begins take no batch lock), so that no begin
commits between its read of which items have a create and its edit of the others.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

import attrs

from ._idempotency import new_key
from ._journal_postgres_sql import CLAIM, ITEMS, NOW, SPEND_LOCK, driver_errors
from ._journal_records import JournalItem, JournalState
from ._journal_rows import (
    check_lease_seconds,
    enqueue_rows,
    item_from_row,
    record_from_row,
)
from ._models import GenerationRequest

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    _Connection = PoolConnectionProxy[Any]

__all__ = ["PostgresBatches"]

#: Still the worker's while nobody claimed it, its lease run out or not.
#: The first statement of a transaction that changes a batch's items: its lock.
BATCH_LOCK = "SELECT pg_advisory_xact_lock(hashtext($1))"
REKEY = (
    "UPDATE zimage_batch_items SET key = $1 WHERE batch_id = $2 AND idx = $3"
    " AND claimed_by = $4 AND NOT settled RETURNING idx"
)


class PostgresBatches:
    """The batch half of the PostgreSQL journal (see :class:`Journal` for each method)."""

    location: str
    _driver: ModuleType

    def _attempts(
        self, *first: Any
    ) -> Iterator[contextlib.AbstractAsyncContextManager[_Connection]]:
        raise NotImplementedError

    async def enqueue(self, batch_id: str, requests: Sequence[GenerationRequest]) -> int:
        """See :meth:`Journal.enqueue`."""
        errors = driver_errors(self._driver)
        for attempt in self._attempts(BATCH_LOCK, f"batch:{batch_id}"):
            async with attempt as db:
                try:
                    added = await _enqueue(db, self.location, batch_id, requests)
                except errors as exc:
                    # Raised without the frames below, which hold the items' requests
                    # (a callback URL's token): its words are the failure's.
                    raise exc.with_traceback(None) from None
        return added

    async def reopen(
        self,
        batch_id: str,
        states: Collection[JournalState],
        *,
        indexes: Collection[int] | None = None,
    ) -> int:
        """See :meth:`Journal.reopen`."""
        wanted = [s.value for s in states]
        only = None if indexes is None else sorted(indexes)
        for attempt in self._attempts(BATCH_LOCK, f"batch:{batch_id}"):
            async with attempt as db:
                found = await db.fetch(
                    "SELECT i.idx, c.state FROM zimage_batch_items i JOIN zimage_creates c"
                    " ON c.key = i.key WHERE i.batch_id = $1 AND i.settled AND c.state = ANY($2)"
                    " AND ($3::int[] IS NULL OR i.idx = ANY($3))",
                    batch_id,
                    wanted,
                    only,
                )
                for index, state in found:
                    fresh = JournalState(state) is JournalState.FAILED
                    await db.execute(
                        "UPDATE zimage_batch_items SET settled = false,"
                        " key = CASE WHEN $1 THEN $2 ELSE key END WHERE batch_id = $3 AND idx = $4",
                        fresh,
                        new_key(),
                        batch_id,
                        index,
                    )
        return len(found)

    async def claim(
        self,
        batch_id: str,
        worker_id: str,
        *,
        lease_seconds: float,
        limit: int,
        begun_only: bool = False,
    ) -> list[JournalItem]:
        """See :meth:`Journal.claim`."""
        lease = check_lease_seconds(lease_seconds)
        for attempt in self._attempts():
            async with attempt as db:
                now = float(await db.fetchval(NOW))
                claimed = await db.fetch(CLAIM, batch_id, now, limit, worker_id, lease, begun_only)
                # index -> the worker whose lease ran out (None: the item was free)
                held_by = {int(row[0]): row[1] for row in claimed}
                items = await _items(db, batch_id, list(held_by))
        return [attrs.evolve(item, taken_from=held_by[item.index]) for item in items]

    async def renew(self, batch_id: str, worker_id: str, *, lease_seconds: float) -> int:
        """See :meth:`Journal.renew`."""
        lease = check_lease_seconds(lease_seconds)
        for attempt in self._attempts():
            async with attempt as db:
                now = float(await db.fetchval(NOW))
                # A lease that ran out is revived too while the worker still holds it
                # (nobody claimed it since: a claim writes its own claimed_by).
                renewed = await db.fetch(
                    "UPDATE zimage_batch_items SET lease_until = $1 WHERE batch_id = $2"
                    " AND claimed_by = $3 AND NOT settled RETURNING idx",
                    now + lease,
                    batch_id,
                    worker_id,
                )
        return len(renewed)

    async def release(self, batch_id: str, worker_id: str, index: int, *, settled: bool) -> bool:
        """See :meth:`Journal.release`."""
        for attempt in self._attempts():
            async with attempt as db:
                released = await db.fetchval(
                    "UPDATE zimage_batch_items SET claimed_by = NULL, lease_until = NULL,"
                    " settled = $1 WHERE batch_id = $2 AND idx = $3 AND claimed_by = $4"
                    " RETURNING idx",
                    settled,
                    batch_id,
                    index,
                    worker_id,
                )
        return released is not None

    async def items(self, batch_id: str) -> list[JournalItem]:
        """See :meth:`Journal.items`."""
        for attempt in self._attempts():
            async with attempt as db:
                items = await _items(db, batch_id, None)
        return items

    async def rekey(self, batch_id: str, worker_id: str, index: int) -> str | None:
        """See :meth:`Journal.rekey`."""
        key = new_key()
        for attempt in self._attempts():
            async with attempt as db:
                changed = await db.fetchval(
                    REKEY,
                    key,
                    batch_id,
                    index,
                    worker_id,
                )
        return None if changed is None else key


async def _enqueue(
    db: _Connection, location: str, batch_id: str, requests: Sequence[GenerationRequest]
) -> int:
    """Add (or change) the items of batch *batch_id* on *db*; return how many were added."""
    # Begins take the spend lock: none commits between the read of which items have a
    # create and the edit of the others (the lock order: batch, then spend).
    await db.execute("SELECT pg_advisory_xact_lock($1)", SPEND_LOCK)
    stored = await db.fetch(
        "SELECT i.idx, i.fingerprint, c.state FROM zimage_batch_items i"
        " LEFT JOIN zimage_creates c ON c.key = i.key WHERE i.batch_id = $1",
        batch_id,
    )
    updates, inserts = enqueue_rows(location, batch_id, requests, (tuple(r) for r in stored))
    for update in updates:
        await db.execute(
            "UPDATE zimage_batch_items SET fingerprint = $1, request = $2, key = $3,"
            " settled = false WHERE batch_id = $4 AND idx = $5",
            *update,
        )
    await db.executemany(
        "INSERT INTO zimage_batch_items (batch_id, idx, fingerprint, request, key)"
        " VALUES ($1, $2, $3, $4, $5)",
        inserts,
    )
    return len(inserts)


async def _items(db: _Connection, batch_id: str, indexes: list[int] | None) -> list[JournalItem]:
    found = []
    for row in await db.fetch(ITEMS, batch_id, indexes):
        values = tuple(row)
        record = None if values[8] is None else record_from_row(values[8:])
        found.append(item_from_row(values[:8], record))
    return found
