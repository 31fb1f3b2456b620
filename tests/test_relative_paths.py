"""Saved paths are journaled whole: a rerun from another folder still finds what is gone.

A batch saving into a relative folder recorded its images' paths relative to the
folder it ran in. Rerun from elsewhere (naming the same output folder another way),
those paths pointed nowhere the rerun looked, the missing image counted as "saved
elsewhere", and it was never fetched again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from zimage_async import BatchItem, Session
from zimage_async.emulator import Emulator


async def _collect(zs: Session, prompts: list[str], **options: object) -> list[BatchItem]:
    async with zs.generate_many(prompts, **options) as batch:  # type: ignore[arg-type]
        return sorted([item async for item in batch], key=lambda item: item.index)


async def test_a_rerun_from_another_folder_fetches_an_image_deleted_meanwhile(
    zs: Session, emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run in work/ with out/, delete an image, rerun in other/ with ../work/out."""
    work, other = tmp_path / "work", tmp_path / "other"
    work.mkdir()
    other.mkdir()
    journal = tmp_path / "journal.sqlite"
    monkeypatch.chdir(work)
    first = await _collect(zs, ["a cat", "a dog"], output_dir="out", journal=journal)
    assert all(item.ok for item in first)
    gone = work / first[1].paths[0]
    gone.unlink()
    monkeypatch.chdir(other)
    again = await _collect(zs, ["a cat", "a dog"], output_dir="../work/out", journal=journal)
    assert all(item.ok for item in again), [item.error for item in again]
    assert gone.exists()  # fetched again, by the task already made
    assert len(emulator.ledger) == 2
