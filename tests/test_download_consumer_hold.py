"""A consumer holding a chunk is not a stalled host: ``read_timeout`` counts only the host.

``iter_bytes()`` promises that the caller's time with a chunk counts against no limit.
But the stall limit (``read_timeout``) was aiohttp's per-connection read timer, which
runs while the body's tail waits, already received, in aiohttp's buffer: a consumer
holding each chunk longer than ``read_timeout`` made every download "stall" at its
tail, and resume with a ``Range`` request (three GETs for one image, from a host that
sent it at full speed). Now the stall limit runs only while the SDK waits for bytes
that have not arrived. A host that really stops sending is still cut off at
``read_timeout`` and the download resumed. The host is a small aiohttp server on
127.0.0.1 that writes the image in 64 KiB pieces and honours ``Range``.
"""

from __future__ import annotations

import asyncio
import os
import struct
import zlib

import pytest
from aiohttp import web

from .conftest import FAST_POLL, FAST_RETRY, loopback_session, serving

TASK_ID = "task-unified-1796285667-hold0001"
READ_TIMEOUT = 0.3
HOLD = 0.5  # the consumer's time with each chunk, longer than READ_TIMEOUT


def _png(side: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + os.urandom(side * 3) for _ in range(side))
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 0))
        + chunk(b"IEND", b"")
    )


IMAGE = _png(512)  # about 790 KB: its tail outlasts aiohttp's buffer while it is held


class Host:
    """The API (one completed task) and its image host; ``stop_at`` stalls the first GET."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.stop_at = stop_at
        self.ranges: list[str | None] = []
        self.base = ""
        self.app = web.Application()
        self.app.router.add_get("/apiv1/v1/tasks/{id}", self.task)
        self.app.router.add_get("/img/0.png", self.image)

    async def task(self, request: web.Request) -> web.Response:
        done = {"id": TASK_ID, "status": "completed", "progress": 100}
        return web.json_response(done | {"results": [f"{self.base}/img/0.png"]})

    async def image(self, request: web.Request) -> web.StreamResponse:
        asked = request.headers.get("Range")
        self.ranges.append(asked)
        start = int(asked[len("bytes=") :].split("-")[0]) if asked else 0
        body = IMAGE[start:]
        headers = {"Content-Type": "image/png", "ETag": '"v1"', "Accept-Ranges": "bytes"}
        headers["Content-Length"] = str(len(body))
        if asked:
            headers["Content-Range"] = f"bytes {start}-{len(IMAGE) - 1}/{len(IMAGE)}"
        response = web.StreamResponse(status=206 if asked else 200, headers=headers)
        await response.prepare(request)
        stop = self.stop_at if len(self.ranges) == 1 else None
        for offset in range(0, len(body), 65536):
            if stop is not None and offset >= stop:
                await asyncio.sleep(10)  # stalls, the connection open
            await response.write(body[offset : offset + 65536])
        return response


async def _read_all(host: Host, hold: float) -> bytes:
    async with serving(host.app) as host.base:
        zs = loopback_session(
            host.base, poll=FAST_POLL, retry=FAST_RETRY, read_timeout=READ_TIMEOUT
        )
        async with zs:
            parts = []
            async for chunk in zs.task(TASK_ID).iter_bytes(timeout=30):
                parts.append(chunk)
                await asyncio.sleep(hold)
    return b"".join(parts)


async def test_a_consumer_holding_each_chunk_longer_than_read_timeout_is_no_stall() -> None:
    """Each chunk held 0.5 s against a 0.3 s read_timeout: one GET, the image whole."""
    host = Host()
    data = await _read_all(host, HOLD)
    assert data == IMAGE
    assert host.ranges == [None], "the download was resumed: a hold was taken for a stall"


@pytest.mark.parametrize("hold", [0.0, HOLD], ids=["eager", "holding"])
async def test_a_host_that_stops_sending_is_still_cut_off_and_resumed(hold: float) -> None:
    """The host stops after 128 KiB: stalled at read_timeout, resumed from there, whole."""
    host = Host(stop_at=131072)
    data = await _read_all(host, hold)
    assert data == IMAGE
    assert len(host.ranges) == 2
    assert host.ranges[1] is not None
    assert host.ranges[1].startswith("bytes=")
