"""Saved images outlive a power cut whenever a record says they are saved.

A batch's journal is flushed to the disk (SQLite, ``synchronous=FULL``) when it records
an image as saved; the image itself must be on the disk first, or a power cut leaves a
journal that trusts an empty file and never fetches the paid image again. So a batch
saves with ``durable=True``: the temporary file is flushed (``fsync``) before it is
renamed into place, and its folder after, so that the rename is kept too; so does a
session with a journal. A plain ``save()`` does not pay for that unless asked.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from zimage_async import Session
from zimage_async.emulator import Emulator

Events = list[tuple[str, str]]


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> Events:
    """Record each fsync (of a file or a folder, by path) and each rename, in order."""
    seen: Events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        mode = os.fstat(fd).st_mode
        kind = "fsync folder" if stat.S_ISDIR(mode) else "fsync file"
        seen.append((kind, os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        seen.append(("rename", str(Path(dst).resolve())))
        seen.append(("renamed from", str(Path(src).resolve())))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return seen


def _check_durable(events: Events, saved: Path) -> None:
    """The file's bytes were flushed before the rename, and its folder after it."""
    final = str(saved.resolve())
    rename = events.index(("rename", final))
    temp = events[rename + 1][1]
    assert ("fsync file", temp) in events[:rename], events
    assert ("fsync folder", str(saved.parent.resolve())) in events[rename:], events


async def test_a_durable_save_flushes_the_file_then_its_folder(
    zs: Session, tmp_path: Path, events: Events
) -> None:
    """``save(durable=True)``: fsync of the temporary file, rename, fsync of the folder."""
    paths = await (await zs.submit("a cat")).save(tmp_path / "out", durable=True)
    assert len(paths) == 1
    _check_durable(events, paths[0])


async def test_a_plain_save_does_not_flush(zs: Session, tmp_path: Path, events: Events) -> None:
    """Without ``durable``, no fsync: the default stays as fast as a plain file write."""
    paths = await (await zs.submit("a cat")).save(tmp_path / "out")
    assert paths[0].is_file()
    assert not [event for event in events if event[0].startswith("fsync")]


async def test_a_batch_saves_every_image_durably(
    zs: Session, tmp_path: Path, events: Events
) -> None:
    """Each image a batch journals as saved was flushed, with its folder, before."""
    out = tmp_path / "out"
    saved: list[Path] = []
    async with zs.generate_many(
        ["a cat", "a dog", "a cow"], output_dir=out, journal=tmp_path / "j.sqlite"
    ) as batch:
        async for item in batch:
            assert item.ok, item.error
            saved.extend(item.paths)
    assert len(saved) == 3
    for path in saved:
        _check_durable(events, path)


async def test_a_session_journal_saves_durably_unless_told_not_to(
    emulator: Emulator, tmp_path: Path, events: Events
) -> None:
    """The session's journal records saved paths: they are flushed first, by default."""
    async with Session(
        api_key=emulator.api_key, base_url=emulator.base_url, journal=tmp_path / "j.sqlite"
    ) as session:
        durable = await (await session.submit("a cat")).save(tmp_path / "a")
        _check_durable(events, durable[0])
        events.clear()
        plain = await (await session.submit("a dog")).save(tmp_path / "b", durable=False)
        assert plain[0].is_file()
        assert not [event for event in events if event[0].startswith("fsync")]
