"""An SQLite file that is not a journal of this format is refused, and left as it was.

The format is checked before anything is created in the file: a journal of a newer
format and another application's database keep every byte; a new file, an empty one,
a journal of this format (an older one lacking a later index) and a batch manifest are
opened as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from pathlib import Path

import pytest

from zimage_async import JournalError
from zimage_async._journal import open_journal


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _sql(path: Path, *statements: str) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        for statement in statements:
            db.execute(statement)
        db.commit()


def _names(path: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return sorted(r[0] for r in db.execute("SELECT name FROM sqlite_master"))


async def _newer(path: Path, *changes: str) -> None:
    """Make *path* a journal of a (made-up) newer format, changed by *changes*."""
    async with await open_journal(path):
        pass
    _sql(
        path,
        "UPDATE zimage_journal_meta SET value = 'zimage-journal/2' WHERE key = 'format'",
        *changes,
    )


@pytest.mark.parametrize(
    "changes",
    [
        ("DROP INDEX zimage_creates_task", "DROP TABLE zimage_prices"),
        (
            "DROP INDEX zimage_creates_task",
            "ALTER TABLE zimage_creates RENAME COLUMN task_id TO remote_id",
        ),
    ],
    ids=["tables-dropped", "column-renamed"],
)
async def test_a_journal_of_a_newer_format_is_refused_and_left_as_it_was(
    tmp_path: Path, changes: tuple[str, ...]
) -> None:
    """The refusal names the format (never "make room"); no byte of the file changes."""
    path = tmp_path / "newer.sqlite"
    await _newer(path, *changes)
    before, files = _digest(path), _files(tmp_path)
    with pytest.raises(JournalError, match="format 'zimage-journal/2'") as refused:
        await open_journal(path)
    assert "make room" not in str(refused.value)
    assert _digest(path) == before
    assert _files(tmp_path) == files


async def test_another_applications_database_is_refused_and_left_as_it_was(
    tmp_path: Path,
) -> None:
    """Tables of its own and no journal meta: not a zimage journal, named; no byte changed."""
    path = tmp_path / "app.db"
    _sql(
        path,
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)",
        "INSERT INTO customers VALUES (1, 'a')",
    )
    before, files = _digest(path), _files(tmp_path)
    with pytest.raises(JournalError, match="is not a zimage journal") as refused:
        await open_journal(path)
    assert str(path) in str(refused.value) and "customers" in str(refused.value)
    assert _digest(path) == before
    assert _files(tmp_path) == files


async def test_a_new_or_empty_file_becomes_a_journal(tmp_path: Path) -> None:
    """No file, or a file of 0 bytes: the journal's tables are created in it."""
    (tmp_path / "empty.sqlite").touch()
    for name in ("new.sqlite", "empty.sqlite"):
        async with await open_journal(tmp_path / name):
            pass
        assert "zimage_journal_meta" in _names(tmp_path / name)


async def test_a_journal_of_this_format_gets_the_later_index(tmp_path: Path) -> None:
    """A journal written before the task index opens, and the index is added."""
    path = tmp_path / "older.sqlite"
    async with await open_journal(path):
        pass
    _sql(path, "DROP INDEX zimage_creates_task")
    async with await open_journal(path):
        pass
    assert "zimage_creates_task" in _names(path)


async def test_a_journal_whose_set_up_was_cut_off_is_completed(tmp_path: Path) -> None:
    """The journal's tables without its meta (an earlier version stopped there): opened."""
    path = tmp_path / "cut.sqlite"
    async with await open_journal(path):
        pass
    _sql(path, "DROP TABLE zimage_journal_meta", "DROP TABLE zimage_batch_items")
    async with await open_journal(path):
        pass
    assert {"zimage_journal_meta", "zimage_batch_items"} <= set(_names(path))
