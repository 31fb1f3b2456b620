"""Flushing saved images, and the folders that name them, to the disk (``fsync``).

A record that says an image is saved (a batch's journal) must not outlive the image
across a power cut: the file's bytes, its name in its folder, and every folder made for
it are flushed before such a record is written. Each flush runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import functools
import os
from pathlib import Path

__all__ = ["flush", "make_folder", "make_folder_now", "sync_file", "sync_folder"]


async def make_folder(folder: Path, *, durable: bool) -> None:
    """Create *folder* and its missing parents; with *durable*, flush each new entry.

    A durable save flushes its file and the folder it is in; a folder made for it must
    itself outlive a power cut, so the folder holding each new one is flushed too.
    """
    made = _missing(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if durable:
        for new in made:
            await sync_folder(new.parent)


def make_folder_now(folder: Path) -> None:
    """Create *folder* and its missing parents, each new entry flushed, without a thread.

    For the command line's check of its output folder, made before anything else (a
    durable save later finds it there, and flushes nothing above it).
    """
    made = _missing(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if hasattr(os, "O_DIRECTORY"):
        for new in made:
            fd = os.open(new.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _missing(folder: Path) -> list[Path]:
    """Return the folders from *folder* up that do not exist yet, the outermost first."""
    made = []
    here = folder
    while not here.exists() and here.parent != here:
        made.append(here)
        here = here.parent
    return made[::-1]


async def sync_file(path: Path) -> None:
    """Flush the file at *path* to the disk (one kept by ``place()``, maybe never flushed)."""
    await flush(os.open(path, os.O_RDONLY))


async def sync_folder(folder: Path) -> None:
    """Flush *folder*'s entries to the disk (a rename into it is then kept by a power cut).

    Systems that cannot open a folder as a file (Windows: no ``O_DIRECTORY``) skip it.
    """
    if hasattr(os, "O_DIRECTORY"):
        await flush(os.open(folder, os.O_RDONLY | os.O_DIRECTORY))


async def flush(fd: int) -> None:
    """Flush *fd* to the disk in a worker thread; *fd* is closed once that has run.

    The flush is shielded: a caller cancelled meanwhile stops waiting, and the
    descriptor (its own, given up) is still closed when the flush runs, or at once if
    it never does (its executor shut down). It is never closed while being flushed.
    """
    try:
        job = asyncio.get_running_loop().run_in_executor(None, os.fsync, fd)
    except BaseException:  # refused (the executor shut down): never run, so closed now
        os.close(fd)
        raise
    job.add_done_callback(functools.partial(_close_after, fd))
    await asyncio.shield(job)


def _close_after(fd: int, job: asyncio.Future[None]) -> None:
    os.close(fd)
    if not job.cancelled():
        job.exception()  # seen here too: a cancelled caller no longer awaits it
