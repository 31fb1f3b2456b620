"""How the journal's stores turn rows into values, and the checks they share.

Both stores (SQLite and PostgreSQL) select the same columns in the same order.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from ._exceptions import JournalError, LeaseLostError, ZImageError
from ._idempotency import new_key
from ._journal_records import JournalItem, JournalRecord, JournalState
from ._manifest import fingerprint
from ._models import GenerationRequest

__all__ = [
    "ITEM_COLUMNS",
    "ITEM_LEASE_COLUMNS",
    "RECORD_COLUMNS",
    "changed_items",
    "check_lease_seconds",
    "enqueue_rows",
    "item_from_row",
    "item_refusal",
    "paths_json",
    "readable_rows",
    "record_from_row",
    "refuse_changed",
    "storable",
]


#: The columns of a create, in the order :func:`record_from_row` reads them.
RECORD_COLUMNS = (
    "key, fingerprint, request, model, size, state, base_url, expected_cost,"
    " credits_reserved, task_id, completed_at, paths, error_code, error_message, batch_id,"
    " item_index, created_at, updated_at"
)
#: The columns of a batch item, in the order :func:`item_from_row` reads them.
ITEM_COLUMNS = "batch_id, idx, fingerprint, request, key, claimed_by, lease_until, settled"


#: What neither store can hold in text: NUL (PostgreSQL) and lone surrogates (both).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str | None) -> str | None:
    r"""Return *text* (a server's error, say) fit for either store: U+FFFD for NUL and surrogates.

    >>> storable("nul \x00 and \udc80") == "nul \ufffd and \ufffd"
    True
    """
    return None if text is None else _UNSTORABLE.sub("\ufffd", text)


def paths_json(paths: Iterable[Path]) -> str:
    """Return saved *paths* as either store keeps them: a JSON list of absolute paths.

    Relative paths would name other files for a rerun from another folder (its missing
    images then never looked for, and never fetched again).
    """
    return json.dumps([os.path.abspath(path) for path in paths])


def _float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def record_from_row(row: Sequence[object]) -> JournalRecord:
    """Build a record from a row of :data:`RECORD_COLUMNS` (either store's).

    Raises ValueError naming the row (its key) if the row cannot be read.
    """
    try:
        return _record(row)
    except (ValueError, TypeError, IndexError) as exc:
        key = row[0] if row else None
        raise ValueError(f"the create with key {key!r}: {exc}") from exc


def _record(row: Sequence[object]) -> JournalRecord:
    paths = json.loads(str(row[11]))
    if not isinstance(paths, list) or not all(isinstance(path, str) for path in paths):
        raise ValueError(f"paths is {row[11]!r}, not a list of file paths")
    return JournalRecord(
        key=str(row[0]),
        fingerprint=str(row[1]),
        request_json=str(row[2]),
        model=str(row[3]),
        size=str(row[4]) or None,
        state=JournalState(row[5]),
        base_url=str(row[6]),
        expected_cost=_float(row[7]),
        credits_reserved=_float(row[8]),
        task_id=None if row[9] is None else str(row[9]),
        completed_at=_float(row[10]),
        paths=tuple(Path(p) for p in paths),
        error_code=None if row[12] is None else str(row[12]),
        error_message=None if row[13] is None else str(row[13]),
        batch_id=None if row[14] is None else str(row[14]),
        item_index=None if row[15] is None else _index(row[15]),
        created_at=float(row[16]),  # type: ignore[arg-type]
        updated_at=float(row[17]),  # type: ignore[arg-type]
    )


def _index(value: object) -> int:
    """Return an item index read from a row: an int >= 0, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"the item index is {value!r}, not a number >= 0")
    return value


def item_from_row(row: Sequence[object], record: JournalRecord | None) -> JournalItem:
    """Build an item from a row of :data:`ITEM_COLUMNS` and the item's current create.

    Raises ValueError naming the item if the row cannot be read.
    """
    try:
        return JournalItem(
            batch_id=str(row[0]),
            index=_index(row[1]),
            fingerprint=str(row[2]),
            request_json=str(row[3]),
            key=str(row[4]),
            claimed_by=None if row[5] is None else str(row[5]),
            lease_until=_float(row[6]),
            settled=bool(row[7]),
            record=record,
        )
    except (ValueError, TypeError, IndexError) as exc:
        raise ValueError(f"item {row[1]!r} of batch {row[0]!r}: {exc}") from exc


def changed_items(
    stored: Mapping[int, tuple[str, JournalState | None]],
    requests: Sequence[GenerationRequest],
) -> tuple[list[int], list[int]]:
    """Split stored items whose request differs from *requests* by whether it may be changed.

    *stored* maps each index to the stored fingerprint and the state of the item's
    create. Returns (indexes that may take the new request, indexes that may not because
    their create may have a task). An index past the end of *requests* (a shortened
    list) is refused if its create may have a task; one never begun (no create, or a
    refused one) is neither: it stays as it is, for a longer list to run later, and a
    batch leaves it out.
    """
    replace, refuse = [], []
    for index, (stored_fingerprint, state) in sorted(stored.items()):
        if index < len(requests) and fingerprint(requests[index]) == stored_fingerprint:
            continue
        if state is None or state is JournalState.REJECTED:
            if index < len(requests):
                replace.append(index)
        else:
            refuse.append(index)
    return replace, refuse


def enqueue_rows(
    location: str,
    batch_id: str,
    requests: Sequence[GenerationRequest],
    stored: Iterable[Sequence[object]],
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Return the item rows :meth:`Journal.enqueue` updates and inserts, or refuse.

    *stored* are the batch's items as ``(idx, fingerprint, state of its create)``.
    Returns the parameters of ``UPDATE ... SET fingerprint, request, key WHERE batch_id,
    idx`` (changed items with no task, given a new key) and of ``INSERT (batch_id, idx,
    fingerprint, request, key)`` (new items). Raises :class:`JournalError` for changed
    items whose create may have a task (:func:`refuse_changed`).
    """
    try:
        known = {
            _index(index): (str(print_), None if state is None else JournalState(state))
            for index, print_, state in stored
        }
    except ValueError as exc:
        raise ValueError(f"an item of batch {batch_id!r}: {exc}") from exc
    replace, refuse = changed_items(known, requests)
    if refuse:
        raise refuse_changed(location, batch_id, refuse, count=len(requests))
    rows = [
        (fingerprint(request), json.dumps(request.to_json(), sort_keys=True, ensure_ascii=False))
        for request in requests
    ]
    updates: list[tuple[object, ...]] = [
        (*rows[index], new_key(), batch_id, index) for index in replace
    ]
    inserts: list[tuple[object, ...]] = [
        (batch_id, index, *row, new_key()) for index, row in enumerate(rows) if index not in known
    ]
    return updates, inserts


@contextlib.contextmanager
def readable_rows(location: str) -> Iterator[None]:
    """Turn a row that cannot be read (a ValueError, TypeError...) into :class:`JournalError`."""
    try:
        yield
    except (ValueError, TypeError, IndexError) as exc:
        if isinstance(exc, ZImageError):
            raise
        if isinstance(exc, UnicodeEncodeError):  # a write, not a row read back
            raise JournalError(f"the journal {location} cannot store a text: {exc}") from exc
        raise JournalError(
            f"the journal {location} holds a row that cannot be read ({exc}); "
            "was it changed by hand?"
        ) from exc


def refuse_changed(
    location: str, batch_id: str, refused: Sequence[int], *, count: int
) -> JournalError:
    """Return the error for batch items whose request changed after their create was sent.

    *count* is the number of items the batch has now: an index past it is an item cut
    off the end of the list.
    """
    edited = [i for i in refused if i < count]
    gone = [i for i in refused if i >= count]
    what = []
    if edited:
        what.append(
            f"{len(edited)} item(s) whose request has changed (item index {_shown(edited)})"
        )
    if gone:
        what.append(
            f"{len(gone)} item(s) past the end of its {count} item(s) (item index {_shown(gone)})"
        )
    if not gone:
        remedy = "restore those items"
    elif not edited:
        remedy = "put them back at the end"
    else:
        remedy = "restore the changed items and put the others back at the end"
    return JournalError(
        f"the journal {location} holds creates for {' and '.join(what)} of batch "
        f"{batch_id!r}; a task is never mixed with another request, nor left behind by "
        f"its batch - {remedy}, or use another batch id"
    )


def _shown(indexes: Sequence[int]) -> str:
    return ", ".join(str(i) for i in indexes[:10]) + (" ..." if len(indexes) > 10 else "")


#: The batch item's columns :func:`item_refusal` reads, in its order.
ITEM_LEASE_COLUMNS = "claimed_by, key, lease_until"


def item_refusal(
    record: JournalRecord, worker_id: str | None, item: Sequence[object] | None, now: float
) -> JournalError | None:
    """Return the error refusing to begin batch item *record*, or None.

    *item* is the item's row of :data:`ITEM_LEASE_COLUMNS` (None: no such row). With a
    worker, it must hold the item's lease (:func:`_lease_refusal`); without one, no
    worker may hold it on a live lease (:func:`_held_refusal`).
    """
    holder, key, until = item or (None, None, None)
    if worker_id is not None:
        return _lease_refusal(record, worker_id, holder, key)
    return _held_refusal(record, holder, until, now)


def _lease_refusal(
    record: JournalRecord, worker_id: str, claimed_by: object, key: object
) -> JournalError | None:
    """Return the error refusing *worker_id* to begin *record* for a batch item, or None.

    The item must be claimed by *worker_id*. A lease that ran out still counts while
    nobody claimed the item since (a claim writes its own ``claimed_by``), as it does
    for :meth:`Journal.renew`: a worker whose renewal came late keeps its item.
    """
    if claimed_by != worker_id:
        return LeaseLostError(
            f"worker {worker_id!r} does not hold the lease on item {record.item_index} of "
            f"batch {record.batch_id!r} (held by {claimed_by!r}); nothing was sent - claim "
            "the item again",
            batch_id=record.batch_id,
            index=record.item_index,
            worker_id=worker_id,
        )
    if key != record.key:
        return JournalError(
            f"item {record.item_index} of batch {record.batch_id!r} is sent with key "
            f"{key!r}, not {record.key!r}; begin the item's create with the item's key"
        )
    return None


def _held_refusal(
    record: JournalRecord, claimed_by: object, lease_until: object, now: float
) -> JournalError | None:
    """Return the error refusing to begin batch item *record* without a worker, or None.

    A create begun with no worker (``Session.recover`` resending a batch item) must not
    send an item a worker holds on a lease still running at *now* (the store's clock):
    that worker may be sending it.
    """
    if claimed_by is None or lease_until is None or float(lease_until) <= now:  # type: ignore[arg-type]
        return None
    return JournalError(
        f"item {record.item_index} of batch {record.batch_id!r} is held by worker "
        f"{claimed_by!r} for another {float(lease_until) - now:.0f} s; nothing was sent - "  # type: ignore[arg-type]
        "it is left to that worker (run the batch, or wait until the lease runs out)"
    )


def check_lease_seconds(lease_seconds: float) -> float:
    """Return *lease_seconds* if usable (a number >= 0), else raise ValueError."""
    if isinstance(lease_seconds, bool) or not lease_seconds >= 0:
        raise ValueError(f"lease_seconds must be a number of seconds >= 0, got {lease_seconds!r}")
    return float(lease_seconds)
