"""The journal: one durable record for every paid create, single or in a batch.

A :class:`JournalRecord` is written (state ``submitting``, with the create's
idempotency key, the request and its fingerprint, and its expected cost) *before* the
create request is sent, and rewritten after each change of state. After a restart the
journal says which creates are unfinished and how to resume each, how many credits are
reserved, and, for batches shared by several workers, which worker holds which item.

This module is the pure part: the states, the values, the decisions (spend check,
expected cost, resume action) and the abstract store API. The stores are
:mod:`._journal_sqlite` (a file, the default) and :mod:`._journal_postgres`
(``postgresql://`` URLs, several workers on one batch); :func:`open_journal` picks one.

Credits: a record costs its ``credits_reserved`` once the service has reported it, else
its ``expected_cost``, else the last ``credits_reserved`` the journal has seen for the
same model and size, else nothing. A ``rejected`` create costs nothing; every other
state counts, ``submitting`` and ``uncertain`` included (a task may have been billed).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, unquote

from ._exceptions import InvalidRequestError, JournalError
from ._journal_moves import begin_refusal
from ._journal_records import (
    JournalItem,
    JournalRecord,
    JournalState,
    ResumeAction,
    price_key,
    resume_action,
)
from ._journal_spend import (
    Spend,
    SpendGroup,
    SpendLimit,
    check_spend,
    expected_cost,
    reserved_credits,
)
from ._journal_store import Journal
from ._saving import path_text

__all__ = [
    "IN_MEMORY_PROBLEM",
    "IN_MEMORY_WORDS",
    "Journal",
    "JournalItem",
    "JournalRecord",
    "JournalState",
    "ResumeAction",
    "Spend",
    "SpendGroup",
    "SpendLimit",
    "begin_refusal",
    "check_journal_target",
    "check_spend",
    "expected_cost",
    "is_in_memory_name",
    "is_postgres_url",
    "open_batch_journal",
    "open_journal",
    "price_key",
    "reserved_credits",
    "resume_action",
]


#: Why a journal that SQLite would keep in memory is refused, after what names it.
IN_MEMORY_WORDS = "names an in-memory SQLite database, which keeps nothing across a restart"
#: The same, said of "it".
IN_MEMORY_PROBLEM = f"it {IN_MEMORY_WORDS}"


def check_journal_target(field: str, journal: object) -> None:
    """Refuse a journal that is no file path or URL, without quoting it (its password).

    A name no file system call takes (a NUL, a character the file system cannot encode)
    is refused, and so is a name SQLite would keep in memory (``:memory:``): such a
    journal forgets every create, and the credits spent, at a restart.
    """
    rule = "a file path or a postgresql:// URL"
    text = path_text(field, journal, rule)
    if not text:
        raise InvalidRequestError(field, rule, "it is empty")
    if is_in_memory_name(text):
        rule = f"a path to a journal file, or a postgresql:// URL; leave {field} out to keep none"
        raise InvalidRequestError(field, rule, IN_MEMORY_PROBLEM)


def is_in_memory_name(target: str | os.PathLike[str]) -> bool:
    """Whether SQLite, given *target* as it is, would keep the journal in memory only.

    ``:memory:``, and a ``file:`` URI (which SQLite reads when built to) naming
    ``:memory:``, with ``mode=memory``, or naming no file (a temporary database,
    deleted when closed). Such a name is refused as a journal; every other name is
    opened as the file it names, never read as a URI.

    >>> is_in_memory_name(":memory:"), is_in_memory_name("file:x?mode=memory")
    (True, True)
    >>> is_in_memory_name("journal.sqlite"), is_in_memory_name("file:journal.sqlite")
    (False, False)
    """
    name: object = os.fspath(target)
    if not isinstance(name, str):  # a path given as bytes: no text SQLite reads so
        return False
    if os.path.normpath(name) == ":memory:":  # './:memory:' is opened as ':memory:' too
        return True
    if not name.startswith("file:"):
        return False
    path, _, query = name[len("file:") :].partition("#")[0].partition("?")
    modes = parse_qs(query).get("mode", [])
    return unquote(path) in ("", ":memory:") or any(mode.lower() == "memory" for mode in modes)


def is_postgres_url(target: str | os.PathLike[str]) -> bool:
    """Whether *target* names a PostgreSQL database rather than a file."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


async def open_journal(target: str | os.PathLike[str]) -> Journal:
    """Open (creating if needed) the journal at *target*: a file path or a PostgreSQL URL.

    A path opens an SQLite file, by its absolute path (an existing batch manifest is
    taken over: its items join the journal under the manifest's batch id); a name
    SQLite would keep in memory (:func:`is_in_memory_name`) is refused. A
    ``postgresql://`` URL needs the ``postgres`` extra (asyncpg). Raises
    :class:`JournalError` if the journal cannot be opened.
    """
    if is_postgres_url(target):
        from ._journal_postgres import PostgresJournal

        try:
            return await PostgresJournal.open(str(target))
        except JournalError as refused:  # raised without the frames that hold the URL
            del target
            raise refused.with_traceback(None) from None
    if isinstance(target, str) and "://" in target:
        raise JournalError(
            f"the journal must be a file path or a postgresql:// URL, not {target.split('://')[0]}://"
        )
    from ._journal_sqlite import SqliteJournal

    return await SqliteJournal.open(Path(target))


async def open_batch_journal(target: str | os.PathLike[str] | None) -> Journal:
    """Open a batch's own journal: the one at *target*, else one in memory (None).

    The one in memory ends when closed, keeping nothing across a restart: it is for a
    batch given no journal, and no path or text given as a journal reaches it
    (:func:`open_journal` refuses ``:memory:``).
    """
    if target is not None:
        try:
            return await open_journal(target)
        except JournalError as refused:  # raised without this frame: target holds the URL
            del target
            raise refused.with_traceback(None) from None
    from ._journal_sqlite import SqliteJournal

    return await SqliteJournal.in_memory()
