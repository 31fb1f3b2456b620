"""A callback the next task read does not confirm yet ends the slow polling.

Gateways answer a task read from a replica or a cache: the callback that says a task
completed may come before the read that shows it. A handle expecting a callback polls
``callback_poll_factor`` times slower; once the callback came, nothing else will wake
it, so a stale read must not leave it napping that much longer. The gateway here is a
small aiohttp server on 127.0.0.1 that answers the create, calls the receiver back, and
answers the task reads stale for a while after.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from zimage_async import CallbackReceiver, PollSchedule, Session, TaskStatus

from .conftest import FAST_RETRY

TASK_ID = "task-unified-1796285667-stale001"
#: The task completes this long after the create; its reads show it this long later.
DONE_AFTER, STALE_FOR = 0.3, 0.4
#: A stretch this large turns any stretched nap into minutes.
STRETCH = 1000.0
POLL = PollSchedule(wait_min=0.05, wait_max=0.2, timeout=30.0)


class StaleGateway:
    """Creates one task, calls back when it completes, reads it stale for a while."""

    def __init__(self) -> None:
        self.created_at: float | None = None
        self.called_back_at: float | None = None
        self.reads: list[tuple[float, str]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.image = "http://127.0.0.1:{port}/img/0.png"

    def snapshot(self, done: bool) -> dict[str, object]:
        if not done:
            return {"id": TASK_ID, "status": "processing", "progress": 50, "results": []}
        return {
            "id": TASK_ID,
            "status": "completed",
            "progress": 100,
            "results": [self.image],
        }

    async def create(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.created_at = time.monotonic()
        task = asyncio.get_running_loop().create_task(self._call_back(body["callback_url"]))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.json_response({"id": TASK_ID, "status": "pending", "progress": 0})

    async def _call_back(self, url: str) -> None:
        await asyncio.sleep(DONE_AFTER)
        payload = json.dumps(self.snapshot(True))
        async with (  # the receiver is on 127.0.0.1 too
            aiohttp.ClientSession() as http,
            http.post(url, data=payload) as answer,
        ):
            assert answer.status < 300, answer.status
        self.called_back_at = time.monotonic()

    async def read(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        shown = self.called_back_at is not None and now >= self.called_back_at + STALE_FOR
        self.reads.append((now, "completed" if shown else "processing"))
        return web.json_response(self.snapshot(shown))


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[StaleGateway, str]]:
    """The stale gateway, listening on 127.0.0.1; yields it and its base URL."""
    state = StaleGateway()
    app = web.Application()
    app.router.add_post("/v1/images/generations", state.create)
    app.router.add_get(f"/v1/tasks/{TASK_ID}", state.read)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.image = state.image.format(port=port)
    try:
        yield state, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_a_stale_read_after_the_callback_is_read_again_soon(
    gateway: tuple[StaleGateway, str],
) -> None:
    """The wait ends within a second of the read showing the task, not STRETCH naps later."""
    state, base_url = gateway
    receiver = CallbackReceiver()
    async with (
        receiver.serve() as url,
        Session(
            api_key="sk-test-stale-0123456789",
            base_url=base_url,
            poll=POLL,
            retry=FAST_RETRY,
            callbacks=receiver,
            callback_url=url,
            callback_poll_factor=STRETCH,
        ) as zs,
    ):
        handle = await zs.submit("a fox")
        task = await handle.wait(timeout=5)
    assert task.status is TaskStatus.COMPLETED
    assert receiver.accepted == 1
    assert state.called_back_at is not None
    stale = [at for at, shown in state.reads if shown == "processing" and at > state.called_back_at]
    assert stale, "the first read after the callback was not stale: the test proves nothing"
    # Read again at the plain schedule (wait_max 0.2 s): a handful of reads, no flood.
    after = [shown for at, shown in state.reads if at > state.called_back_at]
    assert after[-1] == "completed"
    assert len(after) <= STALE_FOR / POLL.wait_min + 3, state.reads
