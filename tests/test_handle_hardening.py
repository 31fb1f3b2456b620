"""Handles against hostile image hosts and odd gateways: bounded, shared, quiet."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from zimage_async import ImageDownloadError, Session, WaitTimeoutError, ZImageError
from zimage_async._partfiles import STALE_PART_SECONDS, remove_stale_parts

from .conftest import _png, loopback_session, serving


class SlowHost:
    """An API whose tasks are done at once, and an image host with chosen manners.

    A task ``task-unified-1-<kind>-<n>`` has *n* links ``/img/<kind>/<i>``. Kinds: ``ok``
    (a PNG), ``trickle`` (a PNG one byte every 0.2 s, at most 200 bytes: bounded), and
    ``html`` (a page, which fails at once). Task reads of kind ``queued`` say ``queued``
    once per task before ``completed``.
    """

    def __init__(self) -> None:
        self.base = ""
        self.image_gets = 0
        self.trickles_stopped = asyncio.Event()
        self.reads: dict[str, int] = {}
        self.app = web.Application()
        self.app.router.add_post("/apiv1/v1/images/generations", self.create)
        self.app.router.add_get("/apiv1/v1/tasks/{task_id}", self.task)
        self.app.router.add_get("/img/{kind}/{i}", self.image)

    async def create(self, request: web.Request) -> web.Response:
        prompt = (await request.json())["prompt"]
        return web.json_response({"id": f"task-unified-1-{prompt}", "status": "pending"})

    async def task(self, request: web.Request) -> web.Response:
        task_id = request.match_info["task_id"]
        kind, count = task_id.removeprefix("task-unified-1-").rsplit("-", 1)
        self.reads[task_id] = self.reads.get(task_id, 0) + 1
        if kind == "queued" and self.reads[task_id] == 1:
            return web.json_response({"id": task_id, "status": "queued", "progress": 0})
        links = []
        for i in range(int(count)):
            image = kind
            if kind == "mixed":
                image = "html" if i == 0 else "trickle"
            links.append(f"{self.base}/img/{image}/{i}")
        body = {"id": task_id, "status": "completed", "progress": 100, "results": links}
        return web.json_response(body)

    async def image(self, request: web.Request) -> web.StreamResponse:
        self.image_gets += 1
        kind = request.match_info["kind"]
        if kind == "html":
            return web.Response(text="<html>not an image</html>", content_type="text/html")
        data = _png()
        if kind != "trickle":
            return web.Response(body=data, content_type="image/png")
        reply = web.StreamResponse(headers={"Content-Length": str(len(data))})
        reply.content_type = "image/png"
        await reply.prepare(request)
        try:
            for byte in data[:200]:
                await reply.write(bytes([byte]))
                await asyncio.sleep(0.2)  # the scenario itself: a host this slow
        except (asyncio.CancelledError, ConnectionError):
            self.trickles_stopped.set()
            raise
        return reply


@pytest.fixture
async def slow() -> AsyncIterator[SlowHost]:
    host = SlowHost()
    async with serving(host.app) as host.base:
        yield host


@pytest.fixture
async def ss(slow: SlowHost) -> AsyncIterator[Session]:
    async with loopback_session(slow.base) as session:
        yield session


async def test_the_timeout_bounds_the_downloads_too(ss: Session) -> None:
    """``result(timeout=)`` covers the download: a trickling host raises WaitTimeoutError."""
    handle = await ss.submit("trickle-1")
    with pytest.raises(WaitTimeoutError) as caught:
        # Bounded here only so that the defect fails the test instead of hanging it.
        await asyncio.wait_for(handle.result(timeout=1.0), 20)
    assert caught.value.stage == "download"
    assert caught.value.task_id == handle.id


async def test_one_failing_image_stops_its_siblings(slow: SlowHost, ss: Session) -> None:
    """When one image of a task fails, the other downloads of that task are stopped."""
    handle = await ss.submit("mixed-3")
    with pytest.raises(ImageDownloadError):
        await asyncio.wait_for(handle.result(timeout=30), 20)
    await asyncio.wait_for(slow.trickles_stopped.wait(), 10)


async def test_fifty_saves_share_one_download(slow: SlowHost, ss: Session, tmp_path: Path) -> None:
    """Fifty concurrent ``save()`` calls of one handle fetch the image once."""
    handle = await ss.submit("ok-1")
    paths = await asyncio.gather(*(handle.save(tmp_path) for _ in range(50)))
    assert slow.image_gets == 1
    assert all(found == paths[0] for found in paths)
    assert paths[0][0].read_bytes() == _png()


async def test_an_unknown_status_is_warned_once_per_session(
    ss: Session, caplog: pytest.LogCaptureFixture
) -> None:
    """Three tasks that say ``queued`` give one warning, not three."""
    caplog.set_level(logging.DEBUG, logger="zimage_async")
    handles = [await ss.submit(f"queued-{n}") for n in (1, 2, 3)]
    await asyncio.gather(*(h.wait() for h in handles))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "queued" in warnings[0].getMessage()


class BrokenReads(SlowHost):
    """A host whose task reads answer a proxy's HTML 502 once the task is created."""

    async def task(self, request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>bad gateway</html>", content_type="text/html")


async def test_an_error_after_the_create_names_the_billed_task() -> None:
    """When polling fails for good after the create, the error carries the task id."""
    host = BrokenReads()
    async with serving(host.app) as host.base, loopback_session(host.base) as session:
        with pytest.raises(ZImageError) as caught:
            await session.generate("ok-1")
    assert caught.value.task_id == "task-unified-1-ok-1"
    assert "zimage task task-unified-1-ok-1" in str(caught.value)
    assert "generating it again" in str(caught.value)


def test_stale_partial_files_are_removed_and_fresh_ones_kept(tmp_path: Path) -> None:
    """A rerun removes the .part files of a killed process, not those being written."""
    old = tmp_path / ".zimage-killed.part"
    fresh = tmp_path / ".zimage-live.part"
    old.write_bytes(b"half")
    fresh.write_bytes(b"half")
    an_hour_ago = time.time() - STALE_PART_SECONDS - 1
    os.utime(old, (an_hour_ago, an_hour_ago))
    assert remove_stale_parts(tmp_path) == [old]
    assert not old.exists()
    assert fresh.exists()
