"""Session(journal=...): every create recorded, unfinished work recovered, spend limited."""

from __future__ import annotations

from pathlib import Path

import pytest

from zimage_async import InvalidRequestError, Session, SpendLimitError
from zimage_async._journal import JournalState, open_journal
from zimage_async.emulator import Emulator

from .conftest import FAST_POLL, FAST_RETRY


def _session(emulator: Emulator, journal: Path | None = None, **options: object) -> Session:
    return Session(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        poll=FAST_POLL,
        retry=FAST_RETRY,
        journal=journal,
        **options,  # type: ignore[arg-type]
    )


async def test_a_generated_image_is_recorded_from_submitting_to_saved(
    emulator: Emulator, tmp_path: Path
) -> None:
    """generate() leaves one saved record with the task id and the credits reserved."""
    async with _session(emulator, tmp_path / "j.sqlite") as zs:
        await zs.generate("a cat", idempotency_key="order-0001-image-0001")
        assert await zs.unfinished() == []
    async with await open_journal(tmp_path / "j.sqlite") as journal:
        record = await journal.get("order-0001-image-0001")
    assert record is not None
    assert record.state is JournalState.SAVED
    assert record.task_id is not None
    assert record.credits_reserved == emulator.ledger[0].credits


async def test_a_restart_recovers_a_created_task_without_a_new_create(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A task submitted by a session that then closed is listed and saved by the next one."""
    async with _session(emulator, tmp_path / "j.sqlite") as zs:
        handle = await zs.submit("a fox")
    async with _session(emulator, tmp_path / "j.sqlite") as zs:
        unfinished = await zs.unfinished()
        assert [record.task_id for record in unfinished] == [handle.id]
        handles = await zs.recover()
        assert [h.id for h in handles] == [handle.id]
        paths = await handles[0].save(tmp_path / "out")
        assert all(path.exists() for path in paths)
        assert await zs.unfinished() == []
    assert len(emulator.ledger) == 1


async def test_the_spend_limit_refuses_a_create_before_sending_it_across_restarts(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Over max_credits, submit raises SpendLimitError and sends nothing, after a restart too."""
    async with _session(emulator, tmp_path / "j.sqlite") as zs:
        await zs.submit("a cat", cost=1.0)
    price = emulator.ledger[0].credits
    async with _session(emulator, tmp_path / "j.sqlite", max_credits=price * 1.5) as zs:
        with pytest.raises(SpendLimitError):
            await zs.submit("a dog")
        assert (await zs.spent()).creates == 1
    assert len(emulator.ledger) == 1


async def test_a_batch_stops_at_its_spend_limit_and_reports_the_rest_as_not_sent(
    emulator: Emulator, tmp_path: Path
) -> None:
    """generate_many(max_credits=...) sends creates only up to the limit."""
    async with _session(emulator, tmp_path / "j.sqlite") as zs:
        await zs.generate("a price probe")
        price = emulator.ledger[0].credits
        prompts = [f"a cat {n}" for n in range(6)]
        async with zs.generate_many(
            prompts, concurrency=1, max_credits=price * 3.5, batch_id="b"
        ) as batch:
            items = [item async for item in batch]
        assert isinstance(batch.stopped_by, SpendLimitError)
    assert sum(item.ok for item in items) == 3
    assert sum(not item.sent for item in items) == 3
    assert len(emulator.ledger) == 4


def test_a_spend_limit_without_a_journal_is_refused() -> None:
    """max_credits needs a journal to count in, so it is refused without one."""
    with pytest.raises(InvalidRequestError, match="journal"):
        Session(api_key="sk-test-key-0000", base_url="http://127.0.0.1:9", max_credits=5)
