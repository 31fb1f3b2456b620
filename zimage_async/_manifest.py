"""The batch manifest: a SQLite file that remembers which task each batch item became.

SQLite (standard library) rather than JSONL because every change is one committed
transaction: a ``kill -9`` or a power cut leaves the file at the last commit, never with
a torn line, and an item's row is updated in place instead of replayed from a log.
``synchronous=FULL`` makes each commit durable (fsynced) before :meth:`Manifest.record`
returns, so a task id is on disk before anyone waits for the task.

Item states, in order: ``submitting`` (the create call is being sent; if the process
dies here the service may have billed a task whose id we never learnt), ``uncertain``
(the create call failed ambiguously), ``rejected`` (the service certainly made no
task), ``created`` (the task id is known), ``completed`` (the task finished; links
are valid from ``completed_at``), ``saved`` (files written), ``failed`` (the task
failed).

Each row also keeps the ``Idempotency-Key`` of the item's create call, written in the
same commit as ``submitting``, before the request is sent: a rerun that sends the item
again (after an uncertain or refused create) sends it with the same key.

The journal (:mod:`._journal`) supersedes the manifest: a manifest file opened as an
SQLite journal is taken over (:func:`read_manifest` gives the journal its batch id and
rows), and a journal file opened as a manifest is refused with a message saying so.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

import attrs

from ._exceptions import ManifestError
from ._models import GenerationRequest

__all__ = ["Manifest", "ManifestRow", "RowState", "fingerprint", "read_manifest"]

_FORMAT = "zimage-batch-manifest/1"
#: The table that marks an SQLite file as a journal (see :mod:`._journal_sqlite`).
JOURNAL_MARKER = "zimage_journal_meta"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    idx INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    request TEXT NOT NULL,
    state TEXT NOT NULL,
    task_id TEXT,
    base_url TEXT NOT NULL,
    completed_at REAL,
    paths TEXT NOT NULL DEFAULT '[]',
    error_code TEXT,
    error_message TEXT,
    updated_at REAL NOT NULL,
    idempotency_key TEXT
);
"""

#: Columns added since the first format, with their declarations: an older manifest
#: gains them when opened (their values are NULL for the rows it already holds).
_ADDED_COLUMNS = {"idempotency_key": "TEXT"}


class RowState(enum.Enum):
    """Where one batch item stands in the manifest."""

    SUBMITTING = "submitting"
    UNCERTAIN = "uncertain"
    REJECTED = "rejected"
    CREATED = "created"
    COMPLETED = "completed"
    SAVED = "saved"
    FAILED = "failed"

    @property
    def has_task(self) -> bool:
        """Whether a task was (or may have been) created and billed for the item."""
        return self is not RowState.REJECTED


def fingerprint(request: GenerationRequest) -> str:
    """Return a stable digest of what is sent for *request* (its create-call body)."""
    body = json.dumps(request.to_json(), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


@attrs.frozen(kw_only=True)
class ManifestRow:
    """One item as the manifest remembers it."""

    index: int
    fingerprint: str
    request: str = attrs.field(repr=False)
    state: RowState
    task_id: str | None
    base_url: str
    completed_at: float | None
    paths: tuple[Path, ...]
    error_code: str | None
    error_message: str | None
    #: The key the item's create was (or is being) sent with; None in older manifests.
    idempotency_key: str | None = None


class Manifest:
    """A batch's manifest file; open it with :meth:`open`, close it with :meth:`close`."""

    def __init__(self, path: Path, connection: sqlite3.Connection, batch_id: str) -> None:
        self.path = path
        self.batch_id = batch_id
        self._db = connection

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, batch_id: str) -> Manifest:
        """Open (or create) the manifest at *path* for the batch named *batch_id*.

        Raises :class:`ManifestError` if the file is not a manifest, or belongs to
        another batch.
        """
        target = Path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(target, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise ManifestError(f"cannot open the manifest {target}: {exc}") from exc
        tables = _tables(db)
        if JOURNAL_MARKER in tables and "meta" not in tables:
            db.close()
            raise ManifestError(
                f"{target} is a zimage journal, not a batch manifest; pass it as the "
                "journal (Session(journal=...), zimage --journal) instead of as a manifest"
            )
        try:
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=5000")
            db.executescript(_SCHEMA)
            have = {row[1] for row in db.execute("PRAGMA table_info(items)")}
            for column, declaration in _ADDED_COLUMNS.items():
                if column not in have:
                    db.execute(f"ALTER TABLE items ADD COLUMN {column} {declaration}")
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            if not meta:
                with db:
                    db.execute("BEGIN IMMEDIATE")
                    db.executemany(
                        "INSERT OR IGNORE INTO meta VALUES (?, ?)",
                        [
                            ("format", _FORMAT),
                            ("batch_id", batch_id),
                            ("created", str(time.time())),
                        ],
                    )
                meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            db.close()
            raise ManifestError(
                f"{target} is not a zimage batch manifest ({exc}); pass another manifest path"
            ) from exc
        if meta.get("format") != _FORMAT:
            db.close()
            raise ManifestError(
                f"{target} is not a zimage batch manifest (format {meta.get('format')!r}); "
                "pass another manifest path"
            )
        if meta.get("batch_id") != batch_id:
            db.close()
            raise ManifestError(
                f"the manifest {target} belongs to another batch ({meta.get('batch_id')!r}, "
                f"not {batch_id!r}); its tasks cannot be mixed with this one's - use another "
                "output directory or manifest path for this batch"
            )
        return cls(target, db, batch_id)

    def close(self) -> None:
        """Close the file (every change is already committed). Idempotent."""
        self._db.close()

    def rows(self) -> dict[int, ManifestRow]:
        """Every item recorded so far, by index (a row that cannot be read: ManifestError)."""
        try:
            return _rows(self._db)
        except (sqlite3.Error, ValueError, TypeError, IndexError) as exc:
            raise ManifestError(
                f"the manifest {self.path} has a row that cannot be read ({exc}); restore "
                "it from a backup, or use another manifest path (its tasks are then not "
                "resumed)"
            ) from exc

    def check(self, requests: Sequence[GenerationRequest], *, base_url: str | None) -> None:
        """Refuse to go on if an item that has a task changed, or its tasks live elsewhere.

        Raises :class:`ManifestError` naming the items, before anything is submitted.
        A *base_url* of None skips the check of where the tasks live.
        """
        changed = []
        elsewhere = []
        for index, row in self.rows().items():
            if not row.state.has_task:
                continue
            if index >= len(requests) or fingerprint(requests[index]) != row.fingerprint:
                changed.append(index)
            elif (
                base_url is not None
                and row.base_url not in (base_url,)
                and row.state is not RowState.SAVED
            ):
                elsewhere.append(index)
        if changed:
            shown = ", ".join(str(i) for i in changed[:10]) + (" ..." if len(changed) > 10 else "")
            raise ManifestError(
                f"the manifest {self.path} holds tasks for {len(changed)} item(s) whose "
                f"request has changed or is gone (item index {shown}); a task is never "
                "mixed with another request - restore those items, or use another "
                "manifest path for the changed batch",
                items=tuple(changed),
            )
        if elsewhere:
            other = self.rows()[elsewhere[0]].base_url
            raise ManifestError(
                f"the manifest {self.path} holds {len(elsewhere)} unfinished task(s) "
                f"created at {other}, not at {base_url}; resume against the same service",
                items=tuple(elsewhere),
            )

    def forget_unfinished(self, *, base_url: str) -> int:
        """Drop unfinished items whose tasks live at another *base_url*; return how many.

        For tasks of an emulator that has stopped: they can never be resumed or billed.
        """
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            cursor = self._db.execute(
                "DELETE FROM items WHERE base_url != ? AND state != ?",
                (base_url, RowState.SAVED.value),
            )
        return cursor.rowcount

    def record(
        self,
        index: int,
        request: GenerationRequest,
        state: RowState,
        *,
        base_url: str,
        task_id: str | None = None,
        completed_at: float | None = None,
        paths: Sequence[Path] = (),
        error_code: str | None = None,
        error_message: str | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        """Write the item's new state, committed and fsynced before returning.

        An *idempotency_key* of None keeps the key the row already has. A write that
        fails (a full disk, a read-only file) raises :class:`ManifestError`.
        """
        try:
            self._write(
                index, request, state, base_url, task_id, completed_at, paths,
                error_code, error_message, idempotency_key,
            )  # fmt: skip
        except (sqlite3.Error, OSError) as exc:
            raise ManifestError(
                f"cannot write to the manifest {self.path} ({exc}); is the disk full or "
                "the file read-only?"
            ) from exc

    def _write(
        self,
        index: int,
        request: GenerationRequest,
        state: RowState,
        base_url: str,
        task_id: str | None,
        completed_at: float | None,
        paths: Sequence[Path],
        error_code: str | None,
        error_message: str | None,
        idempotency_key: str | None,
    ) -> None:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT OR REPLACE INTO items (idx, fingerprint, request, state, task_id,"
                " base_url, completed_at, paths, error_code, error_message, updated_at,"
                " idempotency_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                " COALESCE(?, (SELECT idempotency_key FROM items WHERE idx = ?)))",
                (
                    index,
                    fingerprint(request),
                    json.dumps(request.to_json(), ensure_ascii=False),
                    state.value,
                    task_id,
                    base_url,
                    completed_at,
                    json.dumps([str(p) for p in paths]),
                    error_code,
                    error_message,
                    time.time(),
                    idempotency_key,
                    index,
                ),
            )


def _tables(db: sqlite3.Connection) -> set[str]:
    try:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError:
        return set()  # not a database: the schema step below says so


_ROWS = (
    "SELECT idx, fingerprint, request, state, task_id, base_url, completed_at, paths,"
    " error_code, error_message, idempotency_key FROM items"
)
#: For a manifest of the first format, read before it gains the key column.
_ROWS_WITHOUT_KEYS = _ROWS.replace("idempotency_key FROM", "NULL FROM")


def _rows(db: sqlite3.Connection) -> dict[int, ManifestRow]:
    have = {row[1] for row in db.execute("PRAGMA table_info(items)")}
    query = _ROWS if "idempotency_key" in have else _ROWS_WITHOUT_KEYS
    found = {}
    for row in db.execute(query):
        found[row[0]] = ManifestRow(
            index=row[0],
            fingerprint=row[1],
            request=row[2],
            state=RowState(row[3]),
            task_id=row[4],
            base_url=row[5],
            completed_at=row[6],
            paths=tuple(Path(p) for p in json.loads(row[7])),
            error_code=row[8],
            error_message=row[9],
            idempotency_key=row[10],
        )
    return found


def read_manifest(db: sqlite3.Connection) -> tuple[str, dict[int, ManifestRow]] | None:
    """Return the batch id and rows of the manifest in *db*, or None if it holds none.

    For the SQLite journal, which takes over a manifest file it is pointed at: the rows
    become the batch's items and creates (their states and keys are the journal's own).
    Reads only; an older manifest without keys gives rows whose key is None.
    """
    if not {"meta", "items"} <= _tables(db):
        return None
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    if meta.get("format") != _FORMAT or "batch_id" not in meta:
        return None
    return str(meta["batch_id"]), _rows(db)
