"""The PostgreSQL journal on a real, throwaway server: workers sharing a batch and a limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from zimage_async import GenerationRequest, JournalError, SpendLimitError
from zimage_async._journal import (
    Journal,
    JournalRecord,
    JournalState,
    ResumeAction,
    SpendLimit,
    open_journal,
    resume_action,
)

from ._postgres import PostgresServer, item_record, journals, record


@pytest.fixture
async def workers(pg_url: str) -> AsyncIterator[list[Journal]]:
    """Three journals on one database, each with its own connection pool (three workers)."""
    async with journals(pg_url, 3) as opened:
        yield opened


async def test_workers_claiming_one_batch_never_share_an_item(workers: list[Journal]) -> None:
    """Three workers claim a 40-item batch together: every item exactly once."""
    requests = [GenerationRequest(prompt=f"item {i}") for i in range(40)]
    added = await asyncio.gather(*(w.enqueue("b", requests) for w in workers))

    async def work(journal: Journal, name: str) -> list[int]:
        got: list[int] = []
        while claimed := await journal.claim("b", name, lease_seconds=3600, limit=3):
            got += [item.index for item in claimed]
        return got

    claims = await asyncio.gather(*(work(w, f"w{n}") for n, w in enumerate(workers)))
    every = sorted(index for claimed in claims for index in claimed)
    assert sorted(added) == [0, 0, 40]
    assert every == list(range(40))


async def test_a_leased_item_is_not_taken_until_its_lease_runs_out(
    workers: list[Journal],
) -> None:
    """While its lease runs, an item stays with its holder; once it ran out, another takes it."""
    holder, other, _ = workers
    await holder.enqueue("b", [GenerationRequest(prompt="one"), GenerationRequest(prompt="two")])
    await holder.claim("b", "holder", lease_seconds=3600, limit=1)
    assert [i.index for i in await other.claim("b", "other", lease_seconds=3600, limit=5)] == [1]
    assert await other.claim("b", "other", lease_seconds=3600, limit=5) == []
    assert await holder.renew("b", "holder", lease_seconds=0) == 1
    (taken,) = await other.claim("b", "other", lease_seconds=3600, limit=5)
    assert (taken.index, taken.claimed_by) == (0, "other")


async def test_a_dead_workers_created_task_is_resumed_by_id_not_sent_again(
    workers: list[Journal],
) -> None:
    """After the lease runs out, the taker gets the task id and key; the dead holder is refused."""
    dead, taker, _ = workers
    await dead.enqueue("b", [GenerationRequest(prompt="only")])
    (item,) = await dead.claim("b", "dead", lease_seconds=3600, limit=1)
    record = await dead.begin(item_record(item), worker_id="dead")
    await dead.update(record.key, JournalState.CREATED, task_id="task-7", credits_reserved=1)
    await dead.renew("b", "dead", lease_seconds=0)  # the holder dies: its lease runs out now
    (taken,) = await taker.claim("b", "taker", lease_seconds=3600, limit=1)
    with pytest.raises(JournalError, match="resume that task"):
        await taker.begin(item_record(taken), worker_id="taker")
    assert (taken.key, taken.claimed_by) == (item.key, "taker")
    assert taken.record is not None and taken.record.task_id == "task-7"
    assert resume_action(taken.record, now=0.0, link_ttl=86400.0) is ResumeAction.WAIT


async def test_a_worker_whose_lease_was_taken_cannot_send(workers: list[Journal]) -> None:
    """An uncertain item taken over is resent with its key only by the new holder."""
    slow, taker, _ = workers
    await slow.enqueue("b", [GenerationRequest(prompt="only")])
    (item,) = await slow.claim("b", "slow", lease_seconds=0, limit=1)
    (taken,) = await taker.claim("b", "taker", lease_seconds=3600, limit=1)
    with pytest.raises(JournalError, match="does not hold the lease"):
        await slow.begin(item_record(item), worker_id="slow")
    resent = await taker.begin(item_record(taken), worker_id="taker")
    assert await slow.release("b", "slow", 0, settled=True) is False
    assert resent.key == item.key == taken.key


async def test_concurrent_begins_of_many_workers_never_exceed_the_limit(
    workers: list[Journal],
) -> None:
    """50 concurrent begins from three pools against 10 credits at cost 1: exactly 10 pass."""
    limit = [SpendLimit(max_credits=10)]
    outcomes = await asyncio.gather(
        *(workers[i % 3].begin(record(f"p{i}", cost=1), limits=limit) for i in range(50)),
        return_exceptions=True,
    )
    spend = await workers[0].spent()
    assert sum(isinstance(o, JournalRecord) for o in outcomes) == 10
    assert sum(isinstance(o, SpendLimitError) for o in outcomes) == 40
    assert (spend.credits, spend.creates) == (10.0, 10)


async def test_uncertain_creates_and_the_last_price_count_across_restarts(pg_url: str) -> None:
    """A reopened journal counts uncertain creates and prices unpriced ones at the last price."""
    async with await open_journal(pg_url) as journal:
        first = await journal.begin(record("one"))
        await journal.update(first.key, JournalState.CREATED, task_id="t", credits_reserved=4)
        await journal.begin(record("two"))
        await journal.update(record("two").key, JournalState.UNCERTAIN, error_message="reset")
    async with await open_journal(pg_url) as journal:
        spend = await journal.spent()
        unfinished = await journal.unfinished()
        with pytest.raises(SpendLimitError) as caught:
            await journal.begin(record("three"), limits=[SpendLimit(max_credits=10)])
    assert (spend.credits, spend.uncertain) == (8.0, 1)
    assert [(r.key, r.state) for r in unfinished] == [
        (first.key, JournalState.CREATED),
        (record("two").key, JournalState.UNCERTAIN),
    ]
    assert (caught.value.reserved, caught.value.expected) == (8.0, 4.0)


async def test_a_changed_batch_item_with_a_create_is_refused(workers: list[Journal]) -> None:
    """Enqueueing a batch whose sent item changed raises JournalError naming the index."""
    journal = workers[0]
    await journal.enqueue("b", [GenerationRequest(prompt="a")])
    (item,) = await journal.claim("b", "w", lease_seconds=3600, limit=1)
    await journal.begin(item_record(item), worker_id="w")
    with pytest.raises(JournalError, match="item index 0"):
        await journal.enqueue("b", [GenerationRequest(prompt="b")])


async def test_the_password_is_not_in_the_location(postgres: PostgresServer) -> None:
    """An unreachable URL's error and the journal's location never show the password."""
    pg_url = f"postgresql://postgres:secret-pw@127.0.0.1:{postgres.port}/no_such_db"
    with pytest.raises(JournalError) as caught:
        await open_journal(pg_url)
    assert "secret-pw" not in str(caught.value)
