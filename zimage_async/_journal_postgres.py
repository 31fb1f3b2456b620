"""The PostgreSQL journal: one database shared by any number of workers.

Opened for ``postgresql://`` (or ``postgres://``) URLs through asyncpg, imported only then
(the ``postgres`` extra installs it). A process pools at most :data:`POOL_SIZE` connections.

Concurrency is the database's job:

- :meth:`PostgresJournal.begin` takes a transaction-scoped advisory lock
  (:data:`SPEND_LOCK`) before it reads what is reserved (running totals a trigger keeps)
  and inserts the new record: begins from every worker are serialised, a limit holds.
- :meth:`PostgresJournal.claim` picks free items with ``SELECT ... FOR UPDATE SKIP
  LOCKED`` and leases them in the same statement, so no item is claimed twice; lease
  times are the server's clock (``clock_timestamp()``), the same for every worker.
- :meth:`PostgresJournal.enqueue` and :meth:`PostgresJournal.reopen` lock the batch
  (an advisory lock on its id), so workers starting together add its items once;
  ``enqueue`` then takes :data:`SPEND_LOCK` too, so no begin commits during an edit.
- The server ends a session left idle inside a transaction (a worker stopped mid-write),
  releasing its locks, and fails a wait for a lock past a limit (:func:`open_pool`): each
  a :class:`JournalError` of the worker concerned, before any create of its is sent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ._exceptions import JournalError
from ._journal_moves import begin_refusal, passed_already, update_refusal
from ._journal_postgres_batch import PostgresBatches
from ._journal_postgres_pool import Limits, open_pool, transaction_attempts
from ._journal_records import JournalRecord, JournalState, price_key
from ._journal_rows import (
    ITEM_LEASE_COLUMNS,
    RECORD_COLUMNS,
    item_refusal,
    paths_json,
    record_from_row,
    storable,
)
from ._journal_spend import (
    UNPRICED_WINDOW,
    PriceAwaited,
    Spend,
    SpendLimit,
    check_spend,
    summarize_spend,
)
from ._journal_store import Journal

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy

    _Connection = PoolConnectionProxy[Any]

from ._journal_postgres_sql import (
    FORMAT,
    GET,
    NOW,
    SCHEMA_LOCK,
    SPEND,
    SPEND_LOCK,
    UPDATE,
    UPSERT,
    driver_errors,
    load_asyncpg,
    set_up_schema,
    without_password,
)

__all__ = ["PostgresJournal"]

#: Whether another create of a model and size is being sent without a price (in one
#: batch, or in the journal with a NULL batch).
UNPRICED_IN_FLIGHT = (
    "SELECT EXISTS (SELECT 1 FROM zimage_creates WHERE model = $1 AND size = $2"
    " AND state = 'submitting' AND expected_cost IS NULL AND credits_reserved IS NULL"
    " AND key <> $3 AND updated_at > $4 AND ($5::text IS NULL OR batch_id = $5))"
)


class PostgresJournal(PostgresBatches, Journal):
    """The journal in a PostgreSQL database; open it with ``open_journal(url)``."""

    def __init__(
        self, location: str, pool: asyncpg.Pool[Any], driver: ModuleType, limits: Limits
    ) -> None:
        self.location = location
        self._pool, self._limits, self._driver = pool, limits, driver
        self._closed = False

    def __repr__(self) -> str:
        return f"<PostgresJournal {self.location}>"

    @classmethod
    async def open(cls, url: str) -> PostgresJournal:
        """Connect to the database at *url* and create the journal's tables if needed."""
        driver = load_asyncpg()
        location = without_password(url)
        failure: JournalError | None = None
        pool = None
        try:
            pool, limits = await open_pool(driver, url)  # its first connection made
        except driver_errors(driver) as exc:
            # Not chained: asyncpg's frames hold the URL (and its password) as locals.
            failure = JournalError(f"cannot open the journal {location}: {exc}")
        except OverflowError:  # asyncpg leaves a port to the socket, which refuses it unsent
            failure = JournalError(
                f"cannot open the journal {location}: its port (or $PGPORT) is out of range; "
                "give one from 1 to 65535"
            )
        except ValueError:  # asyncpg quotes the part of the URL it misread: maybe the password
            failure = JournalError(  # not even the location: what is the password is unclear
                "cannot open the journal: its postgresql:// URL does not parse (check the "
                "port, and percent-encode any '/', '@' or ':' in the password)"
            )
        except BaseException:  # cancelled, or timed out, while connecting: end the pool
            if pool is not None:
                pool.terminate()
            raise
        if failure is not None:
            if pool is not None:
                pool.terminate()
            del url, pool  # raised outside the except blocks: no context, no URL here
            raise failure
        assert pool is not None
        journal = cls(location, pool, driver, limits)
        try:
            await journal._set_up()
        except BaseException:
            await journal.close()
            raise
        return journal

    async def _set_up(self) -> None:
        """Create the tables a journal of this format lacks; refuse any other database.

        Checked before anything is created: a journal of another format, or a schema
        holding other tables and no journal (another application's), is refused and
        left as it was.
        """
        for attempt in self._attempts("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK):
            async with attempt as db:
                refusal = await _refusal(db, self.location)
                if refusal is None:
                    await set_up_schema(db)
                    await db.execute(
                        "INSERT INTO zimage_journal_meta VALUES ('format', $1)"
                        " ON CONFLICT DO NOTHING",
                        FORMAT,
                    )
        if refusal is not None:
            raise JournalError(refusal)

    async def close(self) -> None:
        """Close the connection pool (every change is already committed). Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._pool.close()

    def _attempts(
        self, *first: Any
    ) -> Iterator[contextlib.AbstractAsyncContextManager[_Connection]]:
        """Return the attempts of one transaction (see :func:`transaction_attempts`).

        *first*: the transaction's first statement (a lock) and its arguments. The
        driver's errors become :class:`JournalError`.
        """
        if self._closed:
            raise JournalError(f"the journal {self.location} is closed")
        errors = driver_errors(self._driver)
        return transaction_attempts(self._pool, errors, first, self.location, self._limits)

    # -- creates -------------------------------------------------------------------------

    async def begin(
        self,
        record: JournalRecord,
        *,
        limits: Sequence[SpendLimit] = (),
        worker_id: str | None = None,
    ) -> JournalRecord:
        """See :meth:`Journal.begin`."""
        for attempt in self._attempts("SELECT pg_advisory_xact_lock($1)", SPEND_LOCK):
            async with attempt as db:
                now = float(await db.fetchval(NOW))
                existing = await _create(db, GET + " FOR UPDATE", record.key)
                refusal = begin_refusal(existing, record, now=now)
                if refusal is not None:
                    raise JournalError(refusal)
                if record.batch_id is not None:
                    item = await db.fetchrow(
                        f"SELECT {ITEM_LEASE_COLUMNS} FROM zimage_batch_items"  # noqa: S608 (a constant)
                        " WHERE batch_id = $1 AND idx = $2 FOR UPDATE",
                        record.batch_id,
                        record.item_index,
                    )
                    refused = item_refusal(record, worker_id, item, now)
                    if refused is not None:
                        raise refused
                prices = await _prices(db)
                expected = record.expected_cost
                if expected is None:
                    expected = prices.get(price_key(record.model, record.size))
                for limit in limits:
                    if expected is None and await db.fetchval(
                        UNPRICED_IN_FLIGHT,
                        record.model,
                        record.size or "",
                        record.key,
                        now - UNPRICED_WINDOW,
                        limit.batch_id,
                    ):
                        raise PriceAwaited
                    if expected is None:
                        # None in flight now: a first price may have been committed since
                        # the read above (READ COMMITTED; update() takes no lock): read again.
                        prices = await _prices(db)
                        expected = prices.get(price_key(record.model, record.size))
                    reserved = await _spend(
                        db, prices, batch_id=limit.batch_id, excluding=record.key
                    )
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
                stored = await _create(db, GET, record.key)
        assert stored is not None
        return stored

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
        for attempt in self._attempts():
            async with attempt as db:
                existing = await _create(db, GET + " FOR UPDATE", key)
                if existing is not None:
                    refusal = update_refusal(existing, state, task_id)
                    if refusal is not None:
                        raise JournalError(refusal)
                    if passed_already(existing, state):  # a late or repeated outcome: kept
                        return existing
                stored = await _create(
                    db,
                    UPDATE,
                    state.value,
                    task_id,
                    None if credits_reserved is None else float(credits_reserved),
                    completed_at,
                    None if paths is None else paths_json(paths),
                    storable(error_code),
                    storable(error_message),
                    key,
                )
                if stored is None:
                    raise JournalError(
                        f"the journal {self.location} has no create with key {key!r}"
                    )
                if credits_reserved is not None:
                    await db.execute(
                        "INSERT INTO zimage_prices VALUES ($1, $2, $3, $4)"
                        " ON CONFLICT (model, size) DO UPDATE"
                        " SET credits = EXCLUDED.credits, seen_at = EXCLUDED.seen_at",
                        stored.model,
                        stored.size or "",
                        float(credits_reserved),
                        stored.updated_at,
                    )
        assert stored is not None
        return stored

    async def now(self) -> float:
        """See :meth:`Journal.now`: the database server's clock."""
        for attempt in self._attempts():
            async with attempt as db:
                now = float(await db.fetchval(NOW))
        return now

    async def get(self, key: str) -> JournalRecord | None:
        """See :meth:`Journal.get`."""
        for attempt in self._attempts():
            async with attempt as db:
                found = await _create(db, GET, key)
        return found

    async def records(
        self,
        *,
        batch_id: str | None = None,
        states: Collection[JournalState] | None = None,
        task_id: str | None = None,
    ) -> list[JournalRecord]:
        """See :meth:`Journal.records`."""
        for attempt in self._attempts():
            async with attempt as db:
                found = [
                    record_from_row(tuple(row))  # not a row: its repr shows the request
                    for row in await db.fetch(
                        f"SELECT {RECORD_COLUMNS} FROM zimage_creates"  # noqa: S608 (constants)
                        " WHERE ($1::text IS NULL OR batch_id = $1)"
                        " AND ($2::text[] IS NULL OR state = ANY($2))"
                        " AND ($3::text IS NULL OR task_id = $3) ORDER BY created_at, key",
                        batch_id,
                        None if states is None else [s.value for s in states],
                        task_id,
                    )
                ]
        return found

    async def spent(self, *, batch_id: str | None = None) -> Spend:
        """See :meth:`Journal.spent`."""
        for attempt in self._attempts():
            async with attempt as db:
                spend = await _spend(db, await _prices(db), batch_id=batch_id)
        return spend

    async def last_price(self, model: str, size: str | None) -> float | None:
        """See :meth:`Journal.last_price`."""
        for attempt in self._attempts():
            async with attempt as db:
                value = await db.fetchval(
                    "SELECT credits FROM zimage_prices WHERE model = $1 AND size = $2",
                    *price_key(model, size),
                )
        return None if value is None else float(value)


async def _refusal(db: _Connection, location: str) -> str | None:
    """Return why the database at *location* is not opened as a journal, or None."""
    if await db.fetchval("SELECT to_regclass('zimage_journal_meta') IS NOT NULL"):
        found = await db.fetchval("SELECT value FROM zimage_journal_meta WHERE key = 'format'")
        if found is None or found == FORMAT:
            return None
        return (
            f"{location} holds a zimage journal of format {found!r}, which this version "
            f"does not read (it reads {FORMAT!r}); it was left as it was - upgrade zimage-async"
        )
    others = [
        str(row[0])
        for row in await db.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            " AND left(tablename, 7) <> 'zimage_' ORDER BY tablename LIMIT 6"
        )
    ]
    if not others:
        return None
    shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
    return (
        f"{location} is not a zimage journal: its schema holds other tables ({shown}) and "
        "no journal, and was left as it was; give the journal a database of its own"
    )


async def _create(db: _Connection, query: str, *args: object) -> JournalRecord | None:
    """Return the create in *query*'s row, or None; never the row: its repr shows the request."""
    row = await db.fetchrow(query, *args)
    return None if row is None else record_from_row(tuple(row))


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
    return summarize_spend((tuple(r) for r in rows), prices)
