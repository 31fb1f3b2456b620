"""A wait cut off while its read waits out a retry says so: the answer being waited out.

Every task read answered 429 with ``Retry-After: 100``; ``wait(timeout=1)`` ended with
``WaitTimeoutError: task ... was still pending after 1 s``: "pending" from the create's
answer, no read ever seen, and nothing of the 429 the whole second was spent on. The
error now names the failed read and the retry it was waiting out. A later timeout
met with no retry under way says nothing of it. The gateway is a small aiohttp server
on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable

import pytest
from aiohttp import web

from zimage_async import PollSchedule, RetryPolicy, WaitTimeoutError

from .conftest import loopback_session, serving

POLL = PollSchedule(wait_min=0.02, wait_max=0.05, jitter=0.0)
RETRY = RetryPolicy(wait_initial=0.01, wait_max=0.05, max_retry_after=300.0)


class BusyGateway:
    """Creates tasks; reads answer 429 Retry-After 100 while ``busy``, else ``processing``."""

    def __init__(self) -> None:
        self.busy = True
        self.reads = 0
        self.app = web.Application()
        self.app.router.add_post("/apiv1/v1/images/generations", self.create)
        self.app.router.add_get("/apiv1/v1/tasks/{id}", self.read)

    async def create(self, request: web.Request) -> web.Response:
        task_id = f"task-unified-1796285667-busy{self.reads:04d}"
        return web.json_response({"id": task_id, "status": "pending", "progress": 0})

    async def read(self, request: web.Request) -> web.Response:
        self.reads += 1
        if self.busy:
            body = {"error": {"type": "rate_limit_error", "message": "slow down"}}
            return web.json_response(body, status=429, headers={"Retry-After": "100"})
        task_id = request.match_info["id"]
        return web.json_response({"id": task_id, "status": "processing", "progress": 40})


async def test_a_wait_cut_off_waiting_out_a_429_names_it() -> None:
    """The timeout's message names the 429 and the 100 s wait it was in."""
    gateway = BusyGateway()
    async with serving(gateway.app) as base:
        zs = loopback_session(base, poll=POLL, retry=RETRY)
        async with zs:
            handle = await zs.submit("a cat")
            with pytest.raises(WaitTimeoutError) as caught:
                await handle.wait(timeout=1.0)
            message = str(caught.value)
            assert "429" in message, message
            assert "100" in message, message
            assert gateway.reads == 1

            # The same task's next wait meets no retry: no stale note. (A handle from an id:
            # the read's 429 holds the session's creates for its advice.)
            gateway.busy = False
            later = zs.task("task-unified-1796285667-busy0001")
            with pytest.raises(WaitTimeoutError) as caught:
                await later.wait(timeout=0.5)
            assert "429" not in str(caught.value)
            assert "processing" in str(caught.value)


async def _cut_off(call: Awaitable[object], after: float) -> None:
    """Await *call* in this task, cancelling this task after *after* seconds."""
    task = asyncio.current_task()
    assert task is not None
    timer = asyncio.get_running_loop().call_later(after, task.cancel)
    try:
        await call
    except asyncio.CancelledError:
        if sys.version_info >= (3, 11):
            task.uncancel()
    finally:
        timer.cancel()


async def test_a_retry_cut_off_outside_a_wait_is_not_told_by_a_later_one() -> None:
    """refresh() cancelled while waiting out a 429: a later wait's timeout does not name it."""
    gateway = BusyGateway()
    async with serving(gateway.app) as base:
        zs = loopback_session(base, poll=POLL, retry=RETRY)
        async with zs:
            handle = zs.task("task-unified-1796285667-busy0002")
            await _cut_off(handle.refresh(), 0.3)
            assert gateway.reads == 1
            gateway.busy = False
            with pytest.raises(WaitTimeoutError) as caught:
                await handle.wait(timeout=0.3)
    assert "429" not in str(caught.value)


async def test_a_download_cut_off_waiting_out_a_503_names_it() -> None:
    """The image host answers 503 Retry-After 100: the download-stage timeout names it."""
    app = web.Application()
    where: dict[str, str] = {}

    async def create(request: web.Request) -> web.Response:
        done = {"id": "task-unified-1796285667-img00001", "status": "completed", "progress": 100}
        return web.json_response(done | {"results": [f"{where['base']}/img/0.png"]})

    async def image(request: web.Request) -> web.Response:
        return web.Response(status=503, text="busy", headers={"Retry-After": "100"})

    app.router.add_post("/apiv1/v1/images/generations", create)
    app.router.add_get("/img/0.png", image)
    async with serving(app) as where["base"]:
        zs = loopback_session(where["base"], poll=POLL, retry=RETRY)
        async with zs:
            handle = await zs.submit("a cat")
            with pytest.raises(WaitTimeoutError) as caught:
                await handle.result(timeout=1.0)
    assert caught.value.stage == "download"
    assert "503" in str(caught.value), str(caught.value)
    assert "retrying in 100 s" in str(caught.value)
