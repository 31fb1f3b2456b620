"""How the journal's stores turn rows into values, and the checks they share.

Both stores (SQLite and PostgreSQL) select the same columns in the same order.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from ._exceptions import JournalError, LeaseLostError, ZImageError
from ._idempotency import new_key
from ._journal_records import JournalItem, JournalRecord, JournalState
from ._manifest import fingerprint
from ._models import GenerationRequest
from ._secret import raise_alone

__all__ = [
    "ITEM_COLUMNS",
    "ITEM_LEASE_COLUMNS",
    "RECORD_COLUMNS",
    "UnreadableRow",
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


#: The journal's states, as a row holds them.
_STATES = ", ".join(state.value for state in JournalState)


class UnreadableRow(ValueError):
    """A journal row that cannot be read: its words name it and its column, quoting no text."""


def _paths(value: object) -> tuple[Path, ...]:
    try:
        paths = json.loads(str(value))
    except RecursionError:  # nested too deep: not paths either
        paths = None
    if not isinstance(paths, list) or not all(isinstance(path, str) for path in paths):
        raise ValueError("not a list of file paths")
    return tuple(Path(path) for path in paths)


def _index(value: object) -> int:
    """Return an item index read from a row: an int >= 0, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("not a number >= 0")
    return value


_NUMBER = (float, "a number")
#: How a column is read, and what it must be, unless it is text (read with ``str``).
_READS: dict[str, tuple[Callable[[Any], object], str]] = {
    "state": (JournalState, f"one of the journal's states ({_STATES})"),
    "paths": (_paths, "a JSON list of file paths"),
    "idx": (_index, "a number >= 0"),
    "item_index": (_index, "a number >= 0"),
    "settled": (bool, "true or false"),
    **dict.fromkeys(("expected_cost", "credits_reserved", "completed_at"), _NUMBER),
    **dict.fromkeys(("created_at", "updated_at", "lease_until"), _NUMBER),
}
#: The columns that may be NULL (read as None).
_NULLABLE = frozenset(
    {
        "expected_cost",
        "credits_reserved",
        "task_id",
        "completed_at",
        "error_code",
        "error_message",
        "batch_id",
        "item_index",
        "claimed_by",
        "lease_until",
    }
)
#: The fields of the columns named otherwise.
_FIELDS = {"request": "request_json", "idx": "index"}
_RECORD_NAMES = tuple(name.strip() for name in RECORD_COLUMNS.split(","))
_ITEM_NAMES = tuple(name.strip() for name in ITEM_COLUMNS.split(","))


def _fields(
    names: tuple[str, ...], row: Sequence[object], nullable: frozenset[str] = _NULLABLE
) -> dict[str, Any] | str:
    """Return the fields read from *row* of columns *names*, or what is wrong: no text of it."""
    if len(row) != len(names):
        return f"it has {len(row)} columns, not {len(names)}"
    fields: dict[str, Any] = {}
    name, value = "", None
    try:
        for name, value in zip(names, row, strict=True):
            read = _READS.get(name, (str, ""))[0]
            fields[_FIELDS.get(name, name)] = (
                None if value is None and name in nullable else read(value)
            )
    except (ValueError, TypeError, OverflowError):
        rule = _READS.get(name, (str, "text"))[1] + (" or NULL" if name in nullable else "")
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        shown = f"is {value}, not" if number else "is not"  # a number holds no token
        return f"its {name} column {shown} {rule}"
    return fields


def record_from_row(row: Sequence[object]) -> JournalRecord:
    """Build a record from a row of :data:`RECORD_COLUMNS` (either store's).

    Raises :class:`UnreadableRow` naming the create (its key) and the column that
    cannot be read; no value of the row (its request holds a callback URL's token).
    """
    fields = _fields(_RECORD_NAMES, row)
    if not isinstance(fields, str):
        return JournalRecord(**{**fields, "size": fields["size"] or None})
    key = row[0] if row else None
    del row  # not in this frame's locals, which error reporters send
    raise UnreadableRow(f"the create with key {key!r}: {fields}")


def item_from_row(row: Sequence[object], record: JournalRecord | None) -> JournalItem:
    """Build an item from a row of :data:`ITEM_COLUMNS` and the item's current create.

    Raises :class:`UnreadableRow` naming the item (its batch, and its index if a
    number) and the column that cannot be read; no other value of the row.
    """
    fields = _fields(_ITEM_NAMES, row)
    if not isinstance(fields, str):
        return JournalItem(**fields, record=record)
    batch_id, index = (row[0], row[1]) if len(row) > 1 else (None, None)
    del row, record
    raise UnreadableRow(f"{_item(batch_id, index)}: {fields}")


def _item(batch_id: object, index: object) -> str:
    """Name a batch item read from a row: by its index too if that is one."""
    try:
        return f"item {_index(index)} of batch {batch_id!r}"
    except ValueError:
        return f"an item of batch {batch_id!r}"


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
    known: dict[int, tuple[str, JournalState | None]] = {}
    for row in stored:
        fields = _fields(("idx", "fingerprint", "state"), row, _NULLABLE | {"state"})
        if isinstance(fields, str):
            raise UnreadableRow(f"{_item(batch_id, row[0] if row else None)}: {fields}")
        known[fields["index"]] = (fields["fingerprint"], fields["state"])
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


class readable_rows:  # a context, named like contextlib's
    """Turn a row that cannot be read (a ValueError, TypeError...) into :class:`JournalError`.

    The error chains nothing and keeps no frame below the ``with`` (:func:`raise_alone`):
    their locals hold the rows, and a row's request its callback URL's token. Errors of
    *passing* (a driver's, told by its caller) and the package's own go through as they are.
    """

    def __init__(self, location: str, passing: tuple[type[BaseException], ...] = ()) -> None:
        self.location, self.passing = location, passing

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        errors = (ValueError, TypeError, IndexError)
        if not isinstance(exc, errors) or isinstance(exc, (ZImageError, *self.passing)):
            return
        if isinstance(exc, UnicodeEncodeError):  # a write; its words (not its repr) hold no text
            message = f"the journal {self.location} cannot store a text: {exc}"
        else:
            message = (
                f"the journal {self.location} holds a row that cannot be read ({exc}); "
                "was it changed by hand?"
            )
        del exc, tb  # not in this frame's locals, which error reporters send
        raise_alone(JournalError(message))


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
