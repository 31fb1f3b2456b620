"""The journal's pure decisions, and the SQLite journal: restarts, limits, claims."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
from pathlib import Path

import pytest

from zimage_async import GenerationRequest, JournalError, ManifestError, SpendLimitError
from zimage_async._journal import (
    JournalRecord,
    JournalState,
    ResumeAction,
    SpendGroup,
    SpendLimit,
    begin_refusal,
    check_spend,
    expected_cost,
    open_journal,
    reserved_credits,
    resume_action,
)
from zimage_async._journal_sqlite import SqliteJournal
from zimage_async._manifest import Manifest, RowState

BASE = "https://api.example"
DAY = 86400.0


def _record(
    prompt: str = "a cat",
    *,
    key: str | None = None,
    cost: float | None = None,
    size: str | None = None,
    batch_id: str | None = None,
    index: int | None = None,
) -> JournalRecord:
    return JournalRecord.for_request(
        GenerationRequest(prompt=prompt, size=size),
        key=key or f"key-{prompt.replace(' ', '-')}-0123456789",
        base_url=BASE,
        expected_cost=cost,
        batch_id=batch_id,
        item_index=index,
    )


class Clock:
    """A settable clock for leases (Unix seconds)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


# -- pure decisions -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reserved", "expected", "ok"),
    [
        pytest.param(9.0, 1.0, True, id="exactly-at-the-limit"),
        pytest.param(9.5, 1.0, False, id="over-by-half"),
        pytest.param(9.0, None, True, id="unknown-cost-below-limit"),
        pytest.param(10.0, None, False, id="unknown-cost-at-limit"),
        pytest.param(0.0, 11.0, False, id="one-create-over-the-limit"),
    ],
)
def test_the_spend_check_admits_up_to_the_limit(
    reserved: float, expected: float | None, ok: bool
) -> None:
    """A create fits while reserved plus its cost stays at or under max_credits."""
    verdict = check_spend(SpendLimit(max_credits=10), reserved=reserved, expected=expected)
    assert (verdict is None) is ok


def test_a_refusal_names_the_limit_the_reserved_and_the_expected_cost() -> None:
    """SpendLimitError carries the three numbers and the batch, and says nothing was sent."""
    error = check_spend(SpendLimit(max_credits=5, batch_id="b"), reserved=4.5, expected=1.0)
    assert isinstance(error, SpendLimitError)
    assert (error.max_credits, error.reserved, error.expected, error.batch_id) == (5, 4.5, 1, "b")
    assert "nothing was sent" in str(error) and "batch 'b'" in str(error)


def test_a_negative_limit_is_refused() -> None:
    """max_credits below zero is a ValueError naming the field."""
    with pytest.raises(ValueError, match="max_credits"):
        SpendLimit(max_credits=-0.5)


def test_the_expected_cost_is_the_callers_else_the_last_price() -> None:
    """A given cost wins; else the last price; else unknown (None)."""
    assert expected_cost(given=2, last_price=1.0) == 2.0
    assert expected_cost(given=None, last_price=1.0) == 1.0
    assert expected_cost(given=None, last_price=None) is None


def test_unpriced_creates_count_at_the_last_price_once_one_is_seen() -> None:
    """Creates of unknown cost count 0 until their model and size have a price."""
    groups = [
        SpendGroup(model="m", size="1:1", known_credits=2.0, unpriced=3),
        SpendGroup(model="m", size=None, known_credits=0.0, unpriced=1),
    ]
    assert reserved_credits(groups, {}) == (2.0, 4)
    assert reserved_credits(groups, {("m", "1:1"): 0.5}) == (3.5, 1)


def _with(state: JournalState, **changes: object) -> JournalRecord:
    import attrs

    return attrs.evolve(_record(), state=state, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("record", "options", "action"),
    [
        pytest.param(None, {}, ResumeAction.SUBMIT, id="never-begun"),
        pytest.param(_with(JournalState.REJECTED), {}, ResumeAction.SUBMIT, id="rejected"),
        pytest.param(
            _with(JournalState.SUBMITTING), {}, ResumeAction.REPORT_UNCERTAIN, id="submitting"
        ),
        pytest.param(
            _with(JournalState.UNCERTAIN),
            {"resubmit_uncertain": True},
            ResumeAction.RESUBMIT,
            id="uncertain-resubmitted",
        ),
        pytest.param(_with(JournalState.CREATED, task_id="t"), {}, ResumeAction.WAIT, id="created"),
        pytest.param(
            _with(JournalState.COMPLETED, task_id="t", completed_at=0.0),
            {},
            ResumeAction.WAIT,
            id="completed-links-valid",
        ),
        pytest.param(
            _with(JournalState.COMPLETED, task_id="t", completed_at=-DAY - 1),
            {},
            ResumeAction.EXPIRED,
            id="completed-links-expired",
        ),
        pytest.param(
            _with(JournalState.SAVED, task_id="t", completed_at=-DAY - 1),
            {},
            ResumeAction.DONE,
            id="saved",
        ),
        pytest.param(
            _with(JournalState.SAVED, task_id="t", completed_at=0.0),
            {"files_present": False},
            ResumeAction.WAIT,
            id="saved-files-gone",
        ),
        pytest.param(
            _with(JournalState.FAILED, task_id="t"), {}, ResumeAction.REPORT_FAILED, id="failed"
        ),
        pytest.param(
            _with(JournalState.FAILED, task_id="t"),
            {"resubmit_failed": True},
            ResumeAction.SUBMIT_NEW,
            id="failed-resubmitted",
        ),
        pytest.param(
            _with(JournalState.SUBMITTING),
            {"resend_submitting": True},
            ResumeAction.RESUBMIT,
            id="submitting-taken-over",
        ),
        pytest.param(
            _with(JournalState.UNCERTAIN),
            {"resend_submitting": True},
            ResumeAction.REPORT_UNCERTAIN,
            id="uncertain-not-resent-when-taken-over",
        ),
        pytest.param(
            _with(JournalState.SUBMITTING, task_id=None),
            {"resubmit_uncertain": True},
            ResumeAction.RESUBMIT,
            id="submitting-resubmitted",
        ),
        pytest.param(
            _with(JournalState.COMPLETED, task_id="t", completed_at=-DAY - 1),
            {"resubmit_expired": True},
            ResumeAction.SUBMIT_NEW,
            id="expired-resubmitted",
        ),
        pytest.param(
            _with(JournalState.EXPIRED, task_id="t", completed_at=-DAY - 1),
            {},
            ResumeAction.EXPIRED,
            id="settled-as-expired",
        ),
        pytest.param(
            _with(JournalState.EXPIRED, task_id="t", completed_at=-DAY - 1),
            {"resubmit_expired": True},
            ResumeAction.SUBMIT_NEW,
            id="settled-as-expired-resubmitted",
        ),
        pytest.param(
            _with(JournalState.SAVED, task_id="t", completed_at=-DAY - 1),
            {"files_present": False},
            ResumeAction.EXPIRED,
            id="saved-files-gone-links-expired",
        ),
        pytest.param(
            _with(JournalState.SAVED, task_id="t", completed_at=-DAY - 1),
            {"files_present": False, "resubmit_expired": True},
            ResumeAction.EXPIRED,
            id="saved-files-gone-expired-never-resubmitted",
        ),
        pytest.param(
            _with(JournalState.FAILED, task_id="t"),
            {"resubmit_uncertain": True, "resubmit_expired": True},
            ResumeAction.REPORT_FAILED,
            id="failed-not-resubmitted-by-other-options",
        ),
    ],
)
def test_the_resume_action_follows_the_state(
    record: JournalRecord | None, options: dict[str, bool], action: ResumeAction
) -> None:
    """A task id is waited for; an unknown one is resent only with its key, on request."""
    assert resume_action(record, now=0.0, link_ttl=DAY, **options) is action


def test_a_key_is_never_begun_again_for_another_request_or_a_known_task() -> None:
    """Same key: another request or an existing task refuses; an uncertain create may resend."""
    record = _record(key="shared-key-0123456789")
    other = _record("a dog", key="shared-key-0123456789")
    assert begin_refusal(_with(JournalState.UNCERTAIN), _record()) is None
    assert "another request" in (begin_refusal(record, other) or "")
    assert "resume that task" in (
        begin_refusal(_with(JournalState.CREATED, task_id="t"), _record()) or ""
    )


# -- the SQLite journal ----------------------------------------------------------------


async def test_records_keys_and_spend_survive_a_restart(tmp_path: Path) -> None:
    """Close and reopen: the record, its key, task id, price and spend are all there."""
    path = tmp_path / "journal.sqlite"
    async with await open_journal(path) as journal:
        await journal.begin(_record(key="restart-key-0123456789"))
        await journal.update(
            "restart-key-0123456789", JournalState.CREATED, task_id="t-1", credits_reserved=2.5
        )
        await journal.begin(_record("a dog", key="uncertain-key-0123456789"))
        await journal.update(
            "uncertain-key-0123456789", JournalState.UNCERTAIN, error_message="reset"
        )
    async with await open_journal(path) as journal:
        record = await journal.get("restart-key-0123456789")
        unfinished = await journal.unfinished()
        spend = await journal.spent()
        price = await journal.last_price("z-image-turbo", None)
    assert record is not None and (record.state, record.task_id) == (JournalState.CREATED, "t-1")
    assert [r.key for r in unfinished] == ["restart-key-0123456789", "uncertain-key-0123456789"]
    assert (spend.credits, spend.creates, spend.uncertain, price) == (5.0, 2, 1, 2.5)


async def test_a_create_over_the_limit_is_refused_and_not_written(tmp_path: Path) -> None:
    """SpendLimitError comes from begin, before anything is written, so nothing is sent."""
    async with await open_journal(tmp_path / "j.sqlite") as journal:
        await journal.begin(_record("one", cost=6), limits=[SpendLimit(max_credits=10)])
        with pytest.raises(SpendLimitError) as caught:
            await journal.begin(_record("two", cost=5), limits=[SpendLimit(max_credits=10)])
        assert await journal.get(_record("two").key) is None
    assert (caught.value.reserved, caught.value.expected) == (6.0, 5.0)


async def test_the_limit_holds_across_a_restart(tmp_path: Path) -> None:
    """What earlier runs reserved (uncertain creates included) counts after reopening."""
    path = tmp_path / "j.sqlite"
    async with await open_journal(path) as journal:
        await journal.begin(_record("one", cost=4))
        await journal.update(_record("one").key, JournalState.UNCERTAIN)
        await journal.begin(_record("two", cost=4))
        await journal.update(_record("two").key, JournalState.REJECTED)
    async with await open_journal(path) as journal:
        await journal.begin(_record("three", cost=4), limits=[SpendLimit(max_credits=8)])
        with pytest.raises(SpendLimitError):
            await journal.begin(_record("four", cost=1), limits=[SpendLimit(max_credits=8)])


async def test_the_last_price_of_a_model_and_size_is_the_expected_cost(tmp_path: Path) -> None:
    """Without a given cost, a create is expected to cost what the last one reported."""
    async with await open_journal(tmp_path / "j.sqlite") as journal:
        first = await journal.begin(_record("one", size="16:9"))
        await journal.update(first.key, JournalState.CREATED, task_id="t", credits_reserved=3.0)
        second = await journal.begin(_record("two", size="16:9"))
        other_size = await journal.begin(_record("three", size="1:1"))
        with pytest.raises(SpendLimitError):
            await journal.begin(_record("four", size="16:9"), limits=[SpendLimit(max_credits=8)])
    assert (first.expected_cost, second.expected_cost, other_size.expected_cost) == (
        None,
        3.0,
        None,
    )


async def test_unpriced_creates_in_flight_count_once_a_price_is_seen(tmp_path: Path) -> None:
    """Creates begun before any price was known are counted at it once it is."""
    async with await open_journal(tmp_path / "j.sqlite") as journal:
        for prompt in ("one", "two", "three"):
            await journal.begin(_record(prompt))
        before = await journal.spent()
        await journal.update(
            _record("one").key, JournalState.CREATED, task_id="t", credits_reserved=2
        )
        after = await journal.spent()
    assert (before.credits, before.unpriced) == (0.0, 3)
    assert (after.credits, after.unpriced) == (6.0, 0)


async def test_a_batch_limit_counts_only_that_batch(tmp_path: Path) -> None:
    """A SpendLimit with a batch id ignores creates of other batches and single ones."""
    async with await open_journal(tmp_path / "j.sqlite") as journal:
        await journal.begin(_record("single", cost=5))
        await journal.begin(_record("a0", cost=1, batch_id="a", index=0))
        limits = [SpendLimit(max_credits=2, batch_id="a"), SpendLimit(max_credits=100)]
        await journal.begin(_record("a1", cost=1, batch_id="a", index=1), limits=limits)
        with pytest.raises(SpendLimitError) as caught:
            await journal.begin(_record("a2", cost=1, batch_id="a", index=2), limits=limits)
    assert (caught.value.batch_id, caught.value.reserved) == ("a", 2.0)


async def test_concurrent_begins_never_exceed_the_limit(tmp_path: Path) -> None:
    """50 concurrent begins on two connections, limit 10, cost 1: exactly 10 are written."""
    path = tmp_path / "j.sqlite"
    async with await open_journal(path) as one, await open_journal(path) as two:
        outcomes = await asyncio.gather(
            *(
                (one if i % 2 else two).begin(
                    _record(f"p{i}", cost=1), limits=[SpendLimit(max_credits=10)]
                )
                for i in range(50)
            ),
            return_exceptions=True,
        )
        spend = await one.spent()
    assert sum(isinstance(o, JournalRecord) for o in outcomes) == 10
    assert sum(isinstance(o, SpendLimitError) for o in outcomes) == 40
    assert spend.credits == 10.0


async def test_a_key_with_a_task_cannot_be_begun_again(tmp_path: Path) -> None:
    """Sending a create again whose task exists is refused; an uncertain one may resend."""
    async with await open_journal(tmp_path / "j.sqlite") as journal:
        await journal.begin(_record("one"))
        await journal.update(_record("one").key, JournalState.UNCERTAIN)
        again = await journal.begin(_record("one"))
        await journal.update(again.key, JournalState.CREATED, task_id="t-1")
        with pytest.raises(JournalError, match="resume that task"):
            await journal.begin(_record("one"))
    assert again.state is JournalState.SUBMITTING


async def test_updating_an_unknown_key_is_an_error(tmp_path: Path) -> None:
    """update() on a key the journal never began raises JournalError."""
    async with await open_journal(tmp_path / "j.sqlite") as journal:
        with pytest.raises(JournalError, match="no create with key"):
            await journal.update("never-begun-0123456789", JournalState.CREATED)


async def test_concurrent_claims_never_share_an_item(tmp_path: Path) -> None:
    """Three workers on two connections claim a batch together: each item exactly once."""
    path = tmp_path / "j.sqlite"
    requests = [GenerationRequest(prompt=f"item {i}") for i in range(25)]
    async with await open_journal(path) as one, await open_journal(path) as two:
        await asyncio.gather(one.enqueue("b", requests), two.enqueue("b", requests))

        async def worker(journal: SqliteJournal | object, name: str) -> list[int]:
            assert isinstance(journal, SqliteJournal)
            got: list[int] = []
            while batch := await journal.claim("b", name, lease_seconds=3600, limit=3):
                got += [item.index for item in batch]
            return got

        claims = await asyncio.gather(worker(one, "w1"), worker(two, "w2"), worker(one, "w3"))
        items = await one.items("b")
    every = [index for claimed in claims for index in claimed]
    assert sorted(every) == list(range(25))
    assert len(items) == 25


async def test_an_expired_lease_is_taken_over_with_its_key_and_task(tmp_path: Path) -> None:
    """A dead worker's item goes to another after the lease, keeping key and task id."""
    clock = Clock()
    journal = await SqliteJournal.open(tmp_path / "j.sqlite", clock=clock)
    try:
        await journal.enqueue("b", [GenerationRequest(prompt="only")])
        (item,) = await journal.claim("b", "dead", lease_seconds=60, limit=10)
        record = JournalRecord.for_request(
            item.request(), key=item.key, base_url=BASE, batch_id="b", item_index=0
        )
        await journal.begin(record, worker_id="dead")
        await journal.update(item.key, JournalState.CREATED, task_id="t-9")
        assert await journal.claim("b", "taker", lease_seconds=60, limit=10) == []
        clock.now += 61
        (taken,) = await journal.claim("b", "taker", lease_seconds=60, limit=10)
        assert await journal.release("b", "dead", 0, settled=True) is False
    finally:
        await journal.close()
    assert (taken.key, taken.claimed_by, taken.record and taken.record.task_id) == (
        item.key,
        "taker",
        "t-9",
    )


async def test_a_worker_that_lost_its_lease_cannot_send(tmp_path: Path) -> None:
    """After a takeover, the old holder's begin is refused; the taker resends with the key."""
    clock = Clock()
    journal = await SqliteJournal.open(tmp_path / "j.sqlite", clock=clock)
    try:
        await journal.enqueue("b", [GenerationRequest(prompt="only")])
        (item,) = await journal.claim("b", "slow", lease_seconds=60, limit=1)
        record = JournalRecord.for_request(
            item.request(), key=item.key, base_url=BASE, batch_id="b", item_index=0
        )
        await journal.begin(record, worker_id="slow")
        clock.now += 61
        (taken,) = await journal.claim("b", "taker", lease_seconds=60, limit=1)
        with pytest.raises(JournalError, match="does not hold the lease"):
            await journal.begin(record, worker_id="slow")
        resent = await journal.begin(record, worker_id="taker")
    finally:
        await journal.close()
    assert taken.state is JournalState.SUBMITTING
    assert resume_action(taken.record, now=clock.now, link_ttl=DAY, resubmit_uncertain=True) is (
        ResumeAction.RESUBMIT
    )
    assert resent.key == item.key


async def test_renewing_keeps_an_item_and_releasing_settles_it(tmp_path: Path) -> None:
    """A renewed lease is not taken over; a settled item is never claimed again."""
    clock = Clock()
    journal = await SqliteJournal.open(tmp_path / "j.sqlite", clock=clock)
    try:
        await journal.enqueue("b", [GenerationRequest(prompt="only")])
        await journal.claim("b", "w1", lease_seconds=60, limit=1)
        clock.now += 50
        assert await journal.renew("b", "w1", lease_seconds=60) == 1
        clock.now += 50
        assert await journal.claim("b", "w2", lease_seconds=60, limit=1) == []
        assert await journal.release("b", "w1", 0, settled=True)
        clock.now += 1000
        assert await journal.claim("b", "w2", lease_seconds=60, limit=1) == []
    finally:
        await journal.close()


async def test_reopening_keeps_the_key_of_an_uncertain_item_not_of_a_failed_one(
    tmp_path: Path,
) -> None:
    """An uncertain item is resent with its key; a failed one gets a new key (a new task)."""
    async with await open_journal(tmp_path / "j.sqlite") as journal:
        requests = [GenerationRequest(prompt="a"), GenerationRequest(prompt="b")]
        await journal.enqueue("b", requests)
        items = await journal.claim("b", "w", lease_seconds=60, limit=2)
        for item, state in zip(items, (JournalState.UNCERTAIN, JournalState.FAILED), strict=True):
            record = JournalRecord.for_request(
                item.request(), key=item.key, base_url=BASE, batch_id="b", item_index=item.index
            )
            await journal.begin(record, worker_id="w")
            await journal.update(
                item.key, state, task_id="t" if state is JournalState.FAILED else None
            )
            await journal.release("b", "w", item.index, settled=True)
        reopened = await journal.reopen("b", {JournalState.UNCERTAIN, JournalState.FAILED})
        again = await journal.claim("b", "w", lease_seconds=60, limit=2)
    assert reopened == 2
    assert again[0].key == items[0].key and again[0].state is JournalState.UNCERTAIN
    assert again[1].key != items[1].key and again[1].state is None


async def test_enqueue_refuses_a_changed_item_that_has_a_task(tmp_path: Path) -> None:
    """A changed request replaces an unsent item (new key), but not one whose create was sent."""
    async with await open_journal(tmp_path / "j.sqlite") as journal:
        assert (
            await journal.enqueue(
                "b", [GenerationRequest(prompt="a"), GenerationRequest(prompt="b")]
            )
            == 2
        )
        assert (
            await journal.enqueue(
                "b", [GenerationRequest(prompt="a"), GenerationRequest(prompt="b")]
            )
            == 0
        )
        first, second = await journal.items("b")
        await journal.begin(
            JournalRecord.for_request(
                first.request(), key=first.key, base_url=BASE, batch_id="b", item_index=0
            )
        )
        await journal.enqueue("b", [GenerationRequest(prompt="a"), GenerationRequest(prompt="c")])
        with pytest.raises(JournalError, match=r"item index 0"):
            await journal.enqueue(
                "b", [GenerationRequest(prompt="x"), GenerationRequest(prompt="c")]
            )
        after = await journal.items("b")
    assert after[1].request().prompt == "c" and after[1].key != second.key


async def test_an_old_batch_manifest_opens_as_a_journal(tmp_path: Path) -> None:
    """A manifest's rows become its batch's items and creates, keys and task ids kept."""
    path = tmp_path / "manifest.sqlite"
    manifest = Manifest.open(path, batch_id="old")
    cat, dog = GenerationRequest(prompt="a cat"), GenerationRequest(prompt="a dog")
    manifest.record(
        0, cat, RowState.SAVED, base_url=BASE, task_id="t-0", paths=[tmp_path / "0.png"]
    )
    manifest.record(
        1, dog, RowState.CREATED, base_url=BASE, task_id="t-1", idempotency_key="dog-key-0123456789"
    )
    manifest.close()
    async with await open_journal(path) as journal:
        items = await journal.items("old")
        unfinished = await journal.unfinished()
        claimable = await journal.claim("old", "w", lease_seconds=60, limit=10)
    assert [i.state for i in items] == [JournalState.SAVED, JournalState.CREATED]
    assert [(r.key, r.task_id) for r in unfinished] == [("dog-key-0123456789", "t-1")]
    assert [i.index for i in claimable] == [1]


def test_a_journal_file_given_as_a_manifest_is_refused_with_a_message(tmp_path: Path) -> None:
    """Opening a journal as a manifest says it is a journal, and leaves it untouched."""
    path = tmp_path / "journal.sqlite"
    asyncio.run(_make_journal(path))
    with pytest.raises(ManifestError, match="is a zimage journal, not a batch manifest"):
        Manifest.open(path, batch_id="b")
    with contextlib.closing(sqlite3.connect(path)) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    assert "meta" not in tables


async def _make_journal(path: Path) -> None:
    journal = await open_journal(path)
    await journal.close()


async def test_a_file_that_is_not_a_journal_is_refused(tmp_path: Path) -> None:
    """A random file gives JournalError naming it, and is left untouched."""
    path = tmp_path / "notes.txt"
    path.write_text("hello, not a database\n" * 100)
    with pytest.raises(JournalError, match="is not a zimage journal"):
        await open_journal(path)
    assert path.read_text().startswith("hello")


async def test_a_postgres_url_without_asyncpg_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without asyncpg installed, a postgresql:// journal says to install the extra."""
    monkeypatch.setitem(sys.modules, "asyncpg", None)
    with pytest.raises(JournalError, match="postgres extra"):
        await open_journal("postgresql://user@127.0.0.1:1/db")


async def test_another_url_scheme_is_refused(tmp_path: Path) -> None:
    """A URL that is neither a path nor postgresql:// is refused, not made a file."""
    with pytest.raises(JournalError, match="mysql://"):
        await open_journal("mysql://host/db")


async def test_a_closed_journal_refuses_work_and_closes_twice(tmp_path: Path) -> None:
    """close() is idempotent; a call after it raises JournalError."""
    journal = await open_journal(tmp_path / "j.sqlite")
    await journal.close()
    await journal.close()
    with pytest.raises(JournalError, match="closed"):
        await journal.spent()
