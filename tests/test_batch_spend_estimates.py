"""A spend limit counts a create in flight at its estimate only until its answer.

With ``cost=`` above the real price, several creates in flight may together look over
``max_credits`` though their real prices are far below it. A create refused only
because of the estimates of creates still in flight waits for their answers (their
real price) and is checked again; the stop is final only when what is recorded, plus
its own estimate, is over the limit with nothing in flight. So the outcome does not
depend on ``concurrency``.

So that the refusal happens whenever concurrency lets three creates begin at once, the
answers of the first creates are recorded only once a third create has tried to begin.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from zimage_async import BatchItem, Session, SpendLimitError, _batchrun
from zimage_async._batchjournal import note_created
from zimage_async._journaling import begin_priced
from zimage_async.emulator import Emulator

#: The emulator's price of one task, and the estimate given as ``cost=``.
PRICE = 0.026
COST = 0.1
PROMPTS = [f"a cat {n}" for n in range(6)]


def _answers_after_three_begins(monkeypatch: pytest.MonkeyPatch, concurrency: int) -> None:
    """Hold the record of each create's answer until three creates have tried to begin.

    Or as many as *concurrency* lets begin before an answer (one at a time: the first).
    """
    begun = asyncio.Event()
    attempts = 0

    async def counting_begin(*args: Any, **kwargs: Any) -> Any:
        nonlocal attempts
        attempts += 1
        if attempts >= min(3, concurrency):
            begun.set()
        return await begin_priced(*args, **kwargs)

    async def held_note_created(*args: Any, **kwargs: Any) -> None:
        await asyncio.wait_for(begun.wait(), 30)
        await note_created(*args, **kwargs)

    monkeypatch.setattr(_batchrun, "begin_priced", counting_begin)
    monkeypatch.setattr(_batchrun, "note_created", held_note_created)


async def _run(zs: Session, journal: Path, **options: Any) -> list[BatchItem]:
    async def run() -> list[BatchItem]:
        async with zs.generate_many(PROMPTS, journal=journal, cost=COST, **options) as batch:
            return [item async for item in batch]

    return await asyncio.wait_for(run(), 60)


@pytest.mark.parametrize("concurrency", [1, 3, 6])
async def test_an_over_estimate_in_flight_does_not_stop_the_batch(
    emulator: Emulator,
    zs: Session,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    concurrency: int,
) -> None:
    """Six items at 0.026 each under a limit of 0.25 with cost=0.1: all six are sent."""
    _answers_after_three_begins(monkeypatch, concurrency)
    items = await _run(zs, tmp_path / "j.sqlite", max_credits=0.25, concurrency=concurrency)
    assert sorted(item.index for item in items) == list(range(6))
    assert all(item.ok for item in items), [item.error for item in items]
    assert len(emulator.ledger) == 6
    assert sum(entry.credits for entry in emulator.ledger) == pytest.approx(6 * PRICE)


@pytest.mark.parametrize("concurrency", [1, 3, 6])
async def test_the_stop_comes_when_the_recorded_spend_leaves_no_room(
    emulator: Emulator,
    zs: Session,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    concurrency: int,
) -> None:
    """Limit 0.15: two creates fit (0.026 + 0.026 + 0.1 is over), at any concurrency."""
    _answers_after_three_begins(monkeypatch, concurrency)
    journal = tmp_path / "j.sqlite"
    batch = zs.generate_many(
        PROMPTS, journal=journal, cost=COST, max_credits=0.15, concurrency=concurrency
    )
    async with batch:
        items = await asyncio.wait_for(_collect(batch), 60)
    assert len(emulator.ledger) == 2
    assert sum(item.sent for item in items) == 2
    assert all(item.ok for item in items if item.sent)
    unsent = [item for item in items if not item.sent]
    assert len(unsent) == 4
    assert all(isinstance(item.error, SpendLimitError) for item in unsent)
    assert isinstance(batch.stopped_by, SpendLimitError)
    assert batch.stopped_by.reserved == pytest.approx(2 * PRICE)


async def _collect(batch: Any) -> list[BatchItem]:
    return [item async for item in batch]
