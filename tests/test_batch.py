"""Session.generate_many: concurrent batches, outcomes per item, cancellation and resume."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from zimage_async import (
    Batch,
    BatchItem,
    GenerationRequest,
    ImageExpiredError,
    InvalidRequestError,
    JournalError,
    NoResultsError,
    Session,
    SubmissionUncertainError,
    TaskFailedError,
)
from zimage_async import _batch as batch_module
from zimage_async._journal import Journal, JournalRecord, JournalState, open_journal
from zimage_async.emulator import Emulator, FaultPlan, FaultRule, ManualClock

from .conftest import FAST_POLL, FAST_RETRY, until
from .test_cancellation import _client_tasks


async def _collect(
    zs: Session, requests: Sequence[str | GenerationRequest], **options: object
) -> list[BatchItem]:
    async with zs.generate_many(requests, **options) as batch:  # type: ignore[arg-type]
        return [item async for item in batch]


def _billed_prompts(emulator: Emulator) -> Counter[object]:
    return Counter(entry.request_body["prompt"] for entry in emulator.ledger)


@pytest.fixture
async def manual() -> AsyncIterator[tuple[Emulator, ManualClock]]:
    """An emulator on a manual clock: its tasks finish only when the test advances it."""
    clock = ManualClock(start=time.time())  # links carry their expiry in clock time
    async with Emulator(clock=clock, task_duration=1.0, seed=2) as emu:
        yield emu, clock


@pytest.fixture
async def manual_zs(manual: tuple[Emulator, ManualClock]) -> AsyncIterator[Session]:
    """A fast-polling Session on the manual-clock emulator."""
    emu, _ = manual
    async with Session(
        api_key=emu.api_key, base_url=emu.base_url, poll=FAST_POLL, retry=FAST_RETRY, seed=3
    ) as session:
        yield session


async def test_every_item_has_one_outcome_and_a_failure_does_not_stop_the_batch(
    zs: Session, tmp_path: Path
) -> None:
    """A failed task is that item's outcome; the other items are saved."""
    prompts = ["a cat", "a dog [[fail:content_policy_violation]]", "a fox"]
    items = await _collect(zs, prompts, output_dir=tmp_path, concurrency=3)
    by_index = {item.index: item for item in items}
    assert sorted(by_index) == [0, 1, 2]
    assert isinstance(by_index[1].error, TaskFailedError)
    assert by_index[1].task_id is not None
    for index in (0, 2):
        assert by_index[index].ok
        (path,) = by_index[index].paths
        assert path.read_bytes().startswith(b"\x89PNG")


async def test_without_output_dir_items_carry_the_image_bytes(zs: Session) -> None:
    """With no output directory the outcome holds the downloaded result."""
    (item,) = await _collect(zs, [GenerationRequest(prompt="a cat", size="16:9")])
    assert item.result is not None
    assert item.result.image.width == 1280
    assert item.paths == ()


def test_an_invalid_item_is_refused_before_anything_is_sent(zs: Session) -> None:
    """Validation names the item's index, at call time."""
    with pytest.raises(InvalidRequestError, match=r"requests\[1\]\.prompt"):
        zs.generate_many(["fine", ""])


async def test_no_more_than_concurrency_tasks_are_submitted_at_once(
    manual: tuple[Emulator, ManualClock], manual_zs: Session
) -> None:
    """With concurrency 2 and tasks that never finish, only two tasks are created."""
    emu, _ = manual
    async with manual_zs.generate_many([f"p{n}" for n in range(5)], concurrency=2) as batch:
        consumer = asyncio.ensure_future(batch.__anext__())
        await until(lambda: emu.request_counts.get("task", 0) >= 10)
        assert len(emu.ledger) == 2
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer


async def test_breaking_out_cancels_work_in_flight_and_leaves_no_partial_file(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """Leaving the block after the first outcome stops every worker; no .part remains."""
    prompts = ["quick"] + [f"slow {n} [[duration:30]]" for n in range(4)]
    async with zs.generate_many(prompts, output_dir=tmp_path, concurrency=5) as batch:
        async for item in batch:
            assert item.index == 0
            break
    assert _client_tasks() == set()
    assert list(tmp_path.glob("*.part")) == []
    assert len(emulator.ledger) == 5


async def test_cancelling_the_consumer_stops_the_batch_without_async_with(
    zs: Session, emulator: Emulator
) -> None:
    """Cancelling a task iterating a bare batch cancels the batch's workers too."""

    async def consume() -> None:
        async for _ in zs.generate_many([f"slow {n} [[duration:30]]" for n in range(3)]):
            pass

    consumer = asyncio.ensure_future(consume())
    await until(lambda: len(emulator.ledger) == 3)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    assert _client_tasks() == set()


async def test_a_rerun_resumes_an_interrupted_batch_without_billing_twice(
    manual: tuple[Emulator, ManualClock], manual_zs: Session, tmp_path: Path
) -> None:
    """Tasks recorded before the interruption are polled and saved, not submitted again."""
    emu, clock = manual
    prompts = [f"item {n}" for n in range(4)]
    manifest = tmp_path / "m.sqlite"

    async def first_run() -> None:
        async for _ in manual_zs.generate_many(prompts, output_dir=tmp_path, manifest=manifest):
            pass

    run = asyncio.ensure_future(first_run())
    await until(lambda: len(emu.ledger) == 4 and emu.request_counts.get("task", 0) >= 8)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    clock.advance(5.0)
    items = await _collect(manual_zs, prompts, output_dir=tmp_path, manifest=manifest)
    assert all(item.ok and item.resumed for item in items), items
    assert len(list(tmp_path.glob("*.png"))) == 4
    assert _billed_prompts(emu) == Counter(prompts)


async def test_a_rerun_of_a_finished_batch_sends_nothing(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """Saved items are reported from the manifest, with their files, and nothing is sent."""
    manifest = tmp_path / "m.sqlite"
    first = await _collect(zs, ["a", "b"], output_dir=tmp_path, manifest=manifest)
    requests_before = len(emulator.requests)
    again = await _collect(zs, ["a", "b"], output_dir=tmp_path, manifest=manifest)
    assert {i.paths for i in again} == {i.paths for i in first}
    assert all(item.resumed for item in again)
    assert len(emulator.requests) == requests_before


async def test_a_changed_request_for_an_item_with_a_task_is_refused(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """Editing an item that already has a task raises JournalError before sending."""
    manifest = tmp_path / "m.sqlite"
    await _collect(zs, ["a", "b"], output_dir=tmp_path, manifest=manifest)
    with pytest.raises(JournalError, match=r"item index 1"):
        await _collect(zs, ["a", "B"], output_dir=tmp_path, manifest=manifest)
    assert len(emulator.ledger) == 2


async def test_one_journal_keeps_two_batches_apart(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """Two batch ids in one journal file are two batches; a rerun of one resumes only it."""
    journal = tmp_path / "j.sqlite"
    await _collect(zs, ["a"], output_dir=tmp_path / "c", journal=journal, batch_id="cats")
    (dog,) = await _collect(zs, ["a"], output_dir=tmp_path / "d", journal=journal, batch_id="dogs")
    assert dog.ok and not dog.resumed
    (cat,) = await _collect(zs, ["a"], output_dir=tmp_path / "c", journal=journal, batch_id="cats")
    assert cat.ok and cat.resumed
    assert len(emulator.ledger) == 2


async def test_an_item_added_to_the_batch_is_submitted_on_rerun(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """Appending items keeps the earlier ones and submits only the new one."""
    manifest = tmp_path / "m.sqlite"
    await _collect(zs, ["a"], output_dir=tmp_path, manifest=manifest)
    items = await _collect(zs, ["a", "b"], output_dir=tmp_path, manifest=manifest)
    assert sorted((i.index, i.resumed) for i in items) == [(0, True), (1, False)]
    assert _billed_prompts(emulator) == Counter(["a", "b"])


async def test_expired_links_of_an_earlier_run_are_reported(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """A completed task whose links expired is an ImageExpiredError, never resubmitted."""
    handle = await zs.submit("old")
    await handle.wait()
    request = GenerationRequest(prompt="old")
    async with await open_journal(tmp_path / "m.sqlite") as journal:
        await journal.enqueue("default", [request])
        (stored,) = await journal.items("default")
        record = JournalRecord.for_request(
            request, key=stored.key, base_url=zs.base_url, batch_id="default", item_index=0
        )
        await journal.begin(record)
        await journal.update(
            stored.key,
            JournalState.COMPLETED,
            task_id=handle.id,
            completed_at=time.time() - 2 * 86_400,
        )
    (item,) = await _collect(zs, ["old"], output_dir=tmp_path, manifest=tmp_path / "m.sqlite")
    assert isinstance(item.error, ImageExpiredError)
    assert item.task_id == handle.id
    assert len(emulator.ledger) == 1


async def test_an_uncertain_item_is_not_resubmitted_without_permission(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """A create that may have billed is reported; resubmit_uncertain resends it with its key.

    The emulator honours idempotency keys, so the resubmission returns the task the first
    create made instead of billing a second one.
    """
    emulator.faults = FaultPlan.script("create", ["reset_after_create"])
    manifest = tmp_path / "m.sqlite"
    (first,) = await _collect(zs, ["maybe"], manifest=manifest)
    assert isinstance(first.error, SubmissionUncertainError)
    (second,) = await _collect(zs, ["maybe"], manifest=manifest)
    assert isinstance(second.error, SubmissionUncertainError)
    assert len(emulator.ledger) == 1
    (third,) = await _collect(zs, ["maybe"], manifest=manifest, resubmit_uncertain=True)
    assert third.ok
    assert third.task_id == emulator.ledger[0].task_id
    assert len(emulator.ledger) == 1


async def test_a_garbled_create_that_names_its_task_is_resumed_not_resubmitted(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """SubmissionUncertainError.task_id is recorded and that task is waited for."""
    emulator.faults = FaultPlan.script("create", ["malformed_json"])
    (item,) = await _collect(zs, ["garbled"], output_dir=tmp_path, manifest=tmp_path / "m.db")
    assert item.ok
    assert item.task_id == emulator.ledger[0].task_id
    assert len(emulator.ledger) == 1


async def test_a_rate_limited_batch_still_completes_every_item(
    zs: Session, emulator: Emulator
) -> None:
    """A 429 on create pauses submissions (the session's gate) and nothing is lost."""
    emulator.faults = FaultPlan.script(
        "create", [FaultRule(kind="http_429", retry_after_seconds=0)]
    )
    items = await _collect(zs, ["a", "b", "c"], concurrency=3)
    assert all(item.ok for item in items)
    assert _billed_prompts(emulator) == Counter(["a", "b", "c"])


async def test_a_create_under_way_when_cancelled_is_recorded_and_resumed(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """Cancelling during a slow create waits for its answer, so the rerun resumes it."""
    emulator.faults = FaultPlan.script("create", [FaultRule(kind="slow", delay_seconds=0.3)])
    path = tmp_path / "m.sqlite"

    def state() -> JournalState | None:
        with contextlib.closing(sqlite3.connect(path)) as db:
            try:
                row = db.execute("SELECT state FROM zimage_creates").fetchone()
            except sqlite3.OperationalError:  # the journal's tables are not made yet
                return None
        return None if row is None else JournalState(row[0])

    async def consume() -> None:
        async for _ in zs.generate_many(["slow create"], manifest=path):
            pass

    consumer = asyncio.ensure_future(consume())
    await until(lambda: path.exists() and state() is JournalState.SUBMITTING)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    assert state() is JournalState.CREATED
    (item,) = await _collect(zs, ["slow create"], manifest=path)
    assert item.ok and item.resumed
    assert len(emulator.ledger) == 1


async def test_a_task_without_links_is_recorded_and_not_fetched_again(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """A completed task without links fails its item, and a rerun reports it without asking."""
    manifest = tmp_path / "m.sqlite"
    prompt = "nothing [[results:empty]]"
    (first,) = await _collect(zs, [prompt], output_dir=tmp_path, manifest=manifest)
    assert isinstance(first.error, NoResultsError)
    assert first.task_id == emulator.ledger[0].task_id
    reads = emulator.request_counts.get("task", 0)
    (second,) = await _collect(zs, [prompt], output_dir=tmp_path, manifest=manifest)
    assert isinstance(second.error, NoResultsError)
    assert second.resumed
    assert emulator.request_counts.get("task", 0) == reads
    assert len(emulator.ledger) == 1


@pytest.fixture
def opened_journals(monkeypatch: pytest.MonkeyPatch) -> list[Journal]:
    """Every journal a batch opens itself (``open_batch_journal`` in the batch, spied on)."""
    from zimage_async._journal import open_batch_journal

    opened: list[Journal] = []

    async def spy(target: str | Path | None) -> Journal:
        journal = await open_batch_journal(target)
        opened.append(journal)
        return journal

    monkeypatch.setattr(batch_module, "open_batch_journal", spy)
    return opened


async def _is_closed(journal: Journal) -> bool:
    try:
        await journal.items("any")
    except JournalError as exc:
        return "is closed" in str(exc)
    return False


async def _enter(batch: Batch, how: str) -> None:
    if how == "async with":
        async with batch:
            raise AssertionError("the batch started")
    async for _ in batch:
        raise AssertionError("the batch started")


@pytest.mark.parametrize("how", ["async with", "async for"])
async def test_a_refused_start_closes_the_journal_the_batch_opened(
    zs: Session, tmp_path: Path, opened_journals: list[Journal], how: str
) -> None:
    """Edited items refused at the start: the journal file the batch opened is closed."""
    journal = tmp_path / "j.sqlite"
    await _collect(zs, ["a", "b"], output_dir=tmp_path, journal=journal)
    opened_journals.clear()
    batch = zs.generate_many(["a", "B"], output_dir=tmp_path, journal=journal)
    with pytest.raises(JournalError, match=r"item index 1"):
        await _enter(batch, how)
    (opened,) = opened_journals
    assert await _is_closed(opened)


async def test_a_start_refused_for_another_base_url_closes_the_journal(
    manual: tuple[Emulator, ManualClock],
    manual_zs: Session,
    zs: Session,
    tmp_path: Path,
    opened_journals: list[Journal],
) -> None:
    """A batch whose tasks live at another base URL is refused; its journal is closed."""
    emu, _ = manual
    journal = tmp_path / "j.sqlite"

    async def first_run() -> None:
        async for _ in manual_zs.generate_many(["a"], output_dir=tmp_path, journal=journal):
            pass

    run = asyncio.ensure_future(first_run())
    await until(lambda: len(emu.ledger) == 1 and emu.request_counts.get("task", 0) >= 1)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    opened_journals.clear()
    batch = zs.generate_many(["a"], output_dir=tmp_path, journal=journal)
    with pytest.raises(JournalError, match="another base URL"):
        await _enter(batch, "async with")
    (opened,) = opened_journals
    assert await _is_closed(opened)
