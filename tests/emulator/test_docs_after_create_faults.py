"""What the emulator page says about scripted after-create 503s matches what happens."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from zimage_async import PollSchedule, RetryPolicy, Session, SubmissionUncertainError
from zimage_async.emulator import Emulator, FaultPlan, FaultRule

if TYPE_CHECKING:
    from zimage_async.pytest_plugin import EmulatorFactory

PAGE = Path(__file__).resolve().parents[2] / "docs" / "emulator.md"
FAULT = FaultRule(kind="http_503_after_create", retry_after_seconds=0)


def _session(emulator: Emulator) -> Session:
    return Session(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        poll=PollSchedule(wait_min=0.01, wait_max=0.05, timeout=30.0),
        retry=RetryPolicy(wait_initial=0.01, wait_max=0.05),
    )


async def test_scripted_503s_answer_the_replay_too(
    zimage_emulator_factory: EmulatorFactory,
) -> None:
    """With the key honoured, the resend is a replay (unbilled) but gets the next 503."""
    emulator = await zimage_emulator_factory(faults=FaultPlan.script("create", [FAULT] * 5))
    async with _session(emulator) as session:
        with pytest.raises(SubmissionUncertainError):
            await session.generate("a cat")
    (entry,) = emulator.ledger  # the resend was not billed again
    keys = {record.header("Idempotency-Key") for record in emulator.requests}
    assert emulator.request_counts["create"] >= 2
    assert keys == {entry.idempotency_key}
    assert emulator.replayed_requests == ()  # the 503 replaced the replay's answer


async def test_scripted_503s_with_keys_ignored_bill_every_send(
    zimage_emulator_factory: EmulatorFactory,
) -> None:
    """With idempotency="ignore" the create and its resend are both billed."""
    emulator = await zimage_emulator_factory(
        faults=FaultPlan.script("create", [FAULT] * 5), idempotency="ignore"
    )
    async with _session(emulator) as session:
        with pytest.raises(SubmissionUncertainError):
            await session.generate("a cat")
    assert len(emulator.ledger) == emulator.request_counts["create"] == 2


async def test_one_scripted_503_then_the_replay_gets_the_first_task(
    zimage_emulator_factory: EmulatorFactory,
) -> None:
    """A single scripted 503 lets the resend through: the first task comes back, unbilled."""
    emulator = await zimage_emulator_factory(faults=FaultPlan.script("create", [FAULT, "ok"]))
    async with _session(emulator) as session:
        result = await session.generate("a cat")
    (entry,) = emulator.ledger
    assert result.task.id == entry.task_id
    assert len(emulator.replayed_requests) == 1


def test_the_page_does_not_promise_the_first_task_back_under_a_script_of_503s() -> None:
    """The page says the scripted 503 answers the replay too, and how to see the task back."""
    text = " ".join(PAGE.read_text(encoding="utf-8").split())
    assert "with the key honoured, the resend gets the first task back" not in text
    assert re.search(r"answers the replay too", text)
    assert '["http_503_after_create", "ok"]' in text
