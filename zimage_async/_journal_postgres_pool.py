"""The PostgreSQL journal's connections: one transaction on one pooled connection.

:func:`pooled_transaction` takes a connection from the pool and begins a transaction on
it, and runs its first statement (an advisory lock). A connection found lost then
(its backend was terminated while it sat idle in the pool or waited for the lock, a
server restart) has changed nothing - the server rolls back what was not committed -
so the transaction is begun once more, on another connection. A connection is always given
back to the pool, even when its caller is cancelled meanwhile, and a failure to give
it back (resetting a lost connection fails; the pool drops it) is neither an error of
the transaction that committed nor an exception left for the event loop to report.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy
    from asyncpg.transaction import Transaction

__all__ = ["pooled_transaction"]

#: How many times a transaction is begun when its connection is found lost.
BEGIN_ATTEMPTS = 2


@contextlib.asynccontextmanager
async def pooled_transaction(
    pool: asyncpg.Pool[Any], errors: tuple[type[BaseException], ...], first: tuple[Any, ...] = ()
) -> AsyncIterator[PoolConnectionProxy[Any]]:
    """Yield a pooled connection in a transaction, committed if the body ends normally.

    *first*, if given, is the transaction's first statement and its arguments, run
    before the body. *errors* are the driver's failures (see ``driver_errors``); they
    propagate as raised, for the caller to turn into its own error.
    """
    db, transaction = await _begun(pool, errors, first)
    try:
        yield db
    except BaseException:
        with contextlib.suppress(*errors):  # the connection may be gone: keep the cause
            await transaction.rollback()
        raise
    else:
        await transaction.commit()
    finally:
        await _release(pool, db)


async def _begun(
    pool: asyncpg.Pool[Any], errors: tuple[type[BaseException], ...], first: tuple[Any, ...]
) -> tuple[PoolConnectionProxy[Any], Transaction]:
    for attempt in range(BEGIN_ATTEMPTS):
        db = await pool.acquire()
        transaction = db.transaction()
        try:
            await transaction.start()
            if first:
                await db.execute(*first)
        except errors:
            await _release(pool, db)
            if attempt + 1 == BEGIN_ATTEMPTS:
                raise
            continue
        except BaseException:
            await _release(pool, db)
            raise
        return db, transaction
    raise AssertionError("unreachable")  # pragma: no cover


async def _release(pool: asyncpg.Pool[Any], db: PoolConnectionProxy[Any]) -> None:
    """Give *db* back to the pool, to the end even if the caller is cancelled."""
    release = asyncio.ensure_future(pool.release(db))
    release.add_done_callback(_retrieved)
    with contextlib.suppress(Exception):  # a lost connection: the pool has dropped it
        await asyncio.shield(release)


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Mark *future*'s failure as seen: a release's failure is no one's to report."""
    if not future.cancelled():
        future.exception()
