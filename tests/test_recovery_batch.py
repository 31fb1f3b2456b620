"""Batch reruns, refusals and workers on an SQLite journal, in one process.

A wrong key stops the batch, a deleted image comes back, a limit holds across restarts,
a dead worker's items are taken over, and bad options are refused before any request.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from pathlib import Path

import pytest

from zimage_async import (
    AuthenticationError,
    BatchItem,
    GenerationRequest,
    InvalidRequestError,
    Session,
    SpendLimitError,
    TaskFailedError,
)
from zimage_async._batch import Batch
from zimage_async._journal import JournalRecord, JournalState, open_journal
from zimage_async.emulator import Emulator

from .conftest import FAST_POLL, FAST_RETRY, until


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


async def test_a_task_never_saved_whose_links_expired_says_how_to_get_it_back(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """A task never saved, links expired: a rerun names resubmit_expired, which makes a new task."""
    out, manifest = tmp_path / "out", tmp_path / "batch.db"
    first = await _collect(zs, ["a cat"], output_dir=out, manifest=manifest)
    first[0].paths[0].unlink()
    with contextlib.closing(sqlite3.connect(manifest)) as db, db:  # completed two days ago, the
        db.execute(  # run killed before it saved the images
            "UPDATE zimage_creates SET completed_at = completed_at - 172800,"
            " state = 'completed', paths = '[]'"
        )
        db.execute("UPDATE zimage_batch_items SET settled = 0")
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


async def test_resubmit_failed_applies_to_a_failure_left_unreleased_by_a_killed_run(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """Killed between recording the failure and releasing the item: the flag still applies.

    The first rerun with resubmit_failed=True reported the failure again, because the
    item it took over was not settled; only a second rerun sent it again.
    """
    journal, out, prompts = tmp_path / "j.sqlite", tmp_path / "out", ["a glass owl", "a tin robot"]
    emulator.fail_next("content_policy_violation")
    first = await _collect(zs, prompts, journal=journal, output_dir=out, concurrency=1)
    assert first[0].error is not None and first[1].ok
    with contextlib.closing(sqlite3.connect(journal)) as db, db:  # as the kill left it: held
        db.execute(  # by the dead run, whose lease runs out half a second from now
            "UPDATE zimage_batch_items SET settled = 0, claimed_by = 'killed', lease_until = ?"
            " WHERE idx = 0",
            (time.time() + 0.5,),
        )
    again = await _collect(
        zs, prompts, journal=journal, output_dir=out, resubmit_failed=True, lease=1
    )
    assert again[0].ok, again[0].error
    assert again[0].task_id != first[0].task_id
    assert emulator.billed_counts(by="prompt") == {"a glass owl": 2, "a tin robot": 1}
    assert len(emulator.billed_counts(by="idempotency_key")) == 3  # a new key for the new task


async def test_resubmit_failed_leaves_a_failure_recorded_during_the_run_reported(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """A failure another worker records after this one started is not sent again by it.

    resubmit_failed sends again the items that failed in an earlier run; the item a live
    worker fails meanwhile, then loses to this one (its lease ran out), is reported.
    """
    path, prompt = tmp_path / "j.sqlite", "a glass owl"
    request = GenerationRequest(prompt=prompt)
    async with await open_journal(path) as other:
        await other.enqueue("b", [request])
        [item] = await other.claim("b", "other", lease_seconds=600, limit=1)
        batch = zs.generate_many(
            [prompt], journal=path, batch_id="b", resubmit_failed=True, lease=1
        )
        async with batch:
            outcomes = asyncio.ensure_future(_all(batch))
            await until(lambda: batch._runner is not None)  # started: the item is the other's
            record = JournalRecord.for_request(
                request, key=item.key, base_url=zs.base_url, batch_id="b", item_index=0
            )
            await other.begin(record, worker_id="other")
            await other.update(item.key, JournalState.CREATED, task_id="task-of-the-other")
            await other.update(item.key, JournalState.FAILED, error_code="content_policy_violation")
            await other.renew("b", "other", lease_seconds=0)  # it hangs: its lease runs out
            [outcome] = await asyncio.wait_for(outcomes, 20)
    assert isinstance(outcome.error, TaskFailedError), outcome.error
    assert outcome.task_id == "task-of-the-other"
    assert emulator.ledger == ()
    assert batch.stats.submitted == 0


async def _all(batch: Batch) -> list[BatchItem]:
    return [item async for item in batch]


#: The emulator's price of one task.
PRICE = 0.026


async def test_a_batch_limit_holds_across_restarts_of_its_sqlite_journal(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """At the limit the rest are not sent; a rerun sends nothing more until the limit rises."""
    journal, prompts = tmp_path / "j.sqlite", [f"a cat {n}" for n in range(6)]
    first = await _collect(zs, prompts, journal=journal, concurrency=1, max_credits=0.06)
    assert [item.sent for item in first] == [True, True, False, False, False, False]
    assert all(isinstance(item.error, SpendLimitError) for item in first[2:])
    again = await _collect(zs, prompts, journal=journal, concurrency=1, max_credits=0.06)
    assert [item.ok for item in again[:2]] == [True, True]
    assert not any(item.sent for item in again[2:])
    assert len(emulator.ledger) == 2
    raised = await _collect(zs, prompts, journal=journal, concurrency=1, max_credits=0.2)
    assert all(item.ok for item in raised)
    assert emulator.billed_counts(by="prompt") == dict.fromkeys(prompts, 1)


async def test_a_dead_workers_items_are_taken_over_after_the_lease(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """A create left submitting is resent with its key; one with a task is resumed by id."""
    path, prompts = tmp_path / "j.sqlite", ["a cat", "a dog", "a fox"]
    requests = [GenerationRequest(prompt=p) for p in prompts]
    async with await open_journal(path) as journal:  # a worker that dies after two begins
        await journal.enqueue("pets", requests)
        cat, dog = await journal.claim("pets", "dead", lease_seconds=1, limit=2)
        for item in (cat, dog):
            record = JournalRecord.for_request(
                item.request(),
                key=item.key,
                base_url=zs.base_url,
                batch_id="pets",
                item_index=item.index,
            )
            await journal.begin(record, worker_id="dead")
        made = await zs.submit("a dog", idempotency_key=dog.key)
        await journal.update(dog.key, JournalState.CREATED, task_id=made.id)
    async with zs.generate_many(
        prompts, journal=path, batch_id="pets", worker_id="alive", lease=1, output_dir=tmp_path
    ) as batch:
        items = sorted([item async for item in batch], key=lambda item: item.index)
    assert all(item.ok for item in items), [item.error for item in items]
    assert items[1].task_id == made.id
    assert batch.stats.taken_over == 2
    assert batch.stats.resumed == 1
    assert batch.stats.submitted == 2
    assert emulator.billed_counts(by="prompt") == dict.fromkeys(prompts, 1)
    assert emulator.billed_counts(by="idempotency_key")[cat.key] == 1


async def test_a_worker_start_keeps_another_live_workers_partial_files(
    zs: Session, tmp_path: Path
) -> None:
    """Only partial files untouched for an hour (a dead process's) are removed at start."""
    tmp_path.joinpath("out").mkdir()
    live = tmp_path / "out" / ".zimage-live.part"
    dead = tmp_path / "out" / ".zimage-dead.part"
    live.write_bytes(b"downloading")
    dead.write_bytes(b"left behind")
    hours_ago = time.time() - 2 * 3600
    os.utime(dead, (hours_ago, hours_ago))
    await _collect(zs, ["a cat"], output_dir=tmp_path / "out")
    assert live.exists()
    assert not dead.exists()


@pytest.mark.parametrize(
    ("options", "field"),
    [
        pytest.param({"worker_id": "two words"}, "worker_id", id="worker-id"),
        pytest.param({"lease": 0}, "lease", id="lease"),
        pytest.param({"batch_id": ""}, "batch_id", id="batch-id"),
        pytest.param({"journal": "a.db", "manifest": "b.db"}, "manifest", id="both"),
        pytest.param({"manifest": "postgresql://h/db"}, "manifest", id="manifest-url"),
        pytest.param({"max_credits": 1.0}, "max_credits", id="limit-without-journal"),
        pytest.param({"journal": "a.db", "max_credits": -1}, "max_credits", id="negative"),
    ],
)
def test_bad_batch_options_are_refused_before_anything_is_sent(
    zs: Session, emulator: Emulator, options: dict[str, object], field: str
) -> None:
    """Each bad option names its field, at call time, and nothing reaches the service."""
    with pytest.raises(InvalidRequestError) as caught:
        zs.generate_many(["a cat"], **options)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert emulator.requests == ()


async def test_a_session_journal_runs_its_batches_and_refuses_another(
    emulator: Emulator, tmp_path: Path
) -> None:
    """With Session(journal=), batches are recorded there; journal= on the batch is refused."""
    async with Session(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        poll=FAST_POLL,
        retry=FAST_RETRY,
        journal=tmp_path / "session.sqlite",
    ) as zs:
        with pytest.raises(InvalidRequestError, match="journal"):
            zs.generate_many(["a cat"], journal=tmp_path / "other.sqlite")
        await _collect(zs, ["a cat"], batch_id="cats")
        assert await zs.unfinished() == []
        (record,) = await zs._bookkeeper().journal.records(batch_id="cats")
    assert record.batch_id == "cats"
    assert record.state is JournalState.SAVED
