"""The spend check reads running totals, not every create the journal ever recorded.

A long-lived service's journal grows by a record per create; a session-wide
``max_credits`` check that summed every record at each create (inside the write
transaction) made each create slower as the journal grew. The stores keep a total per
model and size, for the whole journal and for each batch; these tests hold the totals
to what summing the records gives, through every kind of write, on both backends, and
for a journal written before the totals existed.
"""

from __future__ import annotations

import contextlib
import decimal
import sqlite3
from pathlib import Path

import pytest

from zimage_async import GenerationRequest, SpendLimitError
from zimage_async._journal import (
    Journal,
    JournalRecord,
    JournalState,
    SpendGroup,
    SpendLimit,
    open_journal,
    reserved_credits,
)
from zimage_async._journal_sqlite import SqliteJournal

BASE = "https://api.example"


def _record(
    name: str, *, cost: float | None = None, size: str | None = None, batch: str | None = None
) -> JournalRecord:
    return JournalRecord.for_request(
        GenerationRequest(prompt=name, size=size),
        key=f"key-{name}-0123456789",
        base_url=BASE,
        expected_cost=cost,
        batch_id=batch,
        item_index=None if batch is None else int(name.rsplit("-", 1)[-1]),
    )


async def _summed(journal: Journal, batch_id: str | None = None) -> tuple[float, int, int, int]:
    """What the journal's records add up to, summed here from every record."""
    records = await journal.records(batch_id=batch_id) if batch_id else await journal.records()
    counted = [r for r in records if r.state is not JournalState.REJECTED]
    groups: dict[tuple[str, str | None], list[float]] = {}
    for r in counted:
        known, unpriced = groups.setdefault((r.model, r.size), [0.0, 0])
        cost = r.credits_reserved if r.credits_reserved is not None else r.expected_cost
        groups[r.model, r.size] = [known + (cost or 0.0), unpriced + (cost is None)]
    prices = {}
    for model, size in groups:
        price = await journal.last_price(model, size)
        if price is not None:
            prices[model, size or ""] = price
    credits, unpriced = reserved_credits(
        [
            SpendGroup(model=m, size=s, known_credits=k, unpriced=int(u))
            for (m, s), (k, u) in groups.items()
        ],
        prices,
    )
    uncertain = sum(r.state in (JournalState.SUBMITTING, JournalState.UNCERTAIN) for r in counted)
    return round(credits, 9), len(counted), uncertain, unpriced


async def _reported(journal: Journal, batch_id: str | None = None) -> tuple[float, int, int, int]:
    spend = await journal.spent(batch_id=batch_id)
    return round(spend.credits, 9), spend.creates, spend.uncertain, spend.unpriced


async def _writes(journal: Journal) -> None:
    """Every kind of write a create goes through, across batches, sizes and prices."""
    names = [("solo-0", None), ("solo-1", None), ("b-0", "b"), ("b-1", "b"), ("c-0", "c")]
    for i, (name, batch) in enumerate(names):
        await journal.begin(_record(name, cost=0.1 * (i + 1) if i % 2 else None, batch=batch))
    await journal.begin(_record("sq-0", size="1:1", batch="b"))
    await journal.update(_record("solo-0").key, JournalState.CREATED, task_id="t0")
    await journal.update(
        _record("solo-0").key, JournalState.SAVED, credits_reserved=0.3, completed_at=1.0
    )
    await journal.update(_record("solo-1").key, JournalState.UNCERTAIN)
    await journal.update(_record("b-0").key, JournalState.REJECTED, error_code="bad")
    await journal.update(_record("b-1").key, JournalState.CREATED, task_id="t1")
    await journal.update(_record("b-1").key, JournalState.FAILED, credits_reserved=0.25)
    # Begun again over their earlier rows: a rejected create, an uncertain one.
    await journal.begin(_record("b-0", cost=0.7, batch="b"))
    await journal.begin(_record("solo-1", cost=0.2))
    await journal.update(_record("c-0").key, JournalState.REJECTED)


async def test_the_totals_match_the_records_through_every_write(journal: Journal) -> None:
    """After creates, outcomes, prices, rejections and begins again, spent() sums the records."""
    await _writes(journal)
    for batch in (None, "b", "c", "nobody"):
        assert await _reported(journal, batch) == await _summed(journal, batch), batch
    assert (await journal.spent()).creates == 5  # c-0 rejected; the others count once


async def test_the_check_leaves_out_the_create_being_begun_again(journal: Journal) -> None:
    """A create begun again does not count against itself: a limit it fitted still fits."""
    await journal.begin(_record("again", cost=4.0))
    await journal.update(_record("again").key, JournalState.UNCERTAIN)
    limits = [SpendLimit(max_credits=5.0), SpendLimit(max_credits=5.0, batch_id=None)]
    await journal.begin(_record("again", cost=4.0), limits=limits)
    with pytest.raises(SpendLimitError) as caught:
        await journal.begin(_record("other", cost=2.0), limits=limits)
    assert caught.value.reserved == pytest.approx(4.0)


def _plans(statements: list[str], db: sqlite3.Connection) -> list[str]:
    found = []
    for statement in statements:
        if statement.lstrip().upper().startswith("SELECT"):
            found += [
                f"{row[3]}  <- {statement}" for row in db.execute(f"EXPLAIN QUERY PLAN {statement}")
            ]
    return found


async def test_a_session_wide_check_does_not_read_every_record(tmp_path: Path) -> None:
    """No query of a begin under a journal-wide limit scans the creates table."""
    journal = await SqliteJournal.open(tmp_path / "j.sqlite")
    try:
        for i in range(20):
            await journal.begin(_record(f"old-{i}", cost=0.01))
        statements: list[str] = []
        await journal._run(lambda db: db.set_trace_callback(statements.append))
        await journal.begin(_record("new", cost=0.01), limits=[SpendLimit(max_credits=100)])
        await journal.begin(_record("new-b-0", batch="b"), limits=[SpendLimit(max_credits=100)])
        await journal._run(lambda db: db.set_trace_callback(None))
        plans = await journal._run(lambda db: _plans(statements, db))
        scans = [p for p in plans if p.startswith("SCAN zimage_creates")]
        assert plans and not scans, scans
    finally:
        await journal.close()


async def _drop_totals(target: str) -> None:
    """Take the totals out of *target*'s journal: what an earlier version's journal holds."""
    if target.startswith("postgresql"):
        import asyncpg

        pg = await asyncpg.connect(target)
        try:
            await pg.execute("DROP TABLE IF EXISTS zimage_spend CASCADE")
            await pg.execute("DROP FUNCTION IF EXISTS zimage_spend_count() CASCADE")
        finally:
            await pg.close()
        return
    with contextlib.closing(sqlite3.connect(target)) as db, db:
        for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE name LIKE 'zimage_spend%' AND type = 'trigger'"
        ).fetchall():
            db.execute(f"DROP TRIGGER {name}")
        db.execute("DROP TABLE IF EXISTS zimage_spend")


async def test_a_journal_written_before_the_totals_gets_them(journal_target: str) -> None:
    """A journal with records but no totals (an earlier version's) is counted on opening."""
    async with await open_journal(journal_target) as journal:
        await _writes(journal)
        expected = {b: await _summed(journal, b) for b in (None, "b", "c")}
    await _drop_totals(journal_target)
    async with await open_journal(journal_target) as journal:
        for batch, summed in expected.items():
            assert await _reported(journal, batch) == summed, batch
        await journal.begin(_record("later", cost=1.0))
        assert (await journal.spent()).creates == expected[None][1] + 1
        with pytest.raises(SpendLimitError):
            await journal.begin(_record("over", cost=1.0), limits=[SpendLimit(max_credits=2.0)])


async def test_a_journal_in_its_own_schema_counts_its_own_creates(pg_url: str) -> None:
    """A journal in a schema of its own, another journal's later on the path, has own totals.

    Its tables go to the first schema on its search_path; it neither reads the other
    journal's totals nor leaves its own creates uncounted.
    """
    import asyncpg

    async with await open_journal(pg_url) as other:
        for i in range(3):
            await other.begin(_record(f"other-{i}", cost=5.0))
    pg = await asyncpg.connect(pg_url)
    try:
        await pg.execute("CREATE SCHEMA own")
    finally:
        await pg.close()
    async with await open_journal(pg_url + "?search_path=own,public") as journal:
        assert (await journal.spent()).creates == 0
        limits = [SpendLimit(max_credits=10)]
        await journal.begin(_record("own-0", cost=4.0), limits=limits)
        await journal.begin(_record("own-1", cost=4.0), limits=limits)
        with pytest.raises(SpendLimitError):
            await journal.begin(_record("own-2", cost=4.0), limits=limits)
        assert await _reported(journal) == await _summed(journal) == (8.0, 2, 2, 0)
    async with await open_journal(pg_url) as other:
        assert (await other.spent()).creates == 3


async def _kept_known(target: str) -> float:
    """The journal-wide total of known credits as stored (one model, no size)."""
    query = "SELECT known FROM zimage_spend WHERE scope = ''"
    if target.startswith("postgresql"):
        import asyncpg

        pg = await asyncpg.connect(target)
        try:
            return float(await pg.fetchval(query))
        finally:
            await pg.close()
    with contextlib.closing(sqlite3.connect(target)) as db:
        return float(db.execute(query).fetchone()[0])


async def test_the_kept_total_does_not_drift_with_additions_and_removals(
    journal_target: str,
) -> None:
    """Decimal costs (no exact binary form), added and taken away many times, leave no residue.

    Each begin adds its expected cost; its outcome takes that away and adds the cost
    reported. A float total would keep the rounding of every step (a limit that fits
    exactly would then refuse, or pass by a hair, after enough creates); the totals are
    kept to a billionth of a credit.
    """
    costs = [0.1, 0.7, 0.0125, 0.01, 2.2]
    async with await open_journal(journal_target) as journal:
        for i in range(60):
            record = _record(f"drift-{i}", cost=costs[i % 5])
            await journal.begin(record)
            await journal.update(record.key, JournalState.CREATED, task_id=f"t-{i}")
            await journal.update(
                record.key, JournalState.SAVED, credits_reserved=costs[(i + 2) % 5]
            )
    expected = float(sum(decimal.Decimal(str(costs[(i + 2) % 5])) for i in range(60)))
    assert await _kept_known(journal_target) == expected
