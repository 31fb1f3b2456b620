"""The fault plan: every kind observable by a raw client, billing honesty, scripts, rates."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import aiohttp
import pytest

from zimage_async.emulator import FaultPlan, FaultRule, ManualClock

if TYPE_CHECKING:
    from tests.emulator.conftest import ApiFactory, Eventually


async def test_429_sends_retry_after_header_and_suggestion(api_factory: ApiFactory) -> None:
    """http_429 answers rate_limit_error with Retry-After and a matching suggestion."""
    rule = FaultRule(kind="http_429", retry_after_seconds=7)
    api = await api_factory(faults=FaultPlan.script("create", [rule]))
    reply = await api.create()
    assert reply.status == 429
    assert reply.headers["Retry-After"] == "7"
    assert reply.json()["error"] == {
        "code": 429,
        "message": "Rate limit exceeded",
        "type": "rate_limit_error",
        "fallback_suggestion": "retry after 7 seconds",
    }


@pytest.mark.parametrize(
    ("where", "header", "suggestion"),
    [
        ("header", True, False),
        ("suggestion", False, True),
    ],
)
async def test_429_retry_hint_placement_is_configurable(
    api_factory: ApiFactory, where: str, header: bool, suggestion: bool
) -> None:
    """retry_after_in chooses between the header and the suggestion text."""
    rule = FaultRule(kind="http_429", retry_after_in=where)  # type: ignore[arg-type]
    api = await api_factory(faults=FaultPlan.script("task", [rule]))
    created = await api.create_task()
    reply = await api.task(created["id"])
    assert ("Retry-After" in reply.headers) is header
    assert ("fallback_suggestion" in reply.json()["error"]) is suggestion


@pytest.mark.parametrize(
    ("kind", "status", "error_type", "suggestion"),
    [
        ("http_500", 500, "internal_server_error", "try again later"),
        ("http_502", 502, "upstream_error", "try different model"),
        ("http_503", 503, "service_unavailable_error", "retry after 30 seconds"),
    ],
)
async def test_server_errors_on_create_use_the_documented_envelopes_and_bill_nothing(
    api_factory: ApiFactory, kind: str, status: int, error_type: str, suggestion: str
) -> None:
    """http_500/502/503 on create answer the documented envelope and create no task."""
    api = await api_factory(faults=FaultPlan.script("create", [kind]))
    reply = await api.create()
    assert reply.status == status
    error = reply.json()["error"]
    assert (error["code"], error["type"], error["fallback_suggestion"]) == (
        status,
        error_type,
        suggestion,
    )
    assert api.emulator.ledger == ()
    assert api.emulator.faults_injected == {kind: 1}


async def test_500_after_create_bills_a_task_the_client_never_saw(api_factory: ApiFactory) -> None:
    """http_500_after_create creates and bills a task but answers 500."""
    api = await api_factory(faults=FaultPlan.script("create", ["http_500_after_create"]))
    reply = await api.create()
    assert reply.status == 500
    assert len(api.emulator.ledger) == 1
    task_id = api.emulator.ledger[0].task_id
    assert (await api.task(task_id)).status == 200


async def test_reset_on_create_drops_the_connection_and_bills_nothing(
    api_factory: ApiFactory,
) -> None:
    """A reset aborts the connection without a reply, and no task is created."""
    api = await api_factory(faults=FaultPlan.script("create", ["reset"]))
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await api.create()
    assert api.emulator.ledger == ()
    assert api.emulator.requests[-1].status is None


async def test_reset_after_create_bills_a_task(api_factory: ApiFactory) -> None:
    """The reset_after_create fault bills a task and then drops the connection."""
    api = await api_factory(faults=FaultPlan.script("create", ["reset_after_create"]))
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await api.create()
    assert len(api.emulator.ledger) == 1


async def test_reset_on_task_query_drops_the_connection(api_factory: ApiFactory) -> None:
    """A reset on the task endpoint is seen by a client as a disconnect.

    aiohttp itself retries an idempotent GET once after a disconnect, so two resets are
    scripted for the client to see one.
    """
    api = await api_factory(faults=FaultPlan.script("task", ["reset", "reset"]))
    created = await api.create_task()
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await api.task(created["id"])
    assert api.emulator.faults_injected == {"reset": 2}


async def test_malformed_json_on_task_is_not_parseable(api_factory: ApiFactory) -> None:
    """malformed_json answers 200 with a body that is not valid JSON."""
    api = await api_factory(faults=FaultPlan.script("task", ["malformed_json"]))
    created = await api.create_task()
    reply = await api.task(created["id"])
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        reply.json()


async def test_malformed_json_on_create_still_bills(api_factory: ApiFactory) -> None:
    """A broken 200 reply to create means the task exists and is billed."""
    api = await api_factory(faults=FaultPlan.script("create", ["malformed_json"]))
    reply = await api.create()
    assert reply.status == 200
    with pytest.raises(json.JSONDecodeError):
        reply.json()
    assert len(api.emulator.ledger) == 1


async def test_unknown_fields_are_added_top_level_and_nested(api_factory: ApiFactory) -> None:
    """unknown_fields adds fields at the top level and inside task_info."""
    api = await api_factory(faults=FaultPlan.script("create", ["unknown_fields"]))
    body = await api.create_task()
    assert "x_emulator_trace" in body
    assert "queue_position" in body["task_info"]


async def test_unknown_status_applies_to_unfinished_tasks_only(
    api_factory: ApiFactory, clock: ManualClock
) -> None:
    """unknown_status waits for a poll of an unfinished task; finished tasks are untouched."""
    api = await api_factory(clock=clock, task_duration=10.0)
    done = await api.create_task()
    clock.advance(10.0)
    running = await api.create_task()
    api.emulator.faults = FaultPlan.script("task", ["unknown_status"])
    assert (await api.task_body(done["id"]))["status"] == "completed"
    assert (await api.task_body(running["id"]))["status"] == "queued"
    assert (await api.task_body(running["id"]))["status"] == "pending"
    assert api.emulator.faults_injected == {"unknown_status": 1}


async def test_truncate_sends_fewer_bytes_than_announced(api_factory: ApiFactory) -> None:
    """The truncate fault announces the full Content-Length, sends part of it and closes."""
    api = await api_factory(faults=FaultPlan.script("image", ["truncate"]))
    body = await api.completed_task()
    with pytest.raises(aiohttp.ClientPayloadError):
        await api.request("GET", body["results"][0])
    assert (await api.request("GET", body["results"][0])).status == 200


async def test_redirect_leads_to_the_same_image(api_factory: ApiFactory) -> None:
    """The redirect fault answers 302 to the same file, which a following client downloads."""
    api = await api_factory(faults=FaultPlan.script("image", ["redirect", "redirect"]))
    body = await api.completed_task()
    url = body["results"][0]
    async with api.session.get(url, allow_redirects=False) as response:
        assert response.status == 302
        assert response.headers["Location"].startswith(url)
    followed = await api.request("GET", url)
    assert followed.status == 200
    assert followed.data == await api.emulator.image_bytes(body["id"])


async def test_image_origin_can_answer_503(api_factory: ApiFactory) -> None:
    """An http_503 rule on the image endpoint is answered by the origin."""
    api = await api_factory(faults=FaultPlan.script("image", ["http_503"]))
    body = await api.completed_task()
    assert (await api.request("GET", body["results"][0])).status == 503


async def test_slow_reply_still_arrives(api_factory: ApiFactory) -> None:
    """The slow fault delays a reply that is otherwise normal."""
    rule = FaultRule(kind="slow", delay_seconds=0.05)
    api = await api_factory(faults=FaultPlan.script("create", [rule]))
    reply = await api.create()
    assert reply.status == 200
    assert api.emulator.faults_injected == {"slow": 1}


async def test_slow_reply_is_cut_short_on_close(
    api_factory: ApiFactory, eventually: Eventually
) -> None:
    """Closing the emulator ends a 60 s slow reply instead of waiting for it."""
    rule = FaultRule(kind="slow", delay_seconds=60.0)
    api = await api_factory(faults=FaultPlan.script("task", [rule]))
    created = await api.create_task()
    pending = asyncio.ensure_future(api.task(created["id"]))
    await eventually(lambda: bool(api.emulator.fault_log))
    await asyncio.wait_for(api.emulator.close(), timeout=10.0)
    done, _ = await asyncio.wait({pending}, timeout=10.0)
    assert pending in done


async def test_slow_create_cut_short_on_close_bills_nothing(
    api_factory: ApiFactory, eventually: Eventually
) -> None:
    """A create still waiting in a slow fault when the emulator closes creates no task."""
    rule = FaultRule(kind="slow", delay_seconds=60.0)
    api = await api_factory(faults=FaultPlan.script("create", [rule]))
    pending = asyncio.ensure_future(api.create(callback_url="https://example.com/hook"))
    await eventually(lambda: bool(api.emulator.fault_log))
    await asyncio.wait_for(api.emulator.close(), timeout=10.0)
    await asyncio.wait({pending}, timeout=10.0)
    assert pending.done()
    assert isinstance(pending.exception(), aiohttp.ClientError)
    assert api.emulator.ledger == ()


async def test_script_steps_run_in_order_and_ok_lets_one_through(api_factory: ApiFactory) -> None:
    """A script's steps hit consecutive requests; "ok" passes one; then no more faults."""
    plan = FaultPlan.script("create", ["http_429", "ok", "http_500"])
    api = await api_factory(faults=plan)
    statuses = [(await api.create()).status for _ in range(4)]
    assert statuses == [429, 200, 500, 200]
    assert api.emulator.faults_injected == {"http_429": 1, "http_500": 1}
    assert len(api.emulator.ledger) == 2


async def test_invalid_requests_do_not_use_up_script_steps(api_factory: ApiFactory) -> None:
    """A 400 is answered as such and the scripted fault waits for a valid request."""
    api = await api_factory(faults=FaultPlan.script("create", ["http_503"]))
    assert (await api.create(prompt="")).status == 400
    assert (await api.create()).status == 503


async def test_rate_one_always_fires_and_rate_zero_never(api_factory: ApiFactory) -> None:
    """A rule with rate 1.0 hits every matching request; rate 0.0 none."""
    plan = FaultPlan.random(
        FaultRule(kind="http_502", endpoint="task", rate=0.0),
        FaultRule(kind="http_503", endpoint="task", rate=1.0),
    )
    api = await api_factory(faults=plan)
    created = await api.create_task()
    statuses = [(await api.task(created["id"])).status for _ in range(3)]
    assert statuses == [503, 503, 503]


async def test_rate_draws_are_reproducible_with_a_seed(api_factory: ApiFactory) -> None:
    """Two emulators with the same seed inject the same faults into the same requests."""
    outcomes = []
    for _ in range(2):
        plan = FaultPlan.random(FaultRule(kind="http_503", endpoint="task", rate=0.5))
        api = await api_factory(faults=plan, seed=99, clock=ManualClock())
        created = await api.create_task()
        outcomes.append([(await api.task(created["id"])).status for _ in range(12)])
    assert outcomes[0] == outcomes[1]
    assert set(outcomes[0]) == {200, 503}


async def test_plan_can_be_replaced_at_runtime(api_factory: ApiFactory) -> None:
    """Assigning emulator.faults replaces the plan and stops the old one."""
    api = await api_factory(faults=FaultPlan.random(FaultRule(kind="http_503", endpoint="create")))
    assert (await api.create()).status == 503
    api.emulator.faults = None
    assert (await api.create()).status == 200


async def test_fault_log_records_kind_endpoint_and_time(api_factory: ApiFactory) -> None:
    """Every injected fault is recorded with its kind and endpoint."""
    clock = ManualClock()
    api = await api_factory(clock=clock, faults=FaultPlan.script("create", ["http_502"]))
    await api.create()
    (record,) = api.emulator.fault_log
    assert (record.kind, record.endpoint, record.at) == ("http_502", "create", clock.now())


def test_unknown_fault_kinds_are_refused() -> None:
    """A misspelt kind is a ValueError, not a silently ignored rule."""
    with pytest.raises(ValueError, match="Unknown fault kind"):
        FaultRule(kind="http_418")  # type: ignore[arg-type]


def test_faults_cannot_target_endpoints_they_do_not_apply_to() -> None:
    """A truncate rule on create (or unknown_status on image) is refused up front."""
    with pytest.raises(ValueError, match="applies to"):
        FaultRule(kind="truncate", endpoint="create")
    with pytest.raises(ValueError, match="applies to"):
        FaultPlan.script("image", ["unknown_status"])
