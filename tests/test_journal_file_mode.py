"""The SQLite journal file's mode: a new one is its owner's only, an existing one is kept.

The file holds every request body as sent (a ``callback_url`` whose query is often a
token) and every idempotency key. SQLite gives its companion files (``-journal``,
``-wal``, ``-shm``) the mode of the database file, so they follow it.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zimage_async import JournalError, Session
from zimage_async._journal import open_journal
from zimage_async._journal_sqlite import SqliteJournal
from zimage_async.emulator import Emulator

from .conftest import FAST_POLL, FAST_RETRY

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX permissions")


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The process umask set to 022 (new files readable by all) for the test, then restored."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _session(emulator: Emulator, journal: Path) -> Session:
    return Session(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        poll=FAST_POLL,
        retry=FAST_RETRY,
        journal=journal,
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@posix_only
@pytest.mark.usefixtures("umask_022")
async def test_a_new_journal_file_is_readable_by_its_owner_only(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A journal file the session creates has mode 0600 under umask 022."""
    path = tmp_path / "out" / "zimage-journal.sqlite"
    async with _session(emulator, path) as zs:
        assert _mode(path) == 0o600
        await zs.submit("a cat")
    assert _mode(path) == 0o600


@posix_only
@pytest.mark.usefixtures("umask_022")
async def test_the_wal_files_of_a_new_journal_are_readable_by_their_owner_only(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A new journal switched to WAL: the -wal and -shm files its writes make are 0600."""
    path = tmp_path / "zimage-journal.sqlite"
    await (await open_journal(path)).close()
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA journal_mode=WAL").fetchone() == ("wal",)
    finally:
        raw.close()
    async with _session(emulator, path) as zs:
        await zs.submit("a cat")
        for suffix in ("-wal", "-shm"):
            companion = path.with_name(path.name + suffix)
            assert companion.exists(), suffix
            assert _mode(companion) == 0o600, suffix


@posix_only
@pytest.mark.usefixtures("umask_022")
async def test_the_rollback_file_of_a_new_journal_is_readable_by_its_owner_only(
    tmp_path: Path,
) -> None:
    """A write to a new journal in use makes a -journal file of mode 0600."""
    path = tmp_path / "zimage-journal.sqlite"
    journal = await SqliteJournal.open(path)
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        raw.execute("BEGIN IMMEDIATE")
        raw.execute("INSERT INTO zimage_journal_meta VALUES ('probe', 'x')")
        companion = path.with_name(path.name + "-journal")
        assert companion.exists()
        assert _mode(companion) == 0o600
        raw.execute("ROLLBACK")
    finally:
        raw.close()
        await journal.close()


@posix_only
@pytest.mark.usefixtures("umask_022")
@pytest.mark.parametrize("content", ["journal", "empty"])
async def test_an_existing_journal_file_keeps_its_mode(
    content: str, emulator: Emulator, tmp_path: Path
) -> None:
    """A journal file (or an empty file) of mode 0640 is used, and stays 0640."""
    path = tmp_path / "zimage-journal.sqlite"
    if content == "journal":
        await (await open_journal(path)).close()
    else:
        path.write_bytes(b"")
    path.chmod(0o640)
    async with _session(emulator, path) as zs:
        await zs.submit("a cat")
        assert len(await zs.unfinished()) == 1
    assert _mode(path) == 0o640


async def test_a_symbolic_link_at_the_journal_path_is_still_refused(tmp_path: Path) -> None:
    """A link at the path of a new journal is refused; its target keeps content and mode."""
    target = tmp_path / "target"
    target.write_bytes(b"kept")
    target.chmod(0o644)
    link = tmp_path / "zimage-journal.sqlite"
    link.symlink_to(target)
    with pytest.raises(JournalError, match="symbolic link"):
        await open_journal(link)
    assert link.is_symlink()
    assert target.read_bytes() == b"kept"
    if os.name == "posix":
        assert _mode(target) == 0o644


@pytest.mark.usefixtures("umask_022")
async def test_two_opens_racing_to_create_a_journal_both_succeed(tmp_path: Path) -> None:
    """Two opens of the same new path at once: one creates the file, both use it."""
    path = tmp_path / "zimage-journal.sqlite"
    journals = await asyncio.gather(SqliteJournal.open(path), SqliteJournal.open(path))
    for journal in journals:
        assert await journal.unfinished() == []
        await journal.close()
    if os.name == "posix":
        assert _mode(path) == 0o600


async def test_a_file_created_after_the_link_check_is_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file another process creates between the link check and the create is opened."""
    path = tmp_path / "zimage-journal.sqlite"
    is_symlink = Path.is_symlink

    def racing(self: Path, *args: Any, **kwargs: Any) -> bool:
        found = is_symlink(self, *args, **kwargs)
        if self == path.absolute() and not self.exists():
            os.close(os.open(self, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        return found

    monkeypatch.setattr(Path, "is_symlink", racing)
    journal = await SqliteJournal.open(path)
    try:
        assert await journal.unfinished() == []
    finally:
        await journal.close()
    assert path.is_file()
