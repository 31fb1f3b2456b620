"""A task of several images, one of which fails while another is still on its way.

The images of a task are fetched together; when one fails, the others are stopped and
its error is what the caller gets. Before, the stopped image's cancellation came out
first (``save()`` and ``await handle`` raised ``CancelledError`` although nobody
cancelled the caller), and a batch's item with such a task never ended.

A small API and image host on 127.0.0.1 makes the order certain: image 0 is a good PNG
that takes a second; image 1 comes at once, an HTML page (refused, never retried) for
the prompt "refused", a good PNG for any other prompt.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from PIL import Image as PILImage

from zimage_async import BatchItem, ImageDownloadError, PollSchedule, RetryPolicy, Session

#: The task made for each prompt; image 1 of the first is refused.
TASK_IDS = {"refused": "task-unified-two-images-1", "good": "task-unified-two-images-2"}
SLOW_IMAGE_SECONDS = 1.0
BOUND = 20.0  # far more than the test needs: a hang fails it


def _png() -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (8, 8), "red").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
async def two_image_api() -> AsyncIterator[str]:
    """Serve the API (every task completed with two links) and its image host."""
    png = _png()
    base: dict[str, str] = {}

    async def create(request: web.Request) -> web.Response:
        prompt = (await request.json())["prompt"]
        return web.json_response({"id": TASK_IDS[prompt], "status": "pending", "progress": 0})

    async def task(request: web.Request) -> web.Response:
        task_id = request.match_info["task_id"]
        second = "1" if task_id == TASK_IDS["refused"] else "2"
        links = [f"{base['url']}/img/0.png", f"{base['url']}/img/{second}.png"]
        return web.json_response(
            {"id": task_id, "status": "completed", "progress": 100, "results": links}
        )

    async def image(request: web.Request) -> web.Response:
        number = request.match_info["n"]
        if number == "0":
            await asyncio.sleep(SLOW_IMAGE_SECONDS)
        if number == "1":
            return web.Response(text="<!doctype html><h1>not here</h1>", content_type="text/html")
        return web.Response(body=png, content_type="image/png")

    app = web.Application()
    app.router.add_post("/v1/images/generations", create)
    app.router.add_get("/v1/tasks/{task_id}", task)
    app.router.add_get("/img/{n}.png", image)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    base["url"] = f"http://127.0.0.1:{port}"
    try:
        yield base["url"]
    finally:
        await runner.cleanup()


def _session(url: str) -> Session:
    return Session(
        api_key="k" * 32,
        base_url=url,
        poll=PollSchedule(wait_min=0.01, wait_max=0.05),
        retry=RetryPolicy(wait_initial=0.01, max_attempts=2),
    )


@pytest.mark.parametrize("how", ["result", "save"])
async def test_the_failed_image_s_error_comes_out_not_a_cancellation(
    two_image_api: str, tmp_path: Path, how: str
) -> None:
    async with _session(two_image_api) as zs:
        handle = await zs.submit("refused")
        call = handle.result() if how == "result" else handle.save(tmp_path)
        with pytest.raises(ImageDownloadError) as caught:
            await asyncio.wait_for(call, BOUND)
        assert caught.value.index == 1
        assert not list(tmp_path.iterdir())  # nothing kept of an all-or-none save


async def test_a_batch_item_whose_image_is_refused_ends_failed(
    two_image_api: str, tmp_path: Path
) -> None:
    async with _session(two_image_api) as zs:

        async def run() -> list[BatchItem]:
            async with zs.generate_many(["refused"], output_dir=tmp_path) as batch:
                return [item async for item in batch]

        items = await asyncio.wait_for(run(), BOUND)
    assert len(items) == 1
    assert not items[0].ok
    assert isinstance(items[0].error, ImageDownloadError)


async def test_a_batch_whose_image_meets_another_file_stops_naming_it(
    two_image_api: str, tmp_path: Path
) -> None:
    """Image 1's name is another file's, placed while image 0 still downloads."""
    other = tmp_path / "0001-good-1.png"
    other.write_bytes(b"another batch's image")
    async with _session(two_image_api) as zs:

        async def run() -> None:
            async with zs.generate_many(["good"], output_dir=tmp_path) as batch:
                async for _ in batch:
                    pass

        with pytest.raises(FileExistsError) as caught:
            await asyncio.wait_for(run(), BOUND)
    assert caught.value.filename == str(other)
    assert other.read_bytes() == b"another batch's image"
