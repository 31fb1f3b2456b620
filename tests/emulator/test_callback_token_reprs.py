"""The emulator's own records never show a callback URL's query string (often a token)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import attrs
import pytest
from aiohttp import web

from zimage_async.emulator._tasks import TaskRecord
from zimage_async.emulator._validation import CreateRequest, validate_create

if TYPE_CHECKING:
    from tests.emulator.conftest import Api

TOKEN = "cb-token-5f1d9a7c3e"


@pytest.fixture
async def hook_url() -> AsyncIterator[str]:
    """A loopback receiver answering 200; its URL carries the token in the query."""

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook?token={TOKEN}"
    finally:
        await runner.cleanup()


async def test_a_callback_attempt_repr_leaves_the_token_out(api: Api, hook_url: str) -> None:
    """A delivered callback's attempt, in a repr, names its URL without the query."""
    await api.create_task(callback_url=hook_url)
    await asyncio.wait_for(api.emulator.wait_for_callbacks(), timeout=10.0)
    (attempt,) = api.emulator.callback_attempts
    assert attempt.url == hook_url  # the record keeps the URL: only its repr hides the query
    assert attempt.delivered
    assert TOKEN not in repr(attempt)
    assert "127.0.0.1" in repr(attempt) and "/hook" in repr(attempt)
    assert TOKEN not in repr(api.emulator.callback_attempts)


def test_a_create_request_repr_leaves_the_token_out() -> None:
    """An accepted create body's repr shows neither the callback URL's query nor the raw body's."""
    body = {
        "model": "z-image-turbo",
        "prompt": "a fox",
        "callback_url": f"https://hooks.example/cb?token={TOKEN}",
    }
    request = validate_create(json.dumps(body).encode(), allow_loopback_callbacks=False)
    assert isinstance(request, CreateRequest)
    assert request.callback_url == body["callback_url"]
    assert TOKEN not in repr(request)
    assert "hooks.example/cb" in repr(request)


def test_a_task_record_repr_leaves_the_token_out() -> None:
    """The emulator's record of a task shows its callback URL without the query."""
    record = TaskRecord(
        task_id="task-1",
        model="z-image-turbo",
        prompt="a fox",
        seed=1,
        width_pixels=1024,
        height_pixels=1024,
        image_format="png",
        image_count=1,
        created_at=0.0,
        started_at=0.0,
        finished_at=1.0,
        failure_code=None,
        failure_message=None,
        failure_progress=0,
        callback_url=f"https://hooks.example/cb?token={TOKEN}#frag",
        estimate_factor=1.0,
    )
    assert TOKEN not in repr(record)
    assert "frag" not in repr(record)
    assert "https://hooks.example/cb" in repr(record)
    without = attrs.evolve(record, callback_url=None)
    assert "callback_url=None" in repr(without)
