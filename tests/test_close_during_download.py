"""Closing a Session ends the image downloads under way at once, with the closed error.

aiohttp, closing a pool, lets go of the answer's body stream before the connection is
lost, so a read waiting for more of an image was never woken; the close also dropped
the timers that bound the download and the wait. ``iter_bytes()``, ``result()`` and
``save()`` then hung for good (past their own timeouts), ``save()``'s temporary file on
disk all along. Now each ends within a moment of the close with the closed-Session
error, as any call after it does, leaving no temporary file, task, socket or warning.
"""

from __future__ import annotations

import asyncio
import gc
import os
import struct
import warnings
import zlib
from pathlib import Path

import pytest
from aiohttp import web

from zimage_async import RetryPolicy, Session, SessionClosedError

from .conftest import CompletedHost, loopback_session, serving, until


def _chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC."""
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


#: A 64x64 PNG padded to some 300 KB by a text chunk: about four seconds at the host's
#: pace, far past the test's close.
IMAGE = (
    b"\x89PNG\r\n\x1a\n"
    + _chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0))
    + _chunk(b"tEXt", b"pad\x00" + b"x" * 300_000)
    + _chunk(b"IDAT", zlib.compress(b"".join(b"\x00" + bytes(64 * 3) for _ in range(64))))
    + _chunk(b"IEND", b"")
)
PIECE = 4096
PACE = 0.05  # seconds between pieces
#: How soon after close() each call must have ended (the bug: never).
PROMPTLY = 1.0
#: No second try: the closed error must not depend on a retry meeting the closed Session.
ONE_TRY = RetryPolicy(max_attempts=1)


TASK_ID = "task-unified-1-0"  # the task CompletedHost answers for any id


class TricklingHost(CompletedHost):
    """A gateway whose image trickles (*PIECE* bytes every *PACE* s); or whose answer waits.

    With *headers_first* ``False``, the image's answer itself is held back until the
    client goes away: the download is still waiting for the host's headers.
    """

    def __init__(self, *, headers_first: bool = True) -> None:
        super().__init__(self.image)
        self.headers_first = headers_first
        self.asked = 0
        self.sent = 0

    async def image(self, request: web.Request) -> web.StreamResponse:
        """Serve the image slowly (see the class docstring)."""
        self.asked += 1
        reply = web.StreamResponse(
            headers={"Content-Length": str(len(IMAGE)), "Content-Type": "image/png"}
        )
        if not self.headers_first:  # hold the answer back until the client goes away
            for _ in range(3000):  # 30 s at most
                if request.transport is None or request.transport.is_closing():
                    return reply
                await asyncio.sleep(0.01)
        await reply.prepare(request)
        for start in range(0, len(IMAGE), PIECE):  # bounded: the image's length
            try:
                await reply.write(IMAGE[start : start + PIECE])
            except ConnectionError:  # the client went away
                break
            self.sent += 1
            await asyncio.sleep(PACE)
        return reply


def _open_fds() -> int:
    """How many file descriptors this process has open (sockets and files alike)."""
    return len(os.listdir("/proc/self/fd"))


async def _drain(zs: Session, call: str, folder: Path) -> object:
    """Download the task's one image by *call*, each with a 3 s timeout of its own."""
    handle = zs.task(TASK_ID)
    if call == "iter_bytes":
        return sum([len(chunk) async for chunk in handle.iter_bytes(timeout=3.0)])
    if call == "result":
        return await handle.result(timeout=3.0)
    return await handle.save(folder, timeout=3.0)


@pytest.mark.parametrize("phase", ["body", "headers"])
@pytest.mark.parametrize("call", ["iter_bytes", "result", "save"])
async def test_a_download_under_way_ends_at_once_when_its_session_closes(
    call: str, phase: str, tmp_path: Path
) -> None:
    """The closed-Session error within a moment of close(): no .part file, nothing left open.

    *phase*: the image's body is streaming, or its host has not answered yet.
    """
    host = TricklingHost(headers_first=phase == "body")
    folder = tmp_path / "out"
    folder.mkdir()
    loop = asyncio.get_running_loop()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with serving(host.app) as host.base:
            tasks, fds = len(asyncio.all_tasks()), _open_fds()
            zs = loopback_session(host.base, retry=ONE_TRY, read_timeout=2.0, image_timeout=5.0)
            await zs.open()
            running = asyncio.ensure_future(_drain(zs, call, folder))
            try:
                if phase == "body":
                    await until(lambda: host.sent >= 4, deadline=5.0)  # bytes are flowing
                else:
                    await until(lambda: host.asked >= 1, deadline=5.0)
                    await asyncio.sleep(0.1)  # the download waits for the host's answer
                assert not running.done()
                await zs.close()
                closed_at = loop.time()
                done, _ = await asyncio.wait({running}, timeout=3.0)
                assert done, f"{call}() still running 3 s after close()"
                took = loop.time() - closed_at
            finally:  # a failed test leaves nothing running either
                await zs.close()
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
            with pytest.raises(SessionClosedError, match="the Session is closed") as ended:
                running.result()
            assert ended.value.task_id == TASK_ID  # billed: to be collected later
            assert f"session.task({TASK_ID!r})" in str(ended.value)
            assert took < PROMPTLY, f"{call}() ended {took:.2f} s after close()"
            assert list(folder.iterdir()) == []  # no .part file, and no image
            del running, zs
            await until(lambda: len(asyncio.all_tasks()) <= tasks, deadline=5.0)
            await until(lambda: _open_fds() <= fds, deadline=5.0)
        gc.collect()
    unclosed = [str(w.message) for w in caught if "nclosed" in str(w.message)]
    assert unclosed == []
