"""The SQLite journal: one file, the embedded default.

Every call runs in the journal's own thread (one connection, one thread), so a write
never blocks the event loop. Every write is one ``BEGIN IMMEDIATE`` transaction,
committed with ``synchronous=FULL`` (fsynced) before the call returns; ``BEGIN
IMMEDIATE`` also serialises writers across processes sharing the file, which is what
makes the spend check and batch claims atomic here. Lease times come from the injected
*clock* (Unix seconds).

A file that holds a batch manifest of an earlier version is taken over: the journal's
tables are added beside the manifest's, and its rows become the batch's items and
creates, in one transaction.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import sqlite3
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TypeVar

from ._exceptions import JournalError
from ._journal_moves import begin_refusal, passed_already, update_refusal
from ._journal_records import JournalRecord, JournalState, price_key
from ._journal_rows import (
    ITEM_LEASE_COLUMNS,
    RECORD_COLUMNS,
    item_refusal,
    paths_json,
    readable_rows,
    record_from_row,
    storable,
)
from ._journal_spend import UNPRICED_WINDOW, PriceAwaited, Spend, SpendLimit, check_spend
from ._journal_sqlite_batch import SqliteBatches
from ._journal_sqlite_file import (
    IN_MEMORY,
    connect,
    get_record,
    locked,
    price_table,
    spend_of,
    transaction,
)
from ._journal_store import Journal

__all__ = ["SqliteJournal"]

_T = TypeVar("_T")


class SqliteJournal(SqliteBatches, Journal):
    """The journal in one SQLite file; open it with :meth:`open` or ``open_journal(path)``."""

    def __init__(
        self,
        path: Path | None,
        executor: concurrent.futures.ThreadPoolExecutor,
        db: sqlite3.Connection,
        clock: Callable[[], float],
    ) -> None:
        self.path = path
        self.location = IN_MEMORY if path is None else str(path)
        self._executor = executor
        self._db = db
        self._clock = clock
        self._closed = False

    def __repr__(self) -> str:
        return f"<SqliteJournal {self.location}>"

    @classmethod
    async def open(cls, path: Path, *, clock: Callable[[], float] = time.time) -> SqliteJournal:
        """Open (or create) the journal file at *path*; see :func:`open_journal`."""
        return await cls._open(path, clock)

    @classmethod
    async def in_memory(cls, *, clock: Callable[[], float] = time.time) -> SqliteJournal:
        """Open a journal in memory, which ends when closed; see :func:`open_batch_journal`."""
        return await cls._open(None, clock)

    @classmethod
    async def _open(cls, path: Path | None, clock: Callable[[], float]) -> SqliteJournal:
        executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="zimage-journal"
        )
        loop = asyncio.get_running_loop()
        try:
            db = await loop.run_in_executor(executor, functools.partial(connect, path, clock))
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(path, executor, db, clock)

    async def close(self) -> None:
        """Close the file (every change is already committed). Idempotent."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._db.close)
        finally:
            self._executor.shutdown(wait=False)

    async def _run(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._closed:
            raise JournalError(f"the journal {self.location} is closed")
        loop = asyncio.get_running_loop()
        try:
            with readable_rows(self.location):
                return await loop.run_in_executor(self._executor, work, self._db)
        except sqlite3.Error as exc:
            error = locked(self.location, exc)
            raise error or JournalError(f"the journal {self.location} failed: {exc}") from exc

    # -- creates -------------------------------------------------------------------------

    async def begin(
        self,
        record: JournalRecord,
        *,
        limits: Sequence[SpendLimit] = (),
        worker_id: str | None = None,
    ) -> JournalRecord:
        """See :meth:`Journal.begin`."""
        return await self._run(functools.partial(self._begin, record, tuple(limits), worker_id))

    def _begin(
        self,
        record: JournalRecord,
        limits: tuple[SpendLimit, ...],
        worker_id: str | None,
        db: sqlite3.Connection,
    ) -> JournalRecord:
        with transaction(db):
            now = self._clock()
            existing = get_record(db, record.key)
            refusal = begin_refusal(existing, record, now=now)
            if refusal is not None:
                raise JournalError(refusal)
            if record.batch_id is not None:
                item = db.execute(
                    f"SELECT {ITEM_LEASE_COLUMNS} FROM zimage_batch_items"  # noqa: S608 (a constant)
                    " WHERE batch_id = ? AND idx = ?",
                    (record.batch_id, record.item_index),
                ).fetchone()
                refused = item_refusal(record, worker_id, item, now)
                if refused is not None:
                    raise refused
            prices = price_table(db)
            expected = record.expected_cost
            if expected is None:
                expected = prices.get(price_key(record.model, record.size))
            for limit in limits:
                if expected is None and _unpriced_in_flight(db, record, limit, now):
                    raise PriceAwaited
                reserved = spend_of(db, prices, batch_id=limit.batch_id, excluding=record.key)
                error = check_spend(limit, reserved=reserved.credits, expected=expected)
                if error is not None:
                    raise error
            db.execute(
                f"INSERT OR REPLACE INTO zimage_creates ({RECORD_COLUMNS})"  # noqa: S608 (column lists are constants)
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.key,
                    record.fingerprint,
                    record.request_json,
                    record.model,
                    record.size or "",
                    JournalState.SUBMITTING.value,
                    record.base_url,
                    expected,
                    None,
                    None,
                    None,
                    "[]",
                    None,
                    None,
                    record.batch_id,
                    record.item_index,
                    existing.created_at if existing is not None else now,
                    now,
                ),
            )
            stored = get_record(db, record.key)
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
        values = (
            state.value,
            task_id,
            credits_reserved,
            completed_at,
            None if paths is None else paths_json(paths),
            storable(error_code),
            storable(error_message),
        )
        return await self._run(functools.partial(self._update, key, values))

    def _update(
        self, key: str, values: tuple[object, ...], db: sqlite3.Connection
    ) -> JournalRecord:
        with transaction(db):
            now = self._clock()
            existing = get_record(db, key)
            if existing is not None:
                state = JournalState(values[0])
                refusal = update_refusal(existing, state, values[1])  # type: ignore[arg-type]
                if refusal is not None:
                    raise JournalError(refusal)
                if passed_already(existing, state):  # a late or repeated outcome: kept
                    return existing
            cursor = db.execute(
                "UPDATE zimage_creates SET state = ?, task_id = COALESCE(?, task_id),"
                " credits_reserved = COALESCE(?, credits_reserved),"
                " completed_at = COALESCE(?, completed_at), paths = COALESCE(?, paths),"
                " error_code = COALESCE(?, error_code),"
                " error_message = COALESCE(?, error_message), updated_at = ? WHERE key = ?",
                (*values, now, key),
            )
            if cursor.rowcount == 0:
                raise JournalError(f"the journal {self.location} has no create with key {key!r}")
            stored = get_record(db, key)
            assert stored is not None
            if values[2] is not None:
                db.execute(
                    "INSERT OR REPLACE INTO zimage_prices VALUES (?, ?, ?, ?)",
                    (stored.model, stored.size or "", values[2], now),
                )
        return stored

    async def now(self) -> float:
        """See :meth:`Journal.now`: the journal's clock."""
        return self._clock()

    async def get(self, key: str) -> JournalRecord | None:
        """See :meth:`Journal.get`."""
        return await self._run(functools.partial(get_record, key=key))

    async def records(
        self,
        *,
        batch_id: str | None = None,
        states: Collection[JournalState] | None = None,
        task_id: str | None = None,
    ) -> list[JournalRecord]:
        """See :meth:`Journal.records`."""
        where, args = ["1"], []
        for column, value in (("batch_id", batch_id), ("task_id", task_id)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if states is not None:
            where.append(f"state IN ({', '.join('?' * len(states))})")
            args.extend(s.value for s in states)
        query = (
            f"SELECT {RECORD_COLUMNS} FROM zimage_creates WHERE {' AND '.join(where)}"  # noqa: S608 (column lists are constants)
            " ORDER BY created_at, key"
        )
        return await self._run(lambda db: [record_from_row(row) for row in db.execute(query, args)])

    async def spent(self, *, batch_id: str | None = None) -> Spend:
        """See :meth:`Journal.spent`."""
        return await self._run(lambda db: spend_of(db, price_table(db), batch_id=batch_id))

    async def last_price(self, model: str, size: str | None) -> float | None:
        """See :meth:`Journal.last_price`."""
        return await self._run(lambda db: price_table(db).get(price_key(model, size)))


def _unpriced_in_flight(
    db: sqlite3.Connection, record: JournalRecord, limit: SpendLimit, now: float
) -> bool:
    """Whether another create of *record*'s model and size is being sent without a price."""
    row = db.execute(
        "SELECT 1 FROM zimage_creates WHERE model = ? AND size = ? AND state = 'submitting'"
        " AND expected_cost IS NULL AND credits_reserved IS NULL AND key <> ?"
        " AND updated_at > ? AND (? IS NULL OR batch_id = ?) LIMIT 1",
        (
            record.model,
            record.size or "",
            record.key,
            now - UNPRICED_WINDOW,
            limit.batch_id,
            limit.batch_id,
        ),
    ).fetchone()
    return row is not None
