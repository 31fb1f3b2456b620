"""Guards of the journal against paying twice.

Another service's creates, recovery of batch items, saved items of other machines, lost
leases and stale writers, the first create of a model and size under a spend limit.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import attrs
import pytest

from zimage_async import (
    BatchItem,
    GenerationRequest,
    ImageExpiredError,
    InvalidRequestError,
    JournalError,
    Session,
    SpendLimitError,
)
from zimage_async._journal import (
    JournalRecord,
    JournalState,
    ResumeAction,
    begin_refusal,
    open_journal,
    resume_action,
)
from zimage_async.emulator import Emulator
from zimage_async.pytest_plugin import EmulatorFactory

from .conftest import FAST_POLL, FAST_RETRY


@pytest.fixture
async def other(zimage_emulator_factory: EmulatorFactory) -> Emulator:
    """A second service, at another base URL."""
    return await zimage_emulator_factory(task_duration=0.05, seed=2, callback_mode="strict")


def _session(emulator: Emulator) -> Session:
    return Session(
        api_key=emulator.api_key, base_url=emulator.base_url, poll=FAST_POLL, retry=FAST_RETRY
    )


async def _collect(zs: Session, prompts: list[str], **options: object) -> list[BatchItem]:
    async with zs.generate_many(prompts, **options) as batch:  # type: ignore[arg-type]
        return sorted([item async for item in batch], key=lambda item: item.index)


def _record(key: str, base_url: str, **fields: Any) -> JournalRecord:
    record = JournalRecord.for_request(
        GenerationRequest(prompt="a cat"), key=key, base_url=base_url
    )
    return attrs.evolve(record, **fields)


@pytest.mark.parametrize("state", [JournalState.SUBMITTING, JournalState.UNCERTAIN])
def test_a_create_that_may_have_a_task_elsewhere_is_not_begun_at_another_base_url(
    state: JournalState,
) -> None:
    """A key sent to service A (a task may exist there) is refused for service B."""
    existing = _record("key-elsewhere-0001", "https://a.example", state=state)
    again = _record("key-elsewhere-0001", "https://b.example")
    refusal = begin_refusal(existing, again)
    assert refusal is not None
    assert "https://a.example" in refusal
    assert begin_refusal(existing, _record("key-elsewhere-0001", "https://a.example")) is None


def test_a_refused_create_may_be_begun_at_another_base_url() -> None:
    """A create the service certainly refused made no task: any service may get it."""
    existing = _record("key-elsewhere-0002", "https://a.example", state=JournalState.REJECTED)
    assert begin_refusal(existing, _record("key-elsewhere-0002", "https://b.example")) is None


async def test_a_batch_item_begun_at_another_service_is_refused_not_resent(
    emulator: Emulator, other: Emulator, tmp_path: Path
) -> None:
    """An item left submitting by a worker on service A is not sent to service B."""
    journal_path = tmp_path / "j.sqlite"
    journal = await open_journal(journal_path)
    request = GenerationRequest(prompt="a cat")
    await journal.enqueue("b", [request])
    key = (await journal.items("b"))[0].key
    await journal.begin(
        JournalRecord.for_request(
            request, key=key, base_url=emulator.base_url, batch_id="b", item_index=0
        )
    )
    await journal.close()
    async with _session(other) as zs:
        with pytest.raises(JournalError, match="another base URL"):
            await _collect(zs, ["a cat"], journal=journal_path, batch_id="b", output_dir=tmp_path)
    assert not other.ledger
    journal = await open_journal(journal_path)
    try:
        record = await journal.get(key)
    finally:
        await journal.close()
    assert record is not None
    assert record.base_url == emulator.base_url
    assert record.state is JournalState.SUBMITTING
    async with _session(emulator) as zs:  # the service that may have the task resumes it
        items = await _collect(
            zs, ["a cat"], journal=journal_path, batch_id="b", output_dir=tmp_path
        )
    assert items[0].ok, items[0].error
    assert len(emulator.ledger) == 1


async def _uncertain_item(journal_path: Path, base_url: str) -> str:
    """Journal batch ``b`` with item 0 whose create ended uncertain; return its key."""
    journal = await open_journal(journal_path)
    try:
        request = GenerationRequest(prompt="a cat")
        await journal.enqueue("b", [request])
        key = (await journal.items("b"))[0].key
        record = JournalRecord.for_request(
            request, key=key, base_url=base_url, batch_id="b", item_index=0, expected_cost=1.0
        )
        await journal.begin(record)
        await journal.update(key, JournalState.UNCERTAIN, error_message="timed out")
    finally:
        await journal.close()
    return key


async def test_recover_resends_a_batch_item_as_the_batch_s_own(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A batch item sent again by recover keeps its batch and index, so its limit counts it."""
    journal_path = tmp_path / "j.sqlite"
    key = await _uncertain_item(journal_path, emulator.base_url)
    async with Session(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        journal=journal_path,
        poll=FAST_POLL,
        retry=FAST_RETRY,
    ) as zs:
        handles = await zs.recover(resubmit_uncertain=True)
        assert len(handles) == 1
        record = (await zs.unfinished())[0]
        assert (record.key, record.batch_id, record.item_index) == (key, "b", 0)
        assert (await zs.spent(batch_id="b")).creates == 1


async def test_recover_leaves_a_batch_item_a_live_worker_holds(
    emulator: Emulator, tmp_path: Path
) -> None:
    """An uncertain item leased by a running worker is left to its batch, not sent."""
    journal_path = tmp_path / "j.sqlite"
    key = await _uncertain_item(journal_path, emulator.base_url)
    journal = await open_journal(journal_path)
    try:
        assert await journal.claim("b", "worker-a", lease_seconds=600, limit=1)
    finally:
        await journal.close()
    async with Session(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        journal=journal_path,
        poll=FAST_POLL,
        retry=FAST_RETRY,
    ) as zs:
        assert await zs.recover(resubmit_uncertain=True) == []
        record = (await zs.unfinished())[0]
    assert (record.key, record.state) == (key, JournalState.UNCERTAIN)
    assert not [r for r in emulator.requests if r.endpoint == "create"]


def _endpoints(emulator: Emulator, endpoint: str) -> int:
    return sum(1 for request in emulator.requests if request.endpoint == endpoint)


async def test_a_worker_with_its_own_directory_reports_what_another_saved(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """Items saved under another worker's directory are reported, neither fetched nor sent."""
    journal_path, prompts = tmp_path / "j.sqlite", ["a cat", "a dog"]
    first = await _collect(
        zs, prompts, journal=journal_path, batch_id="b", output_dir=tmp_path / "machine-a"
    )
    assert all(item.ok for item in first)
    for item in first:  # the other machine's files are not on this one
        for path in item.paths:
            path.unlink()
    creates, images = _endpoints(emulator, "create"), _endpoints(emulator, "image")
    late = await _collect(
        zs,
        prompts,
        journal=journal_path,
        batch_id="b",
        output_dir=tmp_path / "machine-b",
        resubmit_expired=True,
    )
    assert [item.paths for item in late] == [item.paths for item in first]
    assert all(item.resumed and item.ok for item in late)
    assert (_endpoints(emulator, "create"), _endpoints(emulator, "image")) == (creates, images)
    assert not (tmp_path / "machine-b").exists() or not any((tmp_path / "machine-b").iterdir())


def test_a_saved_create_whose_links_expired_is_never_sent_again() -> None:
    """resubmit_expired makes a new task only for a create never delivered."""
    saved = _record(
        "key-saved-00000001",
        "https://a.example",
        state=JournalState.SAVED,
        task_id="task-1",
        completed_at=0.0,
        paths=(Path("gone.png"),),
    )
    now, ttl = 200000.0, 86400.0
    assert (
        resume_action(saved, now=now, link_ttl=ttl, resubmit_expired=True, files_present=False)
        is ResumeAction.EXPIRED
    )
    completed = attrs.evolve(saved, state=JournalState.COMPLETED, paths=())
    assert (
        resume_action(completed, now=now, link_ttl=ttl, resubmit_expired=True)
        is ResumeAction.SUBMIT_NEW
    )


async def test_a_deleted_file_whose_links_expired_is_reported_not_billed_again(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """A saved item's own file deleted after its links expired is reported, not sent."""
    journal_path, out = tmp_path / "j.sqlite", tmp_path / "out"
    first = await _collect(zs, ["a cat"], journal=journal_path, batch_id="b", output_dir=out)
    first[0].paths[0].unlink()
    with contextlib.closing(sqlite3.connect(journal_path)) as db, db:  # two days ago
        db.execute("UPDATE zimage_creates SET completed_at = completed_at - 172800")
    again = await _collect(
        zs, ["a cat"], journal=journal_path, batch_id="b", output_dir=out, resubmit_expired=True
    )
    assert isinstance(again[0].error, ImageExpiredError)
    assert "resubmit_expired" not in str(again[0].error)
    assert len(emulator.ledger) == 1


async def test_the_first_creates_of_a_new_price_stay_within_the_limit(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """A fresh journal, concurrency 8, room for two creates: two creates are sent."""
    items = await _collect(
        zs,
        [f"a cat {n}" for n in range(12)],
        journal=tmp_path / "j.sqlite",
        output_dir=tmp_path / "out",
        max_credits=0.06,  # the emulator's price is 0.026 a task
        concurrency=8,
    )
    assert len(emulator.ledger) == 2
    assert sum(item.ok for item in items) == 2
    assert all(isinstance(item.error, SpendLimitError) for item in items if not item.ok)


async def test_a_given_cost_is_each_item_s_expected_cost(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """cost= is checked against the limit before the first price is known.

    A create in flight counts at it until its answer brings the real price (0.026):
    under a limit of 1.5, the creates go one at a time, and all six fit.
    """
    prompts = [f"a cat {n}" for n in range(6)]
    items = await _collect(
        zs,
        prompts,
        journal=tmp_path / "j0.sqlite",
        output_dir=tmp_path / "out",
        max_credits=0.9,
        cost=1.0,
        concurrency=4,
    )
    assert emulator.billed_counts() == {}
    refusals = [item.error for item in items]
    assert all(isinstance(error, SpendLimitError) and error.expected == 1.0 for error in refusals)
    items = await _collect(
        zs,
        prompts,
        journal=tmp_path / "j.sqlite",
        output_dir=tmp_path / "out",
        max_credits=1.5,
        cost=1.0,
        concurrency=4,
    )
    assert emulator.billed_counts() == dict.fromkeys(prompts, 1)
    assert all(item.ok for item in items)


@pytest.mark.parametrize("cost", [0, -1.0, float("nan"), float("inf"), True, "1"])
async def test_a_bad_cost_is_refused_before_any_request(
    zs: Session, emulator: Emulator, tmp_path: Path, cost: object
) -> None:
    """cost= must be a finite number of credits > 0; the error names the field."""
    with pytest.raises(InvalidRequestError, match="cost"):
        await _collect(zs, ["a cat"], journal=tmp_path / "j.sqlite", cost=cost)
    assert not emulator.requests


@pytest.mark.parametrize("cost", [0, -1.0, float("-inf"), float("nan"), True, "0.01"])
async def test_submit_refuses_a_bad_cost_before_any_request(
    emulator: Emulator, tmp_path: Path, cost: object
) -> None:
    """submit(cost=) is checked as generate_many's is: a negative one passed max_credits."""
    async with Session(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        journal=tmp_path / "j.sqlite",
        max_credits=0.05,
    ) as zs:
        with pytest.raises(InvalidRequestError, match="cost"):
            await zs.submit("a cat", cost=cost)  # type: ignore[arg-type]
    assert not emulator.requests


async def test_resubmit_refuses_what_is_not_an_uncertain_create(zs: Session) -> None:
    with pytest.raises(InvalidRequestError, match="SubmissionUncertainError"):
        await zs.resubmit(ValueError("not one"))  # type: ignore[arg-type]
