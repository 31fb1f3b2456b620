"""Batch reruns and refusals: a wrong key stops the batch, a deleted image comes back."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from zimage_async import AuthenticationError, BatchItem, Session
from zimage_async.emulator import Emulator

from .conftest import FAST_POLL, FAST_RETRY


async def _collect(zs: Session, prompts: list[str], **options: object) -> list[BatchItem]:
    async with zs.generate_many(prompts, **options) as batch:  # type: ignore[arg-type]
        return sorted([item async for item in batch], key=lambda item: item.index)


async def test_an_authentication_refusal_stops_the_batch_at_once(
    emulator: Emulator, tmp_path: Path
) -> None:
    """After the first 401 no further create is sent and the rest are reported as not sent."""
    async with Session(
        api_key="sk-not-the-right-key-0000",
        base_url=emulator.base_url,
        poll=FAST_POLL,
        retry=FAST_RETRY,
    ) as zs:
        items = await _collect(zs, [f"a cat {n}" for n in range(8)], concurrency=2)
    creates = [r for r in emulator.requests if r.endpoint == "create"]
    assert len(creates) <= 2
    assert len(items) == 8
    assert all(isinstance(item.error, AuthenticationError) for item in items)
    assert sum(1 for item in items if not item.sent) >= 6
    assert "ZIMAGE_API_KEY" in str(items[-1].error)


async def test_a_deleted_image_is_fetched_again_by_a_rerun(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """Rerunning a batch after deleting one saved file saves it again without a new task."""
    out, manifest = tmp_path / "out", tmp_path / "batch.db"
    first = await _collect(zs, ["a cat", "a dog"], output_dir=out, manifest=manifest)
    assert all(item.ok for item in first)
    gone = first[1].paths[0]
    gone.unlink()
    again = await _collect(zs, ["a cat", "a dog"], output_dir=out, manifest=manifest)
    assert all(item.ok for item in again), [item.error for item in again]
    assert gone.exists()
    assert len(emulator.ledger) == 2


async def test_an_image_deleted_after_its_links_expired_says_how_to_get_it_back(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """With expired links a rerun names resubmit_expired, which makes a new task under a new key."""
    out, manifest = tmp_path / "out", tmp_path / "batch.db"
    first = await _collect(zs, ["a cat"], output_dir=out, manifest=manifest)
    first[0].paths[0].unlink()
    with contextlib.closing(sqlite3.connect(manifest)) as db, db:  # the task completed two days ago
        db.execute("UPDATE zimage_creates SET completed_at = completed_at - 172800")
    db.close()
    expired = await _collect(zs, ["a cat"], output_dir=out, manifest=manifest)
    assert "resubmit_expired=True" in str(expired[0].error)
    assert "--resubmit-expired" in str(expired[0].error)
    again = await _collect(zs, ["a cat"], output_dir=out, manifest=manifest, resubmit_expired=True)
    assert again[0].ok, again[0].error
    assert again[0].paths[0].exists()
    assert len(emulator.ledger) == 2
    keys = {entry.idempotency_key for entry in emulator.ledger}
    assert len(keys) == 2


async def test_resubmitting_a_failed_item_makes_a_new_task(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """resubmit_failed sends the failed item under a new key, so it is not the old task replayed."""
    manifest = tmp_path / "batch.db"
    prompt = "a dog [[fail:content_policy_violation]]"
    first = await _collect(zs, [prompt], output_dir=tmp_path / "out", manifest=manifest)
    assert first[0].error is not None
    again = await _collect(
        zs, [prompt], output_dir=tmp_path / "out", manifest=manifest, resubmit_failed=True
    )
    assert again[0].task_id != first[0].task_id
    assert len(emulator.ledger) == 2
