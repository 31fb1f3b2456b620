"""A task read answered with another task's snapshot is refused, never taken for the task.

A cache or proxy in front of the gateway keyed wrongly (PROTOCOL: answers may come from a
CDN or proxy) can answer ``GET /v1/tasks/A`` with task B. Taking B for A would save B's
image under A's name and record it as A's result.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from zimage_async import MalformedResponseError, Session

from .conftest import CompletedHost, _png, loopback_session, serving

OTHER = "task-unified-9-someoneelse"


class MisKeyedHost(CompletedHost):
    """Every read answers task OTHER, completed; the image reads are counted."""

    def __init__(self) -> None:
        super().__init__(self.image)
        self.reads = 0
        self.images = 0

    async def image(self, request: web.Request) -> web.StreamResponse:
        self.images += 1
        return web.Response(body=_png(), content_type="image/png")

    async def task(self, request: web.Request) -> web.Response:
        self.reads += 1
        return web.json_response(self.completed(OTHER))


@pytest.fixture
async def host() -> AsyncIterator[MisKeyedHost]:
    server = MisKeyedHost()
    async with serving(server.app) as server.base:
        yield server


@pytest.fixture
async def session(host: MisKeyedHost) -> AsyncIterator[Session]:
    async with loopback_session(host.base) as zs:
        yield zs


async def test_a_wait_answered_with_another_task_is_refused(
    host: MisKeyedHost, session: Session, tmp_path: object
) -> None:
    """Awaiting task A whose reads answer task B fails typed, and fetches no image."""
    handle = await session.submit("a cat")
    with pytest.raises(MalformedResponseError, match=OTHER) as info:
        await handle.save(str(tmp_path))
    assert handle.id in str(info.value)
    assert host.reads >= 1 and host.images == 0
    assert list(tmp_path.iterdir()) == []  # type: ignore[attr-defined]


async def test_a_read_answered_with_another_task_is_refused(
    host: MisKeyedHost, session: Session
) -> None:
    """``get_task(A)`` answered with task B raises instead of returning B."""
    with pytest.raises(MalformedResponseError, match=OTHER):
        await session.get_task("task-unified-1-mine")
