"""Retries and billing honesty under injected faults, on the emulator."""

from __future__ import annotations

import asyncio
import random
import socket

import pytest

from zimage_async import (
    APIConnectionError,
    InternalServerError,
    RateLimitError,
    RetryPolicy,
    Session,
    SubmissionUncertainError,
    TaskStatus,
)
from zimage_async._api import RateGate
from zimage_async.emulator import Emulator, FaultPlan, FaultRule

from .conftest import FAST_POLL, FAST_RETRY

QUICK_429 = FaultRule(kind="http_429", retry_after_seconds=0)
QUICK_503 = FaultRule(kind="http_503", retry_after_seconds=0)
#: The create answers whose outcome is unknown (the task may have been made).
UNKNOWN_OUTCOMES = [
    pytest.param(QUICK_429, id="429"),
    pytest.param(QUICK_503, id="503"),
    pytest.param("http_502", id="502-from-api"),
]


@pytest.mark.parametrize("fault", UNKNOWN_OUTCOMES)
async def test_create_resent_once_after_an_unknown_outcome(
    zs: Session, emulator: Emulator, fault: str | FaultRule
) -> None:
    """A create answered 429, 503 or the API's own 502 is sent once more, same key."""
    emulator.faults = FaultPlan.script("create", [fault])
    handle = await zs.submit("retry me")
    assert emulator.request_counts["create"] == 2
    assert [entry.task_id for entry in emulator.ledger] == [handle.id]


@pytest.mark.parametrize("fault", UNKNOWN_OUTCOMES)
async def test_a_second_unknown_outcome_is_not_sent_again(
    zs: Session, emulator: Emulator, fault: str | FaultRule
) -> None:
    """Two 429s, 503s or 502s in a row: uncertain after two POSTs (either may have billed)."""
    emulator.faults = FaultPlan.script("create", [fault, fault, "ok"])
    with pytest.raises(SubmissionUncertainError) as info:
        await zs.submit("retry me")
    assert emulator.request_counts["create"] == 2
    assert info.value.idempotency_key is not None


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param("http_500", id="500"),
        pytest.param("http_500_after_create", id="500-after-create"),
        pytest.param("reset", id="reset"),
        pytest.param("reset_after_create", id="reset-after-create"),
        pytest.param("malformed_json", id="malformed-200"),
    ],
)
async def test_ambiguous_create_is_never_retried(
    zs: Session, emulator: Emulator, fault: str
) -> None:
    """A create that may have made a task raises SubmissionUncertainError after one POST."""
    emulator.faults = FaultPlan.script("create", [fault])
    with pytest.raises(SubmissionUncertainError) as info:
        await zs.submit("maybe billed")
    assert "may have been created" in str(info.value)
    assert emulator.request_counts["create"] == 1
    assert len(emulator.ledger) <= 1


async def test_ambiguous_500_keeps_its_cause(zs: Session, emulator: Emulator) -> None:
    """The uncertain error carries the 500 it came from."""
    emulator.faults = FaultPlan.script("create", ["http_500"])
    with pytest.raises(SubmissionUncertainError) as info:
        await zs.submit("maybe billed")
    assert isinstance(info.value.cause, InternalServerError)
    assert info.value.__cause__ is info.value.cause


async def test_persistent_rate_limits_end_uncertain(emulator: Emulator) -> None:
    """Persistent 429s end in SubmissionUncertainError over the 429 and its advice."""
    emulator.faults = FaultPlan.script("create", [QUICK_429] * 3)
    async with Session(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        poll=FAST_POLL,
        retry=RetryPolicy(wait_initial=0.01, wait_max=0.02, max_attempts=3),
    ) as session:
        with pytest.raises(SubmissionUncertainError) as info:
            await session.submit("too fast")
    assert isinstance(info.value.cause, RateLimitError)
    assert info.value.cause.retry_after == 0
    assert emulator.request_counts["create"] == 2
    assert len(emulator.ledger) == 0


async def test_overlong_retry_after_is_not_waited_out(emulator: Emulator) -> None:
    """A 429 asking for more than max_retry_after is raised at once (uncertain), not slept on."""
    emulator.faults = FaultPlan.script(
        "create", [FaultRule(kind="http_429", retry_after_seconds=3600)]
    )
    async with Session(
        api_key=emulator.api_key, base_url=emulator.base_url, retry=FAST_RETRY
    ) as session:
        with pytest.raises(SubmissionUncertainError) as info:
            await session.submit("patience")
    assert isinstance(info.value.cause, RateLimitError)
    assert info.value.cause.retry_after == 3600
    assert emulator.request_counts["create"] == 1


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(QUICK_429, id="429"),
        pytest.param("http_500", id="500"),
        pytest.param("http_502", id="502"),
        pytest.param(QUICK_503, id="503"),
        pytest.param("reset", id="reset"),
        pytest.param("malformed_json", id="malformed-json"),
        pytest.param("unknown_fields", id="unknown-fields"),
    ],
)
async def test_polls_survive_faults(
    zs: Session, emulator: Emulator, fault: str | FaultRule
) -> None:
    """Task reads retry through each transient fault and the task completes."""
    emulator.faults = FaultPlan.script("task", [fault, fault])
    result = await zs.generate("poll through faults [[duration:0.3]]")
    assert result.task.status is TaskStatus.COMPLETED
    assert len(emulator.ledger) == 1
    kind = fault.kind if isinstance(fault, FaultRule) else fault
    assert emulator.faults_injected.get(kind, 0) == 2


async def test_rate_gate_holds_submissions_until_the_pause_ends() -> None:
    """The session-wide gate stays shut for the advised time and is never cut short."""
    now = [0.0]
    gate = RateGate(rng=random.Random(0), clock=lambda: now[0])
    gate.pause(2.0)
    gate.pause(1.0)
    assert gate.paused_for == 2.0
    now[0] = 2.0
    assert gate.paused_for == 0.0
    await gate.wait()  # open: returns without sleeping


async def test_an_overlong_429_advice_does_not_freeze_the_gate() -> None:
    """Advice beyond max_retry_after is refused to waiting calls, for that long at most."""
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    gate = RateGate(rng=random.Random(0), clock=lambda: now[0], sleep=sleep, max_pause=120.0)
    gate.pause(999_999.0)
    with pytest.raises(RateLimitError) as caught:
        await gate.wait()
    assert caught.value.retry_after == pytest.approx(999_999.0)
    assert "refused for 120 s" in str(caught.value)
    now[0] = 120.0
    await gate.wait()  # open again by itself, without having slept
    assert slept == []


async def test_a_session_recovers_from_an_absurd_retry_after(
    zs: Session, emulator: Emulator
) -> None:
    """After a 429 asking for 11 days, the next submit fails at once instead of hanging.

    The 429 itself may have come after a task was made: uncertain. The next submit is
    refused by the session's gate before it is sent: a plain RateLimitError.
    """
    emulator.faults = FaultPlan.script(
        "create", [FaultRule(kind="http_429", retry_after_seconds=999_999)]
    )
    with pytest.raises(SubmissionUncertainError):
        await zs.submit("first")
    # Bounded here only so that the defect fails the test instead of hanging it.
    with pytest.raises(RateLimitError):
        await asyncio.wait_for(zs.submit("second"), 10)
    assert emulator.request_counts["create"] == 1
    assert len(emulator.ledger) == 0


async def test_connection_refused_is_a_connection_error() -> None:
    """A server that is not there gives APIConnectionError, request not sent."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with Session(
        api_key="k",
        base_url=f"http://127.0.0.1:{port}/apiv1",
        retry=RetryPolicy(wait_initial=0.01, max_attempts=2),
    ) as session:
        with pytest.raises(APIConnectionError) as info:
            await session.submit("nobody home")
    assert info.value.request_sent is False
