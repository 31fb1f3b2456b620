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

Two failures are not run again, and are told in plain words: a lock waited for longer
than the journal's lock limit (another worker holds it, perhaps stopped in the middle
of a write: waiting again would double the wait), and a session the server ended
because it sat inside a transaction for longer than the idle limit (this worker was
stopped there, and the others went past its locks). The pool gives every connection
those two limits (:func:`open_pool`), unless the user set them.

A connection is always given back to the pool, even when its caller is cancelled
meanwhile, and a failure to give it back (resetting a lost connection fails; the pool
drops it) is neither an error of a transaction that committed nor an exception left
for the event loop to report.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

from ._exceptions import JournalError
from ._journal_postgres_sql import (
    IDLE_IN_TRANSACTION_LIMIT,
    LIMIT_SETTINGS,
    LOCK_WAIT_LIMIT,
    POOL_SIZE,
    SPEND_LOCK,
)
from ._journal_rows import readable_rows
from ._secret import raise_alone

if TYPE_CHECKING:
    import asyncpg
    from asyncpg.pool import PoolConnectionProxy
    from asyncpg.transaction import Transaction

__all__ = ["ATTEMPTS", "Limits", "open_pool", "transaction_attempts"]

#: How many times a transaction that failed before its COMMIT is run.
ATTEMPTS = 2

#: The server's error of a ``RAISE`` in a function (a trigger's, say) that gives no other.
RAISED = "P0001"
#: The server's error of a statement that waited for a lock past ``lock_timeout``.
LOCK_NOT_AVAILABLE = "55P03"
#: The server's error (and words) of a session it ended for sitting idle in a transaction.
IDLE_ENDED = ("25P03", "idle-in-transaction timeout")

_Errors = tuple[type[BaseException], ...]


class Limits(NamedTuple):
    """The server's limits on the journal's sessions, in seconds (0: none)."""

    idle: float = 0.0
    lock: float = 0.0


async def open_pool(driver: ModuleType, url: str) -> tuple[asyncpg.Pool[Any], Limits]:
    """Open the pool of the journal at *url*, its first connection made; and its limits.

    The first connection reads where the server's two limits come from
    (``pg_settings.source``). One the user set, anywhere (a parameter of the URL, which
    asyncpg passes to the server; ``ALTER DATABASE`` or ``ALTER ROLE ... SET``; the
    server's configuration), is kept; each other is given every connection of the pool
    as a server setting of its start-up (which the pool's ``RESET ALL`` keeps):
    :data:`IDLE_IN_TRANSACTION_LIMIT` and :data:`LOCK_WAIT_LIMIT`. The pool is ended if
    this fails or is cancelled.
    """
    # No floor of idle connections: asyncpg would log a traceback every few seconds
    # while the server is down. The first connection is made here, so that its failure
    # is the failure to open the journal.
    pool = await driver.create_pool(url, min_size=0, max_size=POOL_SIZE)
    try:
        db = await pool.acquire()
        try:
            rows = await db.fetch(LIMIT_SETTINGS)
            limits, chosen = _limits({str(r[0]): (str(r[1]), str(r[2])) for r in rows})
            if chosen:
                pool.set_connect_args(url, server_settings=chosen)
                await pool.expire_connections()  # this first one is closed when given back
        finally:
            await pool.release(db)
    except BaseException:
        pool.terminate()
        raise
    return pool, limits


def _limits(found: dict[str, tuple[str, str]]) -> tuple[Limits, dict[str, str]]:
    """Return the limits in force, and the settings to give (those the user did not set).

    *found*: each setting's value (in milliseconds) and source, by name; a server that
    lacks a setting is given none.
    """
    chosen: dict[str, str] = {}
    seconds = []
    for name, default in (
        ("idle_in_transaction_session_timeout", IDLE_IN_TRANSACTION_LIMIT),
        ("lock_timeout", LOCK_WAIT_LIMIT),
    ):
        value, source = found.get(name, ("0", ""))
        if source == "default":
            chosen[name] = f"{round(default * 1000)}ms"
            seconds.append(default)
        else:
            seconds.append(int(value) / 1000 if value.isdigit() else 0.0)
    return Limits(*seconds), chosen


class _Try:
    """What one attempt found: whether the transaction is to be run again."""

    def __init__(self) -> None:
        self.again = False
        self.committing = False
        self.since = 0.0  # when its transaction had begun (and its lock been taken)


def transaction_attempts(
    pool: asyncpg.Pool[Any],
    errors: _Errors,
    first: tuple[Any, ...],
    location: str,
    limits: Limits,
) -> Iterator[contextlib.AbstractAsyncContextManager[PoolConnectionProxy[Any]]]:
    """Yield the attempts of one transaction: each an ``async with`` giving a connection.

    *errors* are the driver's failures (see ``driver_errors``), raised as
    :class:`JournalError` naming *location*; *first*, if given, is the transaction's
    first statement and its arguments; *limits*, the server's limits on the pool's
    sessions, for the words of their failures. The next attempt is yielded only when
    the one before failed before its ``COMMIT`` was sent (its failure then suppressed),
    and not past a limit.
    """
    for number in range(1, ATTEMPTS + 1):
        state = _Try()
        yield _attempt(pool, errors, first, limits, location, state, last=number == ATTEMPTS)
        if not state.again:
            return


@contextlib.asynccontextmanager
async def _attempt(
    pool: asyncpg.Pool[Any],
    errors: _Errors,
    first: tuple[Any, ...],
    limits: Limits,
    location: str,
    state: _Try,
    *,
    last: bool,
) -> AsyncIterator[PoolConnectionProxy[Any]]:
    started = False
    try:
        with readable_rows(location, errors):  # the driver's errors are told below
            db, transaction = await _begun(pool, errors, first)
            started = True
            state.since = time.monotonic()
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
        ended = started and _ended_idle(exc, state, limits.idle)
        if started and not (last or state.committing or ended or _lock_wait(exc)):
            state.again = True  # nothing was committed: run it once more
            return
        creating = SPEND_LOCK in first[1:]  # a begin: its create is sent only after it
        message = _failure(exc, location, limits, ended=ended, creating=creating)
        exc.args = (_told(exc),)  # what the frames above show of it (their locals): no value
        del exc  # its frames hold the statement's arguments: a row, a request's token
        raise_alone(JournalError(message))


async def _begun(
    pool: asyncpg.Pool[Any], errors: _Errors, first: tuple[Any, ...]
) -> tuple[PoolConnectionProxy[Any], Transaction]:
    """Take a connection and begin a transaction (and its first statement) on it.

    Begun once more on another connection if the first is found lost: nothing was
    sent on it but ``BEGIN`` and the first statement. A lock waited for past the lock
    limit is not waited for again.
    """
    for attempt in range(1, ATTEMPTS + 1):
        db = await pool.acquire()
        transaction = db.transaction()
        try:
            await transaction.start()
            if first:
                await db.execute(*first)
        except errors as exc:
            if _lock_wait(exc):  # the connection is sound: end its transaction first
                with contextlib.suppress(*errors):
                    await transaction.rollback()
            await _release(pool, db)
            if attempt == ATTEMPTS or _lock_wait(exc):
                raise
            continue
        except BaseException:
            await _release(pool, db)
            raise
        return db, transaction
    raise AssertionError("unreachable")  # pragma: no cover


def _lock_wait(exc: BaseException) -> bool:
    """Whether *exc* is the server's: a statement waited for a lock past ``lock_timeout``."""
    return getattr(exc, "sqlstate", None) == LOCK_NOT_AVAILABLE


def _ended_idle(exc: BaseException, state: _Try, idle: float) -> bool:
    """Whether *exc* is the session's end by the server for sitting idle in a transaction.

    Told by the server's words, when the driver passes them on (a statement, or the
    ``COMMIT``, sent after the end: the server ended the session before it came, so it
    was not applied); else, before any ``COMMIT``, by a lost connection (an error with no
    server code, or one of class 08) in a transaction begun longer than the idle limit
    ago. A worker that cannot tell (its server speaks another language, or its clock did
    not run while it was stopped) fails or retries as after any lost connection.
    """
    code = getattr(exc, "sqlstate", None)
    if code == IDLE_ENDED[0] or IDLE_ENDED[1] in str(exc):
        return True
    lost = code is None or str(code).startswith("08")
    waited = time.monotonic() - state.since
    return not state.committing and bool(idle) and lost and waited >= idle


def _failure(
    exc: BaseException, location: str, limits: Limits, *, ended: bool, creating: bool
) -> str:
    """Say in plain words why a transaction of the journal at *location* failed (*exc*)."""
    unsent = ", and the task was not sent" if creating else ""
    stopped = "Ctrl-Z, SIGSTOP, a debugger, a paused machine"
    if ended:
        return (
            f"the database of the journal {location} ended this worker's session: it sat "
            f"inside a journal transaction for {_longer(limits.idle)} (the database's "
            "idle_in_transaction_session_timeout), as when the process is stopped "
            f"({stopped}) in the middle of a journal write, and other workers went past its "
            f"locks; nothing of that write was kept{unsent}"
        )
    if _lock_wait(exc):
        idle = f" after {_seconds(limits.idle)}" if limits.idle else ""
        return (
            f"the journal {location} is locked: another worker has held the journal's lock "
            f"for {_longer(limits.lock)} (the database's lock_timeout); it may be stopped "
            f"({stopped}) or hung, or another program's session holds it. Nothing was "
            f"written{unsent}; try again once it goes on or ends (the database ends a "
            f"stopped worker's session{idle})"
        )
    return f"the journal {location} failed: {_told(exc)}"


#: How asyncpg begins its words on an argument it cannot encode, before quoting it.
_ARGUMENT = re.compile(
    r"invalid input for query argument \$\d+(?: in element #\d+ of executemany\(\) sequence)?: "
)


def _told(exc: BaseException) -> str:
    """Return the driver's words on *exc*, with no value of a row in them.

    ``str()`` of a server's error appends its DETAIL (and HINT), where the server quotes
    the row a constraint refused ("Failing row contains (...)", "Key (...)=(...) already
    exists"): only its message is kept, and its SQLSTATE (but P0001's, a ``RAISE`` of a
    function: its message is all it says). An argument asyncpg cannot encode is named,
    not quoted (it quotes its start), with why if that is a codec's words (they quote a
    character, not the text).
    """
    code = getattr(exc, "sqlstate", None)
    text = str(exc.args[0]) if code is not None and exc.args else str(exc)
    argument = _ARGUMENT.match(text)
    if argument is not None:
        cause = exc.__cause__
        why = f" ({cause})" if isinstance(cause, UnicodeError) else ""
        return argument.group()[:-2] + why
    return text if code is None or code == RAISED else f"{text} (SQLSTATE {code})"


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _longer(limit: float) -> str:
    return f"longer than {_seconds(limit)}" if limit else "too long"


def _unsent(exc: BaseException) -> bool:
    """Whether the driver refused to send a statement at all (*exc* raised before sending).

    asyncpg raises "cannot switch to state N; another operation (M) is in progress"
    before writing anything, when the connection's server already ended it; and "cannot
    call Transaction.commit(): the underlying connection is closed" when it knew so.
    """
    name, text = type(exc).__name__, str(exc)
    return (name == "InternalClientError" and "cannot switch to state" in text) or (
        name == "InterfaceError" and "the underlying connection is closed" in text
    )


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
