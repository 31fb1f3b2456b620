"""Callback delivery to a loopback receiver: body, retries, clock, shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web

from zimage_async.emulator import FaultPlan, FaultRule, ManualClock

if TYPE_CHECKING:
    from tests.emulator.conftest import Api, ApiFactory


class Receiver:
    """A loopback HTTP server that records callback bodies and answers scripted statuses."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.url = ""
        self._changed = asyncio.Condition()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        async with self._changed:
            self.bodies.append(body)
            self._changed.notify_all()
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status)

    async def wait_for(self, count: int, *, timeout_seconds: float = 10.0) -> list[dict[str, Any]]:
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: len(self.bodies) >= count), timeout_seconds
            )
        return self.bodies


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        yield receiver
    finally:
        await runner.cleanup()


async def test_callback_posts_the_completed_task(api: Api, receiver: Receiver) -> None:
    """A completed task is POSTed to its callback_url with the same body as GET."""
    created = await api.create_task(callback_url=receiver.url)
    (body,) = await receiver.wait_for(1)
    assert body["id"] == created["id"]
    assert body["status"] == "completed"
    assert body == await api.task_body(created["id"])
    (attempt,) = api.emulator.callback_attempts
    assert (attempt.attempt, attempt.status, attempt.delivered) == (1, 200, True)
    assert api.emulator.request_counts["callback"] == 1


async def test_callback_posts_failed_tasks_too(api: Api, receiver: Receiver) -> None:
    """A failed task is delivered as well, with its error."""
    await api.create_task(prompt="[[fail:resource_exhausted]]", callback_url=receiver.url)
    (body,) = await receiver.wait_for(1)
    assert body["status"] == "failed"
    assert body["error"]["code"] == "resource_exhausted"


async def test_callback_is_retried_after_server_errors(api: Api, receiver: Receiver) -> None:
    """A receiver answering 500 twice gets a third attempt, which succeeds."""
    receiver.statuses = [500, 500]
    await api.create_task(callback_url=receiver.url)
    await receiver.wait_for(3)
    await asyncio.wait_for(api.emulator.wait_for_callbacks(), timeout=10.0)
    attempts = api.emulator.callback_attempts
    assert [(a.attempt, a.status) for a in attempts] == [(1, 500), (2, 500), (3, 200)]


async def test_callback_gives_up_after_three_retries(api: Api, receiver: Receiver) -> None:
    """After the first attempt and three retries fail, delivery stops."""
    receiver.statuses = [503] * 10
    await api.create_task(callback_url=receiver.url)
    await receiver.wait_for(4)
    await asyncio.wait_for(api.emulator.wait_for_callbacks(), timeout=10.0)
    assert [a.attempt for a in api.emulator.callback_attempts] == [1, 2, 3, 4]
    assert not any(a.delivered for a in api.emulator.callback_attempts)


async def test_unreachable_receiver_is_recorded_as_an_error(
    api_factory: ApiFactory, receiver: Receiver
) -> None:
    """A connection failure is recorded as an attempt with an error and no status."""
    api = await api_factory(callback_retry_delays=())
    await api.create_task(callback_url="http://127.0.0.1:9/hook")
    await asyncio.wait_for(api.emulator.wait_for_callbacks(), timeout=10.0)
    (attempt,) = api.emulator.callback_attempts
    assert attempt.status is None
    assert attempt.error


async def test_callback_waits_for_the_manual_clock(
    api_factory: ApiFactory, receiver: Receiver
) -> None:
    """On a ManualClock the callback fires only once the clock reaches the task's end."""
    clock = ManualClock()
    api = await api_factory(clock=clock, task_duration=10.0)
    created = await api.create_task(callback_url=receiver.url)
    clock.advance(9.9)
    assert (await api.task_body(created["id"]))["status"] == "processing"
    assert receiver.bodies == []
    clock.advance(0.1)
    (body,) = await receiver.wait_for(1)
    assert body["status"] == "completed"


async def test_close_cancels_pending_callbacks(api_factory: ApiFactory, receiver: Receiver) -> None:
    """Closing the emulator cancels deliveries that are still waiting, without warnings."""
    api = await api_factory(clock=ManualClock(), task_duration=10.0)
    await api.create_task(callback_url=receiver.url)
    await api.emulator.close()
    assert receiver.bodies == []
    assert api.emulator.callback_attempts == ()


async def test_callback_body_can_carry_a_null_shape(
    api_factory: ApiFactory, receiver: Receiver
) -> None:
    """A null_fields rule on the callback endpoint changes the delivered body."""
    rule = FaultRule(kind="null_fields", null_shape="error_without_code")
    api = await api_factory(faults=FaultPlan.script("callback", [rule]))
    created = await api.create_task(
        prompt="a cat [[fail:service_error]]", callback_url=receiver.url
    )
    (body,) = await receiver.wait_for(1)
    assert body["id"] == created["id"]
    assert body["error"] == {"message": "The generation service failed; try again later."}
    assert api.emulator.fault_log[0].endpoint == "callback"


async def test_cancelled_task_is_called_back(api: Api, receiver: Receiver) -> None:
    """A task ending cancelled is POSTed to its callback_url like a failed one."""
    created = await api.create_task(prompt="a cat [[cancel]]", callback_url=receiver.url)
    (body,) = await receiver.wait_for(1)
    assert (body["id"], body["status"]) == (created["id"], "cancelled")
    assert body["error"]["code"] == "request_cancelled"
