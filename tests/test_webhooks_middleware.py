"""The receiver mounted behind a middleware that reads the request body first.

Audit and body-logging middlewares call ``await request.read()`` (or ``.json()``,
``.text()``) before the handler runs; aiohttp keeps those bytes for later reads, but the
body's stream is drained by then. The receiver takes the kept bytes, so genuine callbacks
are still accepted, and ``max_body_bytes`` still bounds them. Everything runs over real
HTTP on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import web

from zimage_async import CallbackReceiver

from .conftest import serving

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

TASK_ID = "task-unified-1700000000-abcdefgh"


@web.middleware
async def body_logger(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Read the whole body before the handler runs, as an audit middleware does."""
    await request.read()
    return await handler(request)


@contextlib.asynccontextmanager
async def _mounted(receiver: CallbackReceiver) -> AsyncIterator[str]:
    """Serve *receiver* at ``/hooks/zimage`` behind :func:`body_logger`; yield its URL."""
    app = web.Application(middlewares=[body_logger])
    app.router.add_post("/hooks/zimage", receiver.receive)
    async with serving(app) as base:
        yield f"{base}/hooks/zimage"


async def test_a_callback_read_by_a_middleware_first_is_accepted() -> None:
    """The body a middleware already read is judged as usual: a valid id gets 202."""
    receiver = CallbackReceiver()
    async with (
        _mounted(receiver) as url,
        aiohttp.ClientSession() as client,
        client.post(url, json={"id": TASK_ID, "status": "completed"}) as reply,
    ):
        assert reply.status == 202, await reply.text()
    assert (receiver.accepted, receiver.refused) == (1, 0)
    assert receiver._board.recent(TASK_ID)  # the hint was posted


async def test_a_body_read_by_a_middleware_first_still_has_to_name_a_task() -> None:
    """Bytes kept by aiohttp are no excuse: a body without a valid id is refused 400."""
    receiver = CallbackReceiver()
    async with (
        _mounted(receiver) as url,
        aiohttp.ClientSession() as client,
        client.post(url, json={"id": "../../admin"}) as reply,
    ):
        assert reply.status == 400
    assert (receiver.accepted, receiver.refused) == (0, 1)


async def test_a_body_read_by_a_middleware_first_is_held_to_max_body_bytes() -> None:
    """A chunked body (no Content-Length) over max_body_bytes, read first: 413."""
    receiver = CallbackReceiver(max_body_bytes=100)
    body = json.dumps({"id": TASK_ID, "padding": " " * 200}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 50):
            yield body[start : start + 50]

    async with (
        _mounted(receiver) as url,
        aiohttp.ClientSession() as client,
        client.post(url, data=chunks()) as reply,
    ):
        assert reply.status == 413
    assert (receiver.accepted, receiver.refused) == (0, 1)
    assert not receiver._board.recent(TASK_ID)
