"""A task this session just created may answer 404 for a moment: the wait polls on.

Gateways that store tasks in a replicated store can answer a read of a task created a
moment ago with 404 (the read reached a replica the task has not reached yet). The
create's answer proved the task exists and is billed, so a 404 to a handle's own task
within :data:`~zimage_async._handlepolls.NOT_YET_VISIBLE` seconds of its create is read
as "not visible yet": the poll loop looks again on its schedule. Later, or for a handle
made from a task id (``session.task``), a 404 ends the wait with ``NotFoundError`` as
before; an explicit ``refresh()`` is one read and raises it at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from zimage_async import NotFoundError, _handlepolls

from .conftest import CompletedHost, _png, loopback_session, serving

PNG = _png((8, 8))
MISSING = {"error": {"code": 404, "message": "Task not found", "type": "not_found_error"}}


async def _image(request: web.Request) -> web.Response:
    return web.Response(body=PNG, content_type="image/png")


class LaggingHost(CompletedHost):
    """Each task answers 404 to its first *missing* reads, then completed."""

    def __init__(self, missing: int) -> None:
        super().__init__(_image)
        self.missing = missing
        self.reads: dict[str, int] = {}

    async def task(self, request: web.Request) -> web.Response:
        task_id = request.match_info["task_id"]
        self.reads[task_id] = self.reads.get(task_id, 0) + 1
        if self.reads[task_id] <= self.missing:
            return web.json_response(MISSING, status=404)
        return web.json_response(self.completed(task_id))


WAYS: dict[str, Callable[[Any], Any]] = {
    "await": lambda handle: handle,
    "wait": lambda handle: handle.wait(),
}


@pytest.mark.parametrize("way", list(WAYS))
async def test_a_404_just_after_the_create_is_polled_past(way: str) -> None:
    """Two 404s right after the create, then completed: the wait ends with the task."""
    host = LaggingHost(missing=2)
    async with serving(host.app) as host.base, loopback_session(host.base) as zs:
        handle = await zs.submit("a cat")
        await WAYS[way](handle)
        assert handle.task is not None
        assert handle.task.status.value == "completed"
    assert host.reads[handle.id] == 3


async def test_a_batch_polls_past_a_404_just_after_the_create() -> None:
    """The batch path goes through the same loop: every item is delivered."""
    host = LaggingHost(missing=1)
    async with (
        serving(host.app) as host.base,
        loopback_session(host.base) as zs,
        zs.generate_many(["a cat", "a dog"]) as batch,
    ):
        items = [item async for item in batch]
    assert [item.ok for item in items] == [True, True]


async def test_a_404_past_the_grace_ends_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """A task still missing after the grace is not found: the wait says so, bounded."""
    monkeypatch.setattr(_handlepolls, "NOT_YET_VISIBLE", 0.3)
    host = LaggingHost(missing=10**6)
    async with serving(host.app) as host.base, loopback_session(host.base) as zs:
        handle = await zs.submit("a cat")
        with pytest.raises(NotFoundError) as info:
            await handle.wait(timeout=10)
    assert info.value.task_id == handle.id
    assert host.reads[handle.id] >= 2


async def test_a_handle_made_from_an_id_is_not_found_at_once() -> None:
    """session.task(id) of a task this session did not create: one read, NotFoundError."""
    host = LaggingHost(missing=10**6)
    async with serving(host.app) as host.base, loopback_session(host.base) as zs:
        with pytest.raises(NotFoundError):
            await zs.task("task-unified-1-elsewhere")
    assert host.reads == {"task-unified-1-elsewhere": 1}


async def test_an_explicit_refresh_raises_the_404_at_once() -> None:
    """refresh() is one read: a 404 is raised to its caller, even just after the create."""
    host = LaggingHost(missing=10**6)
    async with serving(host.app) as host.base, loopback_session(host.base) as zs:
        handle = await zs.submit("a cat")
        with pytest.raises(NotFoundError):
            await handle.refresh()
    assert host.reads[handle.id] == 1
