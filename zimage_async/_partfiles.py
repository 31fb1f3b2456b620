"""The hidden partial files of saves: those a killed process left are removed later.

A save writes ``.zimage-*.part`` in the target's folder and renames it into place; on
any failure it removes it. Only a process killed mid-write (``kill -9``, a power cut)
leaves one: the next batch into that folder, or the first save into it by a later
process, removes those untouched for an hour.
"""

from __future__ import annotations

import time
from pathlib import Path

__all__ = ["STALE_PART_SECONDS", "remove_stale_parts", "sweep_once"]

#: A partial file untouched for this long is left by a process that died mid-download
#: (a live download writes every few seconds, and gives up after ``image_timeout``).
STALE_PART_SECONDS = 3600.0


def remove_stale_parts(folder: Path, *, now: float | None = None) -> list[Path]:
    """Remove the ``.zimage-*.part`` files a killed process left in *folder*; return them.

    Only files untouched for :data:`STALE_PART_SECONDS` go: another process saving into
    the same folder right now keeps its own.
    """
    cutoff = (time.time() if now is None else now) - STALE_PART_SECONDS
    return [part for part in folder.glob(".zimage-*.part") if _remove_if_older(part, cutoff)]


def _remove_if_older(part: Path, cutoff: float) -> bool:
    try:
        if part.stat().st_mtime >= cutoff:
            return False
        part.unlink()
    except OSError:  # gone already, or not ours to remove
        return False
    return True


#: The folders this process swept (the latest :data:`SWEPT_KEPT`), each swept once.
_SWEPT: dict[Path, None] = {}
SWEPT_KEPT = 256


def sweep_once(folder: Path) -> None:
    """Remove the stale partial files of *folder*, the first time this process saves there.

    Once per folder: a listing per save would cost a save into a folder of ten thousand
    images a walk over all of them.
    """
    if folder in _SWEPT:
        return
    _SWEPT[folder] = None
    if len(_SWEPT) > SWEPT_KEPT:
        del _SWEPT[next(iter(_SWEPT))]
    remove_stale_parts(folder)
