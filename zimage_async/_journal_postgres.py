"""The PostgreSQL journal: one database shared by any number of workers.

Opened for ``postgresql://`` (or ``postgres://``) URLs through asyncpg, which is
imported only then (the ``postgres`` extra installs it). A small connection pool
(at most :data:`POOL_SIZE` connections) serves one process.

Concurrency is the database's job:

- :meth:`PostgresJournal.begin` takes a transaction-scoped advisory lock
  (:data:`SPEND_LOCK`) before it sums what is reserved and inserts the new record, so
  begins from every worker are serialised and a spend limit holds for all of them
  together.
- :meth:`PostgresJournal.claim` picks free items with ``SELECT ... FOR UPDATE SKIP
  LOCKED`` and leases them in the same statement, so no item is claimed twice; lease
  times are the server's clock (``clock_timestamp()``), the same for every worker.
- :meth:`PostgresJournal.enqueue` and :meth:`PostgresJournal.reopen` lock the batch
  (an advisory lock on its id), so workers starting together add its items once.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Collection, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ._exceptions import JournalError
from ._idempotency import new_key
from ._journal_records import (
    JournalItem,
    JournalRecord,
    JournalState,
    begin_refusal,
    price_key,
)
from ._journal_rows import (
    RECORD_COLUMNS,
    changed_items,
    check_lease_seconds,
    item_from_row,
    lease_refusal,
    record_from_row,
    refuse_changed,
)
from ._journal_spend import (
    Spend,
    SpendLimit,
    check_spend,
    summarize_spend,
)
from ._journal_store import (
    Journal,
)
from ._manifest import fingerprint
from ._models import GenerationRequest

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

    _Connection = PoolConnectionProxy[Any]

from ._journal_postgres_sql import (
    CLAIM,
    FORMAT,
    GET,
    ITEMS,
    NOW,
    POOL_SIZE,
    SCHEMA,
    SCHEMA_LOCK,
    SPEND,
    SPEND_LOCK,
    UPDATE,
    UPSERT,
    load_asyncpg,
    without_password,
)

__all__ = ["PostgresJournal"]


class PostgresJournal(Journal):
    """The journal in a PostgreSQL database; open it with ``open_journal(url)``."""

    def __init__(self, location: str, pool: asyncpg.Pool[Any], driver: ModuleType) -> None:
        self.location = location
        self._pool = pool
        self._driver = driver
        self._closed = False

    def __repr__(self) -> str:
        return f"<PostgresJournal {self.location}>"

    @classmethod
    async def open(cls, url: str) -> PostgresJournal:
        """Connect to the database at *url* and create the journal's tables if needed."""
        driver = load_asyncpg()
        location = without_password(url)
        try:
            pool = await driver.create_pool(url, min_size=1, max_size=POOL_SIZE)
        except (OSError, driver.PostgresError, driver.InterfaceError) as exc:
            raise JournalError(f"cannot open the journal {location}: {exc}") from exc
        journal = cls(location, pool, driver)
        try:
            await journal._set_up()
        except BaseException:
            await journal.close()
            raise
        return journal

    async def _set_up(self) -> None:
        async with self._transaction() as db:
            await db.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
            await db.execute(SCHEMA)
            await db.execute(
                "INSERT INTO zimage_journal_meta VALUES ('format', $1) ON CONFLICT DO NOTHING",
                FORMAT,
            )
            found = await db.fetchval("SELECT value FROM zimage_journal_meta WHERE key = 'format'")
        if found != FORMAT:
            raise JournalError(
                f"{self.location} holds a zimage journal of format {found!r}, which this "
                f"version does not read (it reads {FORMAT!r}); upgrade zimage-async"
            )

    async def close(self) -> None:
        """Close the connection pool (every change is already committed). Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._pool.close()

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[_Connection]:
        """One connection in one transaction; the driver's errors become JournalError."""
        if self._closed:
            raise JournalError(f"the journal {self.location} is closed")
        try:
            async with self._pool.acquire() as db, db.transaction():
                yield db
        except (OSError, self._driver.PostgresError, self._driver.InterfaceError) as exc:
            raise JournalError(f"the journal {self.location} failed: {exc}") from exc

    # -- creates -------------------------------------------------------------------------

    async def begin(
        self,
        record: JournalRecord,
        *,
        limits: Sequence[SpendLimit] = (),
        worker_id: str | None = None,
    ) -> JournalRecord:
        """See :meth:`Journal.begin`."""
        async with self._transaction() as db:
            await db.execute("SELECT pg_advisory_xact_lock($1)", SPEND_LOCK)
            now = float(await db.fetchval(NOW))
            row = await db.fetchrow(GET + " FOR UPDATE", record.key)
            existing = None if row is None else record_from_row(tuple(row))
            refusal = begin_refusal(existing, record)
            if refusal is not None:
                raise JournalError(refusal)
            if worker_id is not None and record.batch_id is not None:
                lease = await db.fetchrow(
                    "SELECT claimed_by, lease_until, key FROM zimage_batch_items"
                    " WHERE batch_id = $1 AND idx = $2 FOR UPDATE",
                    record.batch_id,
                    record.item_index,
                )
                holder, lease_until, item_key = lease or (None, None, None)
                refused = lease_refusal(record, worker_id, holder, lease_until, item_key, now)
                if refused is not None:
                    raise refused
            prices = await _prices(db)
            expected = record.expected_cost
            if expected is None:
                expected = prices.get(price_key(record.model, record.size))
            for limit in limits:
                reserved = await _spend(db, prices, batch_id=limit.batch_id, excluding=record.key)
                error = check_spend(limit, reserved=reserved.credits, expected=expected)
                if error is not None:
                    raise error
            await db.execute(
                UPSERT,
                record.key,
                record.fingerprint,
                record.request_json,
                record.model,
                record.size or "",
                JournalState.SUBMITTING.value,
                record.base_url,
                expected,
                record.batch_id,
                record.item_index,
                now,
            )
            stored = await db.fetchrow(GET, record.key)
        assert stored is not None
        return record_from_row(tuple(stored))

    async def update(
        self,
        key: str,
        state: JournalState,
        *,
        task_id: str | None = None,
        credits_reserved: float | None = None,
        completed_at: float | None = None,
        paths: Sequence[Path] | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> JournalRecord:
        """See :meth:`Journal.update`."""
        async with self._transaction() as db:
            row = await db.fetchrow(
                UPDATE,
                state.value,
                task_id,
                None if credits_reserved is None else float(credits_reserved),
                completed_at,
                None if paths is None else json.dumps([str(p) for p in paths]),
                error_code,
                error_message,
                key,
            )
            if row is None:
                raise JournalError(f"the journal {self.location} has no create with key {key!r}")
            stored = record_from_row(tuple(row))
            if credits_reserved is not None:
                await db.execute(
                    "INSERT INTO zimage_prices VALUES ($1, $2, $3, $4) ON CONFLICT (model, size)"
                    " DO UPDATE SET credits = EXCLUDED.credits, seen_at = EXCLUDED.seen_at",
                    stored.model,
                    stored.size or "",
                    float(credits_reserved),
                    stored.updated_at,
                )
        return stored

    async def get(self, key: str) -> JournalRecord | None:
        """See :meth:`Journal.get`."""
        async with self._transaction() as db:
            row = await db.fetchrow(GET, key)
        return None if row is None else record_from_row(tuple(row))

    async def records(
        self,
        *,
        batch_id: str | None = None,
        states: Collection[JournalState] | None = None,
    ) -> list[JournalRecord]:
        """See :meth:`Journal.records`."""
        async with self._transaction() as db:
            rows = await db.fetch(
                f"SELECT {RECORD_COLUMNS} FROM zimage_creates"  # noqa: S608 (constants)
                " WHERE ($1::text IS NULL OR batch_id = $1)"
                " AND ($2::text[] IS NULL OR state = ANY($2)) ORDER BY created_at, key",
                batch_id,
                None if states is None else [s.value for s in states],
            )
        return [record_from_row(tuple(row)) for row in rows]

    async def spent(self, *, batch_id: str | None = None) -> Spend:
        """See :meth:`Journal.spent`."""
        async with self._transaction() as db:
            return await _spend(db, await _prices(db), batch_id=batch_id)

    async def last_price(self, model: str, size: str | None) -> float | None:
        """See :meth:`Journal.last_price`."""
        async with self._transaction() as db:
            value = await db.fetchval(
                "SELECT credits FROM zimage_prices WHERE model = $1 AND size = $2",
                *price_key(model, size),
            )
        return None if value is None else float(value)

    # -- batches -------------------------------------------------------------------------

    async def enqueue(self, batch_id: str, requests: Sequence[GenerationRequest]) -> int:
        """See :meth:`Journal.enqueue`."""
        rows = [
            (index, fingerprint(r), json.dumps(r.to_json(), sort_keys=True, ensure_ascii=False))
            for index, r in enumerate(requests)
        ]
        async with self._transaction() as db:
            await db.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"batch:{batch_id}")
            stored = {
                row[0]: (row[1], None if row[2] is None else JournalState(row[2]))
                for row in await db.fetch(
                    "SELECT i.idx, i.fingerprint, c.state FROM zimage_batch_items i"
                    " LEFT JOIN zimage_creates c ON c.key = i.key WHERE i.batch_id = $1",
                    batch_id,
                )
            }
            replace, refuse = changed_items(stored, requests)
            if refuse:
                raise refuse_changed(self.location, batch_id, refuse)
            for index in replace:
                _, print_, body = rows[index]
                await db.execute(
                    "UPDATE zimage_batch_items SET fingerprint = $1, request = $2, key = $3,"
                    " settled = false WHERE batch_id = $4 AND idx = $5",
                    print_,
                    body,
                    new_key(),
                    batch_id,
                    index,
                )
            new = [row for row in rows if row[0] not in stored]
            await db.executemany(
                "INSERT INTO zimage_batch_items (batch_id, idx, fingerprint, request, key)"
                " VALUES ($1, $2, $3, $4, $5)",
                [(batch_id, index, print_, body, new_key()) for index, print_, body in new],
            )
        return len(new)

    async def reopen(self, batch_id: str, states: Collection[JournalState]) -> int:
        """See :meth:`Journal.reopen`."""
        wanted = [s.value for s in states]
        async with self._transaction() as db:
            await db.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"batch:{batch_id}")
            found = await db.fetch(
                "SELECT i.idx, c.state FROM zimage_batch_items i JOIN zimage_creates c"
                " ON c.key = i.key WHERE i.batch_id = $1 AND i.settled AND c.state = ANY($2)",
                batch_id,
                wanted,
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
        self, batch_id: str, worker_id: str, *, lease_seconds: float, limit: int
    ) -> list[JournalItem]:
        """See :meth:`Journal.claim`."""
        lease = check_lease_seconds(lease_seconds)
        async with self._transaction() as db:
            now = float(await db.fetchval(NOW))
            claimed = await db.fetch(
                CLAIM,
                batch_id,
                now,
                limit,
                worker_id,
                lease,
            )
            return await _items(db, batch_id, [row[0] for row in claimed])

    async def renew(self, batch_id: str, worker_id: str, *, lease_seconds: float) -> int:
        """See :meth:`Journal.renew`."""
        lease = check_lease_seconds(lease_seconds)
        async with self._transaction() as db:
            now = float(await db.fetchval(NOW))
            renewed = await db.fetch(
                "UPDATE zimage_batch_items SET lease_until = $1 WHERE batch_id = $2"
                " AND claimed_by = $3 AND lease_until > $4 AND NOT settled RETURNING idx",
                now + lease,
                batch_id,
                worker_id,
                now,
            )
        return len(renewed)

    async def release(self, batch_id: str, worker_id: str, index: int, *, settled: bool) -> bool:
        """See :meth:`Journal.release`."""
        async with self._transaction() as db:
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
        async with self._transaction() as db:
            return await _items(db, batch_id, None)


async def _prices(db: _Connection) -> dict[tuple[str, str], float]:
    rows = await db.fetch("SELECT model, size, credits FROM zimage_prices")
    return {(row[0], row[1]): float(row[2]) for row in rows}


async def _spend(
    db: _Connection,
    prices: dict[tuple[str, str], float],
    *,
    batch_id: str | None,
    excluding: str = "",
) -> Spend:
    rows = await db.fetch(SPEND, excluding, batch_id)
    return summarize_spend((tuple(row) for row in rows), prices)


async def _items(db: _Connection, batch_id: str, indexes: list[int] | None) -> list[JournalItem]:
    found = []
    for row in await db.fetch(ITEMS, batch_id, indexes):
        values = tuple(row)
        record = None if values[8] is None else record_from_row(values[8:])
        found.append(item_from_row(values[:8], record))
    return found
