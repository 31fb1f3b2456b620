"""Saved images outlive a power cut whenever a record says they are saved.

A batch's journal is flushed to the disk (SQLite, ``synchronous=FULL``) when it records
an image as saved; the image itself must be on the disk first, or a power cut leaves a
journal that trusts an empty file and never fetches the paid image again. So a batch
saves with ``durable=True``: the temporary file is flushed (``fsync``) before it is
renamed into place, and its folder after, so that the rename is kept too; so does a
session with a journal. A plain ``save()`` does not pay for that unless asked.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import queue
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from zimage_async import Session
from zimage_async._cli_common import check_writable
from zimage_async._durable import sync_folder
from zimage_async.emulator import Emulator

Events = list[tuple[str, str]]


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> Events:
    """Record each fsync (of a file or a folder, by path) and each rename or link, in order."""
    seen: Events = []
    lock = threading.Lock()  # fsyncs are recorded by worker threads, renames on the loop
    real_fsync, real_replace, real_link = os.fsync, os.replace, os.link

    def fsync(fd: int) -> None:
        mode = os.fstat(fd).st_mode
        kind = "fsync folder" if stat.S_ISDIR(mode) else "fsync file"
        with lock:
            seen.append((kind, os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def renamed(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        """Record the rename and its source as adjacent events, never split by a thread's."""
        with lock:
            seen.append(("rename", str(Path(dst).resolve())))
            seen.append(("renamed from", str(Path(src).resolve())))

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        renamed(src, dst)
        real_replace(src, dst)

    def link(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        real_link(src, dst)  # a save that keeps what is there links the file into place
        renamed(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "link", link)
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


async def test_a_durable_save_cancelled_while_its_flush_waits_leaks_no_descriptor(
    tmp_path: Path,
) -> None:
    """The only worker thread busy when the flush is handed over, then cancelled: no fd left.

    The emulator runs in a thread of its own, so that this loop's worker serves the
    flush alone (the emulator's own work would otherwise queue behind the blocker).
    """
    with _emulator_in_a_thread() as emu:
        async with Session(api_key=emu.api_key, base_url=emu.base_url) as zs:
            handle = await zs.submit("a cat")
            size = len((await handle).image.data)
            loop = asyncio.get_running_loop()
            executor = concurrent.futures.ThreadPoolExecutor(max_workers=1)
            loop.set_default_executor(executor)
            release = threading.Event()
            blocker = loop.run_in_executor(None, release.wait, 10.0)  # the worker is busy
            save = asyncio.ensure_future(handle.save(tmp_path / "out", durable=True))
            for _ in range(500):  # until every byte is written: the flush waits now
                parts = list((tmp_path / "out").glob(".zimage-*.part"))
                if parts and parts[0].stat().st_size == size:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)
            assert not save.done()
            save.cancel()
            with pytest.raises(asyncio.CancelledError):
                await save
            release.set()
            await blocker
            await asyncio.sleep(0.2)  # the queued flush would run now
            leaked = [target for target in _open_files() if str(tmp_path) in target]
            executor.shutdown(wait=False)
    assert not leaked


@contextlib.contextmanager
def _emulator_in_a_thread() -> Iterator[Emulator]:
    """An emulator serving from a thread with its own event loop, until the block ends."""
    ready: queue.Queue[Emulator] = queue.Queue()
    stop = threading.Event()

    async def serve() -> None:
        async with Emulator(task_duration=0.05) as emu:
            ready.put(emu)
            await asyncio.get_running_loop().run_in_executor(None, stop.wait)

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    try:
        yield ready.get(timeout=10)
    finally:
        stop.set()
        thread.join(10)


def _open_files() -> list[str]:
    """What this process's file descriptors point at (Linux)."""
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor, closed since
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
    return targets


async def test_a_flush_refused_by_a_shut_down_executor_closes_its_descriptor(
    tmp_path: Path,
) -> None:
    """The loop's executor shut down: the flush fails, and the descriptor is closed."""
    await asyncio.get_running_loop().shutdown_default_executor()
    before = len(_open_files())
    for _ in range(5):
        with pytest.raises(RuntimeError):
            await sync_folder(tmp_path)
    assert len(_open_files()) == before


async def test_a_durable_save_into_new_folders_flushes_the_folders_it_made(
    zs: Session, tmp_path: Path, events: Events
) -> None:
    """``save(a/b/c, durable=True)`` makes a, b and c: each one's entry is flushed too.

    Only the file and c were flushed: a power cut could lose b (or a), and with it the
    image a journal names.
    """
    (path,) = await (await zs.submit("a cat")).save(tmp_path / "a" / "b" / "c", durable=True)
    _check_durable(events, path)
    flushed = {name for kind, name in events if kind == "fsync folder"}
    for parent in (tmp_path, tmp_path / "a", tmp_path / "a" / "b"):
        assert str(parent.resolve()) in flushed, events


def test_the_command_line_flushes_the_output_folders_it_makes(
    tmp_path: Path, events: Events
) -> None:
    """``-o out/new/deep``, made by the command line's check: each new entry is flushed.

    The check made them with a plain mkdir, so a durable save found them there and
    flushed nothing above the last.
    """
    check_writable(tmp_path / "out" / "new" / "deep")
    flushed = {name for kind, name in events if kind == "fsync folder"}
    for parent in (tmp_path, tmp_path / "out", tmp_path / "out" / "new"):
        assert str(parent.resolve()) in flushed, events
