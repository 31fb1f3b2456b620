"""The SQLite journal's file: its schema, how it is opened, and manifest takeover.

Used by :mod:`._journal_sqlite`; the statements here run in the journal's own thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

from ._exceptions import JournalError
from ._idempotency import keyless_import_key, new_key
from ._journal import IN_MEMORY_PROBLEM, is_in_memory_name
from ._journal_records import (
    JournalItem,
    JournalRecord,
    JournalState,
    request_from_json,
)
from ._journal_rows import (
    ITEM_COLUMNS,
    RECORD_COLUMNS,
    item_from_row,
    record_from_row,
)
from ._journal_spend import Spend, summarize_spend
from ._journal_totals import SPEND, scope_of, set_up_totals
from ._manifest import ManifestRow, RowState, read_manifest
from ._outcome import CreateVerdict, Stage, judge_create

__all__ = [
    "FORMAT",
    "IN_MEMORY",
    "SCHEMA",
    "connect",
    "get_record",
    "item_rows",
    "locked",
    "price_table",
    "spend_of",
    "transaction",
]

FORMAT = "zimage-journal/1"
#: What SQLite opens in memory: the package's own journal for a batch without one.
IN_MEMORY = ":memory:"
#: Milliseconds a write waits for another process's transaction on the file to end.
BUSY_TIMEOUT_MS = 30_000
#: SQLite's primary result code of a write that waited that long in vain.
_SQLITE_BUSY = 5

SCHEMA = """
CREATE TABLE IF NOT EXISTS zimage_journal_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS zimage_creates (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    request TEXT NOT NULL,
    model TEXT NOT NULL,
    size TEXT NOT NULL,
    state TEXT NOT NULL,
    base_url TEXT NOT NULL,
    expected_cost REAL,
    credits_reserved REAL,
    task_id TEXT,
    completed_at REAL,
    paths TEXT NOT NULL DEFAULT '[]',
    error_code TEXT,
    error_message TEXT,
    batch_id TEXT,
    item_index INTEGER,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS zimage_creates_state ON zimage_creates (state);
CREATE INDEX IF NOT EXISTS zimage_creates_batch ON zimage_creates (batch_id, item_index);
CREATE INDEX IF NOT EXISTS zimage_creates_task ON zimage_creates (task_id);
CREATE TABLE IF NOT EXISTS zimage_prices (
    model TEXT NOT NULL,
    size TEXT NOT NULL,
    credits REAL NOT NULL,
    seen_at REAL NOT NULL,
    PRIMARY KEY (model, size)
);
CREATE TABLE IF NOT EXISTS zimage_batch_items (
    batch_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    request TEXT NOT NULL,
    key TEXT NOT NULL,
    claimed_by TEXT,
    lease_until REAL,
    settled INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (batch_id, idx)
);
"""


def locked(location: Path | str, exc: sqlite3.Error) -> JournalError | None:
    """Return the error of a write that waited out the busy timeout, or None for another.

    SQLite's "database is locked": another process held the file's write lock all that
    time, such as a worker stopped (Ctrl-Z, SIGSTOP) or hung in the middle of a write.
    """
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+; before, the text says it
    if code is None and str(exc) != "database is locked":
        return None
    if code is not None and code & 0xFF != _SQLITE_BUSY:
        return None
    return JournalError(
        f"the journal {location} stayed locked by another process for "
        f"{BUSY_TIMEOUT_MS / 1000:g} s ({exc}): a process stopped or hung in the middle of "
        "a journal write holds the lock; let it go on or end it, then run again"
    )


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One ``BEGIN IMMEDIATE`` transaction, rolled back if its body raises.

    SQLite may have rolled the transaction back by itself (a full disk, out of memory):
    then there is nothing to roll back, and the body's error is the one raised.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # keep the cause, not the rollback's
                db.execute("ROLLBACK")
        raise


def connect(path: Path | None, clock: Callable[[], float]) -> sqlite3.Connection:
    """Open (or create) the journal file at *path*; a symbolic link there is refused.

    The file is opened by its absolute path (:func:`_file`), so that no name is read as
    anything else: ``file:x`` is the file of that name, never an SQLite URI. A link
    planted where a journal is kept (``OUT/zimage-journal.sqlite``) would have the
    journal written into whatever file it names. What the file holds is checked
    before anything is written to it (:func:`_meta`): a file of another format, or
    another application's database, is refused and left as it was. *path* None opens
    the package's own journal in memory (:data:`IN_MEMORY`), which no name reaches.
    """
    where = IN_MEMORY if path is None else path
    try:
        db = sqlite3.connect(IN_MEMORY if path is None else _file(path), isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise JournalError(f"cannot open the journal {where}: {exc}") from exc
    try:
        db.execute("PRAGMA synchronous=FULL")
        db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_MS)}")
        db.execute("PRAGMA recursive_triggers=OFF")  # what the spend totals count on
        _meta(db, where)  # reads only: a file refused here is left as it was
        with transaction(db):
            _set_up(db, _meta(db, where), clock)  # again: another process may have set it up
    except JournalError:
        db.close()
        raise
    except sqlite3.OperationalError as exc:  # a full disk, a read-only file: not its content
        db.close()
        raise locked(where, exc) or JournalError(
            f"cannot write the journal {where} ({exc}): make room, or pass another journal path"
        ) from exc
    except sqlite3.DatabaseError as exc:
        db.close()
        raise JournalError(
            f"{where} is not a zimage journal ({exc}); pass another journal path. If it is"
            " one that was damaged, keep it: it may hold the only record of paid creates"
            " (`sqlite3 FILE .recover` can read what is left)"
        ) from exc
    return db


def _file(path: Path) -> Path:
    """Return the absolute path of the journal file *path*, its folder made if needed.

    A name SQLite would keep in memory is refused (a journal that forgets everything
    at a restart), and so is a symbolic link at the absolute path, the one opened. A
    new file is created readable and writable by its owner only (:func:`_create`).
    """
    if is_in_memory_name(path):
        raise JournalError(
            f"the journal {path} is refused: {IN_MEMORY_PROBLEM}; pass a path to a journal file"
        )
    file = path.absolute()
    file.parent.mkdir(parents=True, exist_ok=True)
    if file.is_symlink():
        raise JournalError(
            f"the journal {path} is a symbolic link (to {os.readlink(file)}), which is "
            "not followed: remove it, or pass the file it names as the journal"
        )
    _create(file)
    return file


def _create(file: Path) -> None:
    """Create *file* empty with mode 0600 unless it exists (then kept as it is, mode and all).

    It holds request bodies (a ``callback_url``'s query is often a token) and idempotency
    keys; SQLite gives its -journal, -wal and -shm files its mode. No link is followed.
    """
    new = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(file, new | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError:
        if os.path.lexists(file):  # made before, maybe by another process just now: kept
            return
        raise
    try:
        if hasattr(os, "fchmod"):  # a umask may have taken the owner's bits off
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _meta(db: sqlite3.Connection, path: Path | str) -> dict[str, str]:
    """Return the journal's meta ({} if none yet), or refuse a file that is not one to open.

    A journal of another format is refused (a newer one may have other tables and
    columns: nothing of this version is written into it), and so is a database that
    holds other tables and no journal (another application's; a batch manifest of an
    earlier version is taken over). A new or empty file, and the journal tables of a
    set-up cut off before its meta was written, have no meta yet.
    """
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if _META in tables:
        meta = {str(k): str(v) for k, v in db.execute("SELECT key, value FROM zimage_journal_meta")}
        if meta and meta.get("format") != FORMAT:
            raise JournalError(
                f"{path} is a zimage journal of format {meta.get('format')!r}, which this "
                f"version does not read (it reads {FORMAT!r}); it was left as it was - "
                "upgrade zimage-async or pass another path"
            )
        return meta
    others = sorted(name for name in tables if not name.startswith(("zimage_", "sqlite_")))
    if others and not (set(others) <= _MANIFEST_TABLES and read_manifest(db) is not None):
        shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
        raise JournalError(
            f"{path} is not a zimage journal: it is an SQLite database holding other tables "
            f"({shown}) and no journal, and was left as it was; pass a new file's path"
        )
    return {}


def _set_up(db: sqlite3.Connection, meta: dict[str, str], clock: Callable[[], float]) -> None:
    """Create what the journal lacks (inside a transaction), given its *meta* (:func:`_meta`).

    The tables and indexes of this format that an existing journal lacks (one written
    before the task index) are added; a new one gets its meta, and takes a batch
    manifest's rows over.
    """
    for statement in SCHEMA.split(";"):  # not executescript: it would commit first
        if statement.strip():
            db.execute(statement)
    set_up_totals(db)
    if not meta:
        meta = {"format": FORMAT, "created": str(clock())}
        manifest = read_manifest(db)
        if manifest is not None:
            meta["imported_manifest"] = manifest[0]
            _import_manifest(db, *manifest, now=clock())
        db.executemany("INSERT INTO zimage_journal_meta VALUES (?, ?)", meta.items())


_META = "zimage_journal_meta"
#: The tables of a batch manifest of an earlier version, which a journal takes over.
_MANIFEST_TABLES = frozenset({"meta", "items"})
_MANIFEST_STATES = {state: JournalState(state.value) for state in RowState}
_SETTLED = frozenset(
    {JournalState.SAVED, JournalState.FAILED, JournalState.UNCERTAIN, JournalState.REJECTED}
)
#: How versions before idempotency keys stored a refused create's answer (``str()`` of
#: its APIError): ``POST <url> answered <status> (<type>): <message>``, no type if the
#: answer had no error envelope.
_ANSWERED = re.compile(r"(?:POST \S+ )?answered (?P<status>\d{3})(?: \((?P<type>[^()]*)\))?: ")
_CUT_OFF = (
    "cut off while submitting in a batch manifest of an earlier version, which sent the "
    "create without an idempotency key: a task may exist; check your usage before "
    "resubmitting it (under a new key)"
)


def _imported_state(row: ManifestRow) -> tuple[JournalState, str | None]:
    """Return the journal state and error message of manifest row *row*.

    A row with a key keeps its state: a rerun resends it only with that key. A row of a
    manifest written before keys (its create was sent without one) that may have a
    task whose id is unknown becomes ``uncertain`` (its new key from
    :func:`keyless_import_key`), reported and sent again only when resubmitting
    uncertain creates is asked for: one cut off while ``submitting`` or left
    ``uncertain``, and one ``rejected`` on an answer after which :func:`judge_create`
    finds a task possible (those versions took a proxy's page without the API's
    envelope, a 303, or the API's 429, 502 or 503 for a refusal).
    """
    state = _MANIFEST_STATES[row.state]
    if row.idempotency_key is not None:
        return state, row.error_message
    if row.state is RowState.SUBMITTING:
        return JournalState.UNCERTAIN, _CUT_OFF
    answer = _ANSWERED.match(row.error_message or "")
    if row.state is RowState.REJECTED and answer is not None:
        verdict = judge_create(
            Stage.ANSWERED, status=int(answer["status"]), error_type=answer["type"]
        )
        if verdict in (CreateVerdict.UNCERTAIN, CreateVerdict.RESEND_ONCE):
            return JournalState.UNCERTAIN, row.error_message
    return state, row.error_message


def _import_manifest(
    db: sqlite3.Connection, batch_id: str, rows: dict[int, ManifestRow], *, now: float
) -> None:
    """Make a manifest's rows the items and creates of *batch_id* (inside a transaction)."""
    for index, row in sorted(rows.items()):
        request = request_from_json(row.request)
        state, error_message = _imported_state(row)
        key = row.idempotency_key
        if key is None:  # sent without one: a new one, marked so if a task may exist
            key = keyless_import_key() if state is JournalState.UNCERTAIN else new_key()
        record = JournalRecord.for_request(request, key=key, base_url=row.base_url)
        db.execute(
            "INSERT INTO zimage_batch_items (batch_id, idx, fingerprint, request, key,"
            " settled) VALUES (?, ?, ?, ?, ?, ?)",
            (batch_id, index, row.fingerprint, record.request_json, record.key, state in _SETTLED),
        )
        db.execute(
            f"INSERT OR REPLACE INTO zimage_creates ({RECORD_COLUMNS})"  # noqa: S608 (column lists are constants)
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.key,
                row.fingerprint,
                record.request_json,
                record.model,
                record.size or "",
                state.value,
                row.base_url,
                None,
                None,
                row.task_id,
                row.completed_at,
                json.dumps([str(p) for p in row.paths]),
                row.error_code,
                error_message,
                batch_id,
                index,
                now,
                now,
            ),
        )


def get_record(db: sqlite3.Connection, key: str) -> JournalRecord | None:
    query = f"SELECT {RECORD_COLUMNS} FROM zimage_creates WHERE key = ?"  # noqa: S608 (constants)
    row = db.execute(query, (key,)).fetchone()
    return None if row is None else record_from_row(row)


def price_table(db: sqlite3.Connection) -> dict[tuple[str, str], float]:
    return {
        (model, size): float(credits)
        for model, size, credits in db.execute("SELECT model, size, credits FROM zimage_prices")
    }


def spend_of(
    db: sqlite3.Connection,
    prices: dict[tuple[str, str], float],
    *,
    batch_id: str | None,
    excluding: str = "",
) -> Spend:
    rows = db.execute(SPEND, (excluding, scope_of(batch_id)))
    return summarize_spend(rows, prices)


def item_rows(db: sqlite3.Connection, batch_id: str) -> list[JournalItem]:
    columns = ", ".join(f"i.{c.strip()}" for c in ITEM_COLUMNS.split(","))
    record_columns = ", ".join(f"c.{c.strip()}" for c in RECORD_COLUMNS.split(","))
    found = []
    for row in db.execute(
        f"SELECT {columns}, {record_columns} FROM zimage_batch_items i"  # noqa: S608 (column lists are constants)
        " LEFT JOIN zimage_creates c ON c.key = i.key WHERE i.batch_id = ? ORDER BY i.idx",
        (batch_id,),
    ):
        record = None if row[8] is None else record_from_row(row[8:])
        found.append(item_from_row(row[:8], record))
    return found
