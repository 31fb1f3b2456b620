"""The SQLite journal's batch items: enqueue, claim with a lease, renew, release, reopen.

A base of :class:`._journal_sqlite.SqliteJournal`; every statement runs in the
journal's own thread inside one ``BEGIN IMMEDIATE`` transaction, which serialises
claims across processes sharing the file.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Collection, Sequence
from typing import TypeVar

import attrs

from ._idempotency import new_key
from ._journal_records import JournalItem, JournalState
from ._journal_rows import check_lease_seconds, enqueue_rows
from ._journal_sqlite_file import item_rows, transaction
from ._models import GenerationRequest

__all__ = ["SqliteBatches"]

_T = TypeVar("_T")


def _enqueue(
    db: sqlite3.Connection, location: str, batch_id: str, requests: Sequence[GenerationRequest]
) -> int:
    """Add (or change) the items of batch *batch_id* on *db*; return how many were added."""
    with transaction(db):
        stored = db.execute(
            "SELECT i.idx, i.fingerprint, c.state FROM zimage_batch_items i"
            " LEFT JOIN zimage_creates c ON c.key = i.key WHERE i.batch_id = ?",
            (batch_id,),
        ).fetchall()
        updates, inserts = enqueue_rows(location, batch_id, requests, stored)
        db.executemany(
            "UPDATE zimage_batch_items SET fingerprint = ?, request = ?, key = ?,"
            " settled = 0 WHERE batch_id = ? AND idx = ?",
            updates,
        )
        db.executemany(
            "INSERT INTO zimage_batch_items (batch_id, idx, fingerprint, request, key)"
            " VALUES (?, ?, ?, ?, ?)",
            inserts,
        )
    return len(inserts)


class SqliteBatches:
    """The batch half of the SQLite journal (see :class:`Journal` for each method)."""

    location: str
    _clock: Callable[[], float]

    async def _run(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        raise NotImplementedError

    async def enqueue(self, batch_id: str, requests: Sequence[GenerationRequest]) -> int:
        """See :meth:`Journal.enqueue`."""
        return await self._run(functools.partial(self._enqueue, batch_id, requests))

    def _enqueue(
        self, batch_id: str, requests: Sequence[GenerationRequest], db: sqlite3.Connection
    ) -> int:
        try:
            return _enqueue(db, self.location, batch_id, requests)
        except sqlite3.Error as exc:
            # Raised without the frames below, which hold the items' requests (a callback
            # URL's token): its words are the failure's.
            raise exc.with_traceback(None) from None

    async def reopen(
        self,
        batch_id: str,
        states: Collection[JournalState],
        *,
        indexes: Collection[int] | None = None,
    ) -> int:
        """See :meth:`Journal.reopen`."""
        wanted = frozenset(states)
        only = None if indexes is None else frozenset(indexes)
        return await self._run(functools.partial(self._reopen, batch_id, wanted, only))

    def _reopen(
        self,
        batch_id: str,
        states: frozenset[JournalState],
        only: frozenset[int] | None,
        db: sqlite3.Connection,
    ) -> int:
        with transaction(db):
            found = db.execute(
                "SELECT i.idx, c.state FROM zimage_batch_items i JOIN zimage_creates c"
                " ON c.key = i.key WHERE i.batch_id = ? AND i.settled = 1",
                (batch_id,),
            ).fetchall()
            count = 0
            for index, state in found:
                if JournalState(state) not in states or (only is not None and index not in only):
                    continue
                fresh = JournalState(state) is JournalState.FAILED
                db.execute(
                    "UPDATE zimage_batch_items SET settled = 0,"
                    " key = CASE WHEN ? THEN ? ELSE key END WHERE batch_id = ? AND idx = ?",
                    (fresh, new_key(), batch_id, index),
                )
                count += 1
        return count

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
        claim = functools.partial(self._claim, batch_id, worker_id, lease, limit, begun_only)
        return await self._run(claim)

    def _claim(
        self,
        batch_id: str,
        worker_id: str,
        lease: float,
        limit: int,
        begun_only: bool,
        db: sqlite3.Connection,
    ) -> list[JournalItem]:
        with transaction(db):
            now = self._clock()
            # index -> the worker whose lease ran out (None: the item was free)
            held_by: dict[int, str | None] = dict(
                db.execute(
                    "SELECT idx, claimed_by FROM zimage_batch_items WHERE batch_id = ?"
                    " AND settled = 0 AND (claimed_by IS NULL OR lease_until <= ?) AND (NOT ?"
                    " OR key IN (SELECT key FROM zimage_creates WHERE state <> 'rejected'))"
                    " ORDER BY idx LIMIT ?",
                    (batch_id, now, begun_only, limit),
                )
            )
            db.executemany(
                "UPDATE zimage_batch_items SET claimed_by = ?, lease_until = ?"
                " WHERE batch_id = ? AND idx = ?",
                [(worker_id, now + lease, batch_id, index) for index in held_by],
            )
            return [
                attrs.evolve(item, taken_from=held_by[item.index])
                for item in item_rows(db, batch_id)
                if item.index in held_by
            ]

    async def renew(self, batch_id: str, worker_id: str, *, lease_seconds: float) -> int:
        """See :meth:`Journal.renew`."""
        lease = check_lease_seconds(lease_seconds)

        def work(db: sqlite3.Connection) -> int:
            with transaction(db):
                now = self._clock()
                # A lease that ran out is revived too while the worker still holds it
                # (nobody claimed it since: a claim writes its own claimed_by).
                cursor = db.execute(
                    "UPDATE zimage_batch_items SET lease_until = ? WHERE batch_id = ?"
                    " AND claimed_by = ? AND settled = 0",
                    (now + lease, batch_id, worker_id),
                )
            return cursor.rowcount

        return await self._run(work)

    async def release(self, batch_id: str, worker_id: str, index: int, *, settled: bool) -> bool:
        """See :meth:`Journal.release`."""

        def work(db: sqlite3.Connection) -> bool:
            with transaction(db):
                cursor = db.execute(
                    "UPDATE zimage_batch_items SET claimed_by = NULL, lease_until = NULL,"
                    " settled = ? WHERE batch_id = ? AND idx = ? AND claimed_by = ?",
                    (settled, batch_id, index, worker_id),
                )
            return cursor.rowcount == 1

        return await self._run(work)

    async def items(self, batch_id: str) -> list[JournalItem]:
        """See :meth:`Journal.items`."""
        return await self._run(functools.partial(item_rows, batch_id=batch_id))

    async def rekey(self, batch_id: str, worker_id: str, index: int) -> str | None:
        """See :meth:`Journal.rekey`."""
        key = new_key()

        def work(db: sqlite3.Connection) -> bool:
            with transaction(db):
                # Still the worker's while nobody claimed it, its lease run out or not.
                cursor = db.execute(
                    "UPDATE zimage_batch_items SET key = ? WHERE batch_id = ? AND idx = ?"
                    " AND claimed_by = ? AND settled = 0",
                    (key, batch_id, index, worker_id),
                )
            return cursor.rowcount == 1

        return key if await self._run(work) else None
