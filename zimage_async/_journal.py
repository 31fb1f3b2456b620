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

from ._exceptions import JournalError
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

__all__ = [
    "Journal",
    "JournalItem",
    "JournalRecord",
    "JournalState",
    "ResumeAction",
    "Spend",
    "SpendGroup",
    "SpendLimit",
    "begin_refusal",
    "check_spend",
    "expected_cost",
    "is_postgres_url",
    "open_journal",
    "price_key",
    "reserved_credits",
    "resume_action",
]


def is_postgres_url(target: str | os.PathLike[str]) -> bool:
    """Whether *target* names a PostgreSQL database rather than a file."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


async def open_journal(target: str | os.PathLike[str]) -> Journal:
    """Open (creating if needed) the journal at *target*: a file path or a PostgreSQL URL.

    A path opens an SQLite file (an existing batch manifest is taken over: its items
    join the journal under the manifest's batch id). A ``postgresql://`` URL needs the
    ``postgres`` extra (asyncpg). Raises
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
