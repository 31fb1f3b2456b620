"""One save in progress, shared by the ``save()`` calls of one destination.

A :class:`~zimage_async._delivery.Delivery` keeps a :class:`SharedSave` per
destination: concurrent calls wait for the same save, and a later call finds the files
it wrote still there (their :func:`file_stamp`) or saves again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import attrs

__all__ = ["SharedSave", "file_stamp", "written_paths"]


@attrs.define
class SharedSave:
    """One save in progress and how many ``save()`` calls wait for it."""

    future: asyncio.Future[list[Path]]
    waiters: int = 0


def file_stamp(path: Path) -> tuple[int, ...] | None:
    """Return what tells the file at *path* from another one put there since, or None."""
    try:
        there = path.stat()
    except OSError:
        return None
    return (there.st_dev, there.st_ino, there.st_size, there.st_mtime_ns)


def written_paths(future: asyncio.Future[list[Path]]) -> list[Path] | None:
    """Return the paths a finished save wrote, or None if it failed or was cancelled."""
    if future.cancelled() or future.exception() is not None:
        return None
    return future.result()
