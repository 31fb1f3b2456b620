"""A create answered 429, 502 or 503 may have made (and billed) a task: never paid twice.

The gateway family's newest client treats those answers to a paid POST as "outcome
unknown" (unless the envelope names a pre-charge refusal), retries such a POST at most
once, with the same idempotency key, and resumes it later with that key. The emulator's
``http_*_after_create`` faults make and bill the task before answering, and with
``idempotency="ignore"`` (our provider's page documents no key) every send bills again,
so the ledger shows what the SDK's own retries cost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
from aiohttp import web

from zimage_async import (
    APIConnectionError,
    InsufficientQuotaError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    Session,
    SubmissionUncertainError,
    UpstreamError,
)
from zimage_async._journal_records import JournalState
from zimage_async._models import GenerationRequest
from zimage_async._outcome import CreateTries, CreateVerdict, Stage, judge_create
from zimage_async.emulator import Emulator, FaultPlan, FaultRule
from zimage_async.pytest_plugin import EmulatorFactory

from .conftest import FAST_POLL, FAST_RETRY, loopback_session, serving

#: The three answers the family's client reads as "outcome unknown", after billing a task.
AFTER_CREATE = [
    pytest.param(
        FaultRule(kind="http_429_after_create", retry_after_seconds=0), RateLimitError, id="429"
    ),
    pytest.param(FaultRule(kind="http_502_after_create"), UpstreamError, id="502"),
    pytest.param(
        FaultRule(kind="http_503_after_create", retry_after_seconds=0),
        ServiceUnavailableError,
        id="503",
    ),
]
QUOTA = FaultRule(kind="http_402", error_code="quota_not_enough")


@pytest.fixture
async def keyless(zimage_emulator_factory: EmulatorFactory) -> Emulator:
    """An emulator that ignores Idempotency-Key: every create it answers bills a task."""
    return await zimage_emulator_factory(task_duration=0.05, seed=1, idempotency="ignore")


@pytest.fixture
async def js(keyless: Emulator, tmp_path: Path) -> AsyncIterator[Session]:
    """A session with a journal on the key-ignoring emulator (five tries per call)."""
    async with Session(
        api_key=keyless.api_key,
        base_url=keyless.base_url,
        poll=FAST_POLL,
        retry=FAST_RETRY,
        journal=tmp_path / "journal.sqlite",
        seed=1,
    ) as session:
        yield session


async def _journal_says(session: Session, key: str) -> tuple[list[JournalState], int, int]:
    records = [r for r in await session.unfinished() if r.key == key]
    spent = await session.spent()
    return [r.state for r in records], spent.creates, spent.uncertain


@pytest.mark.parametrize(("fault", "cause"), AFTER_CREATE)
async def test_an_unknown_outcome_every_time_is_sent_at_most_twice(
    js: Session, keyless: Emulator, fault: FaultRule, cause: type[Exception]
) -> None:
    """Billed and answered 429/502/503 on every send: one resend, then uncertain."""
    keyless.faults = FaultPlan.script("create", [fault] * 5)
    with pytest.raises(SubmissionUncertainError) as caught:
        await js.submit("a lighthouse", cost=1.0)
    error = caught.value
    assert keyless.request_counts["create"] == 2
    assert len(keyless.ledger) == 2  # the one resend the rule allows, no more
    assert {entry.idempotency_key for entry in keyless.ledger} == {error.idempotency_key}
    assert isinstance(error.cause, cause)
    assert error.__cause__ is error.cause
    assert isinstance(error.request, GenerationRequest)
    assert error.request.prompt == "a lighthouse"
    assert error.task_id is None and not error.resent
    assert error.sent == 2 and "sent 2 times" in str(error)
    assert error.idempotency_key is not None
    states, creates, uncertain = await _journal_says(js, error.idempotency_key)
    assert states == [JournalState.UNCERTAIN]
    assert (creates, uncertain) == (1, 1)


@pytest.mark.parametrize(("fault", "cause"), AFTER_CREATE)
async def test_one_unknown_outcome_then_a_task(
    js: Session, keyless: Emulator, fault: FaultRule, cause: type[Exception]
) -> None:
    """One unknown answer, then the resend (same key) makes the task that is returned."""
    keyless.faults = FaultPlan.script("create", [fault])
    handle = await js.submit("a lighthouse")
    assert keyless.request_counts["create"] == 2
    assert [entry.task_id for entry in keyless.ledger][-1] == handle.id
    assert len({entry.idempotency_key for entry in keyless.ledger}) == 1


async def test_a_gateway_that_honours_keys_bills_once(
    zimage_emulator_factory: EmulatorFactory,
) -> None:
    """With keys honoured, the resend after a billed 503 gets the task the first made."""
    emulator = await zimage_emulator_factory(task_duration=0.05, seed=1, idempotency="honour")
    emulator.faults = FaultPlan.script(
        "create", [FaultRule(kind="http_503_after_create", retry_after_seconds=0)]
    )
    async with Session(
        api_key=emulator.api_key, base_url=emulator.base_url, poll=FAST_POLL, retry=FAST_RETRY
    ) as session:
        handle = await session.submit("a lighthouse")
    assert [entry.task_id for entry in emulator.ledger] == [handle.id]
    assert emulator.request_counts["create"] == 2


@pytest.mark.parametrize(
    ("refusal", "cause"),
    [
        pytest.param(QUOTA, InsufficientQuotaError, id="402-quota"),
        pytest.param("http_402", InsufficientQuotaError, id="402"),
        pytest.param("http_403", PermissionDeniedError, id="403"),
    ],
)
async def test_a_refusal_after_an_unknown_outcome_is_not_proof_of_no_task(
    js: Session, keyless: Emulator, refusal: str | FaultRule, cause: type[Exception]
) -> None:
    """503 with a task made, then the resend refused (the task used the last credit)."""
    keyless.faults = FaultPlan.script(
        "create", [FaultRule(kind="http_503_after_create", retry_after_seconds=0), refusal]
    )
    with pytest.raises(SubmissionUncertainError) as caught:
        await js.submit("a lighthouse", cost=1.0)
    error = caught.value
    assert len(keyless.ledger) == 1
    assert keyless.request_counts["create"] == 2
    assert isinstance(error.cause, cause)
    assert error.resent and error.sent == 2
    assert error.idempotency_key == keyless.ledger[0].idempotency_key
    assert "may have been created" in str(error)
    assert error.idempotency_key is not None
    states, creates, uncertain = await _journal_says(js, error.idempotency_key)
    assert states == [JournalState.UNCERTAIN]
    assert (creates, uncertain) == (1, 1)


async def test_an_overlong_advice_on_an_unknown_outcome_is_not_waited_for(
    js: Session, keyless: Emulator
) -> None:
    """A billed 503 asking for an hour: not resent, uncertain, its advice kept."""
    keyless.faults = FaultPlan.script(
        "create", [FaultRule(kind="http_503_after_create", retry_after_seconds=3600)]
    )
    with pytest.raises(SubmissionUncertainError) as caught:
        await js.submit("a lighthouse")
    assert keyless.request_counts["create"] == 1
    assert len(keyless.ledger) == 1
    assert isinstance(caught.value.cause, ServiceUnavailableError)
    assert caught.value.cause.retry_after == 3600
    assert caught.value.sent == 1 and "not sent again" in str(caught.value)


async def test_the_uncertain_create_resumes_with_its_key(
    zimage_emulator_factory: EmulatorFactory,
) -> None:
    """Resubmitting the error sends its key, and a key-honouring gateway returns the task."""
    emulator = await zimage_emulator_factory(task_duration=0.05, seed=1, idempotency="honour")
    emulator.faults = FaultPlan.script(
        "create", [FaultRule(kind="http_503_after_create", retry_after_seconds=0)] * 2
    )
    async with Session(
        api_key=emulator.api_key, base_url=emulator.base_url, poll=FAST_POLL, retry=FAST_RETRY
    ) as session:
        with pytest.raises(SubmissionUncertainError) as caught:
            await session.submit("a lighthouse")
        handle = await session.resubmit(caught.value)
    assert [entry.task_id for entry in emulator.ledger] == [handle.id]
    assert emulator.request_counts["create"] == 3


def _answering_creates(
    status: int, body: Mapping[str, object], posts: list[str | None]
) -> web.Application:
    """A gateway answering every create *status* with *body*; *posts* gets each send's key."""

    async def create(request: web.Request) -> web.Response:
        posts.append(request.headers.get("Idempotency-Key"))
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_post("/apiv1/v1/images/generations", create)
    return app


async def test_a_typeless_pre_charge_refusal_is_a_refusal(tmp_path: Path) -> None:
    """402 with the gateway's ``quota_not_enough`` and no ``type``: refused, nothing spent."""
    posts: list[str | None] = []
    body = {"error": {"code": "quota_not_enough", "message": "quota not enough"}}
    async with (
        serving(_answering_creates(402, body, posts)) as base,
        loopback_session(base, journal=tmp_path / "j.sqlite") as session,
    ):
        with pytest.raises(InsufficientQuotaError) as caught:
            await session.submit("a lighthouse", cost=1.0)
        spent = await session.spent()
        unfinished = await session.unfinished()
    assert caught.value.code == "quota_not_enough"
    assert len(posts) == 1
    assert unfinished == []
    assert (spent.creates, spent.credits) == (0, 0)


@pytest.mark.parametrize("status", [400, 402, 403, 429, 500, 503, 520])
@pytest.mark.parametrize("error_type", [None, "", "refused"])
def test_a_pre_charge_code_is_refused_whatever_the_status_and_type(
    status: int, error_type: str | None
) -> None:
    """The gateway's admission codes are refusals before charging, typed or not."""
    for code in ("quota_not_enough", "insufficient_quota", "key_disabled"):
        verdict = judge_create(
            Stage.ANSWERED, status=status, error_type=error_type, error_code=code
        )
        assert verdict is CreateVerdict.REFUSED


def _tries() -> CreateTries:
    return CreateTries(key="zimage-0123456789abcdef", request=GenerationRequest(prompt="a"))


def test_a_connection_never_opened_is_retried_freely_even_after_an_unknown_outcome() -> None:
    """Nothing was sent: retried as before; but the final error stays uncertain."""
    tries = _tries()
    busy = ServiceUnavailableError("busy", status=503, type="service_unavailable_error")
    refused = APIConnectionError("refused", request_sent=False)
    assert tries.judge(refused) == 0.0
    assert tries.final(refused) is refused  # nothing unknown yet: raised as it is
    assert tries.judge(tries.answered(busy)) == 0.0  # the one resend
    for _ in range(3):
        assert tries.judge(refused) == 0.0
    final = tries.final(refused)
    assert isinstance(final, SubmissionUncertainError)
    assert final.cause is busy and final.idempotency_key == "zimage-0123456789abcdef"
    assert final.sent == 1


def test_a_lost_answer_after_an_unknown_outcome_counts_both_sends() -> None:
    """503, then the resend reset after it was sent: uncertain, sent twice, same key."""
    tries = _tries()
    busy = ServiceUnavailableError("busy", status=503, type="service_unavailable_error")
    assert tries.judge(tries.answered(busy)) == 0.0
    reset = APIConnectionError("reset", request_sent=True)
    lost = SubmissionUncertainError(reset, idempotency_key="zimage-0123456789abcdef")
    assert tries.judge(lost) is None
    final = tries.final(lost)
    assert isinstance(final, SubmissionUncertainError)
    assert (final.cause, final.sent, final.request) == (reset, 2, GenerationRequest(prompt="a"))


def test_the_gates_own_refusal_is_not_an_answer() -> None:
    """The rate gate's RateLimitError (nothing sent) uses no resend and is not unknown."""
    tries = _tries()
    gate = RateLimitError("wait", status=429, type="rate_limit_error", retry_after=999.0)
    assert tries.judge(gate) == 999.0
    assert tries.final(gate) is gate


@pytest.mark.parametrize("status", [429, 502, 503])
@pytest.mark.parametrize(
    "error_type", ["rate_limit_exceeded", "too_many_requests", "new_api_error"]
)
def test_an_unknown_outcome_status_typed_otherwise_is_still_unknown(
    status: int, error_type: str
) -> None:
    """The family's client decides 429, 502 and 503 by status: any other type is no refusal."""
    verdict = judge_create(Stage.ANSWERED, status=status, error_type=error_type, error_code="x")
    assert verdict is CreateVerdict.UNCERTAIN


async def test_a_429_of_another_type_is_not_sent_again_by_a_rerun(tmp_path: Path) -> None:
    """A billing, key-ignoring gateway's 429 typed ``rate_limit_exceeded``: one POST, uncertain.

    Recorded ``rejected``, it counted as nothing spent and every rerun sent it again,
    each send billed.
    """
    posts: list[str | None] = []
    body = {"error": {"type": "rate_limit_exceeded", "code": "rate_limited", "message": "slow"}}
    async with (
        serving(_answering_creates(429, body, posts)) as base,
        loopback_session(base, journal=tmp_path / "j.sqlite") as session,
    ):
        with pytest.raises(SubmissionUncertainError) as caught:
            await session.submit("a lighthouse")
        key = caught.value.idempotency_key
        assert key is not None
        states, creates, uncertain = await _journal_says(session, key)
        handles = await session.recover()  # the default: an uncertain create is not resent
    assert len(posts) == 1
    assert isinstance(caught.value.cause, RateLimitError)
    assert states == [JournalState.UNCERTAIN]
    assert (creates, uncertain) == (1, 1)
    assert handles == [] and len(posts) == 1
