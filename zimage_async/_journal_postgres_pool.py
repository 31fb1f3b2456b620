"""The PostgreSQL journal's connections: one transaction on one pooled connection, tried twice.

A store method runs its transaction as ``for attempt in transaction_attempts(...): async
with attempt as db: ...``. Each attempt takes a connection from the pool, begins a
transaction, runs its first statement (an advisory lock, if any), then the body, and
commits. A transaction that fails before its ``COMMIT`` is sent has changed nothing
(the server rolls back what was not committed, a terminated backend included), so it
is run once more, on another connection: a connection whose backend was terminated
while it sat idle in the pool or waited for a lock (``pg_terminate_backend``, a server
restart) costs one retry, not a failed write; so does a ``COMMIT`` the driver refused
to send (the connection's server had ended it). A failure of a ``COMMIT`` that was sent
(it may have been applied) and a second failure are raised, as :class:`JournalError`.

A connection is always given back to the pool, even when its caller is cancelled
meanwhile, and a failure to give it back (resetting a lost connection fails; the pool
drops it) is neither an error of a transaction that committed nor an exception left
for the event loop to report.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from ._exceptions import JournalError
from ._journal_rows import readable_rows

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy
    from asyncpg.transaction import Transaction

__all__ = ["ATTEMPTS", "transaction_attempts"]

#: How many times a transaction that failed before its COMMIT is run.
ATTEMPTS = 2

_Errors = tuple[type[BaseException], ...]


class _Try:
    """What one attempt found: whether the transaction is to be run again."""

    def __init__(self) -> None:
        self.again = False
        self.committing = False


def transaction_attempts(
    pool: asyncpg.Pool[Any], errors: _Errors, first: tuple[Any, ...], location: str
) -> Iterator[contextlib.AbstractAsyncContextManager[PoolConnectionProxy[Any]]]:
    """Yield the attempts of one transaction: each an ``async with`` giving a connection.

    *errors* are the driver's failures (see ``driver_errors``), raised as
    :class:`JournalError` naming *location*; *first*, if given, is the transaction's
    first statement and its arguments. The next attempt is yielded only when the one
    before failed before its ``COMMIT`` was sent (its failure then suppressed).
    """
    for number in range(1, ATTEMPTS + 1):
        state = _Try()
        yield _attempt(pool, errors, first, location, state, last=number == ATTEMPTS)
        if not state.again:
            return


@contextlib.asynccontextmanager
async def _attempt(
    pool: asyncpg.Pool[Any],
    errors: _Errors,
    first: tuple[Any, ...],
    location: str,
    state: _Try,
    *,
    last: bool,
) -> AsyncIterator[PoolConnectionProxy[Any]]:
    started = False
    try:
        with readable_rows(location):
            db, transaction = await _begun(pool, errors, first)
            started = True
            try:
                try:
                    yield db
                except BaseException:
                    with contextlib.suppress(*errors):  # the connection may be gone
                        await transaction.rollback()
                    raise
                state.committing = True
                try:
                    await transaction.commit()
                except errors as exc:
                    state.committing = not _unsent(exc)
                    raise
            finally:
                await _release(pool, db)
    except errors as exc:
        if started and not last and not state.committing:
            state.again = True  # nothing was committed: run it once more
            return
        raise JournalError(f"the journal {location} failed: {exc}") from exc


async def _begun(
    pool: asyncpg.Pool[Any], errors: _Errors, first: tuple[Any, ...]
) -> tuple[PoolConnectionProxy[Any], Transaction]:
    """Take a connection and begin a transaction (and its first statement) on it.

    Begun once more on another connection if the first is found lost: nothing was
    sent on it but ``BEGIN`` and the first statement.
    """
    for attempt in range(1, ATTEMPTS + 1):
        db = await pool.acquire()
        transaction = db.transaction()
        try:
            await transaction.start()
            if first:
                await db.execute(*first)
        except errors:
            await _release(pool, db)
            if attempt == ATTEMPTS:
                raise
            continue
        except BaseException:
            await _release(pool, db)
            raise
        return db, transaction
    raise AssertionError("unreachable")  # pragma: no cover


def _unsent(exc: BaseException) -> bool:
    """Whether the driver refused to send a statement at all (*exc* raised before sending).

    asyncpg raises "cannot switch to state N; another operation (M) is in progress"
    before writing anything, when the connection's server already ended it.
    """
    return type(exc).__name__ == "InternalClientError" and "cannot switch to state" in str(exc)


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
