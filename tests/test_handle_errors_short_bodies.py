"""An image body that ends cleanly within its first bytes, with no length announced.

Without a length, a connection closing is the end of the body: one closed before the
image's signature is complete (nothing at all, or the start of a PNG, JPEG or WebP
signature) is cut short, and fetched again like any other; a short body that cannot be
the start of an image, or one as long as its announced length, is refused at once.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from PIL import Image as PILImage

from zimage_async import ImageDownloadError, Session
from zimage_async.emulator import Emulator, FaultPlan, FaultRule

from .conftest import CompletedHost, loopback_session, serving


def _image(fmt: str) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (32, 32), (10, 120, 200)).save(buffer, format=fmt)
    return buffer.getvalue()


IMAGES = {"png": _image("PNG"), "jpeg": _image("JPEG"), "webp": _image("WEBP")}
TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


class ShortFirstHost(CompletedHost):
    """A completed task whose one link, on a plain socket, first answers a short body.

    The prompt ``<format>/<first>/<length>`` picks the image, the first answer's body
    (``cut-N``: the image's first N bytes; ``gif``: the start of a GIF) and whether
    every answer announces its length (``close``: never, the body ends with the
    connection; ``length``: always). Every later answer is the whole image.
    """

    def __init__(self) -> None:
        super().__init__(self.unused)
        self.raw_base = ""
        self.requests: list[str] = []

    async def unused(self, request: web.Request) -> web.StreamResponse:  # pragma: no cover
        raise AssertionError("the image is served on the plain socket, not on this route")

    def link(self, task_id: str) -> str:
        return f"{self.raw_base}/img/{self.prompts[task_id]}"

    def body(self, fmt: str, first: str) -> bytes:
        """The first answer's body."""
        if first == "gif":
            return b"GIF8"
        return IMAGES[fmt][: int(first.removeprefix("cut-"))]

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        path = head.split()[1]
        fmt, first, framing = path.removeprefix("/img/").split("/")
        body = self.body(fmt, first) if path not in self.requests else IMAGES[fmt]
        self.requests.append(path)
        lines = ["HTTP/1.1 200 OK", "Connection: close", f"Content-Type: {TYPES[fmt]}"]
        if framing == "length":
            lines.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        writer.close()  # with no length, this is the end of the body
        await writer.wait_closed()


@pytest.fixture
async def host() -> AsyncIterator[ShortFirstHost]:
    short = ShortFirstHost()
    async with serving(short.app) as short.base:
        raw = await asyncio.start_server(short.serve, "127.0.0.1", 0)
        short.raw_base = f"http://127.0.0.1:{raw.sockets[0].getsockname()[1]}"
        try:
            yield short
        finally:
            raw.close()
            await raw.wait_closed()


@pytest.fixture
async def session(host: ShortFirstHost) -> AsyncIterator[Session]:
    async with loopback_session(host.base) as opened:
        yield opened


@pytest.mark.parametrize(
    ("fmt", "cut"),
    [
        pytest.param("png", 0, id="png-empty"),
        pytest.param("png", 1, id="png-1"),
        pytest.param("png", 7, id="png-7"),
        pytest.param("jpeg", 0, id="jpeg-empty"),
        pytest.param("jpeg", 2, id="jpeg-2"),
        pytest.param("webp", 3, id="webp-3"),
        pytest.param("webp", 6, id="webp-in-its-size"),
        pytest.param("webp", 10, id="webp-10"),
    ],
)
async def test_a_body_closed_within_the_signature_is_fetched_again(
    session: Session, host: ShortFirstHost, fmt: str, cut: int
) -> None:
    """Nothing, or only the start of a signature, then a clean close: asked again, delivered."""
    handle = await session.submit(f"{fmt}/cut-{cut}/close")
    chunks = [chunk async for chunk in handle.iter_bytes()]
    assert b"".join(chunks) == IMAGES[fmt]
    assert len(host.requests) == 2


async def test_a_short_body_that_is_no_image_start_is_refused_at_once(
    session: Session, host: ShortFirstHost
) -> None:
    """Four bytes no accepted format starts with: not an image, not asked again."""
    handle = await session.submit("png/gif/close")
    with pytest.raises(ImageDownloadError) as info:
        await handle
    assert "not an image" in info.value.reason
    assert len(host.requests) == 1


@pytest.mark.parametrize("cut", [pytest.param(0, id="empty"), pytest.param(3, id="png-3")])
async def test_a_short_body_as_long_as_announced_is_refused_at_once(
    session: Session, host: ShortFirstHost, cut: int
) -> None:
    """With its length announced and sent whole, a short body is the host's answer: no retry."""
    handle = await session.submit(f"png/cut-{cut}/length")
    with pytest.raises(ImageDownloadError):
        await handle
    assert len(host.requests) == 1


@pytest.mark.parametrize("cut", [pytest.param(0, id="empty"), pytest.param(4, id="4-bytes")])
async def test_the_emulators_close_delimited_cut_in_the_first_bytes_is_resumed(
    zs: Session, emulator: Emulator, cut: int
) -> None:
    """The emulator's truncate_close cut within the signature: the image is delivered whole."""
    handle = await zs.submit("a cat")
    await handle.wait()
    whole = await emulator.image_bytes(handle.id)
    rule = FaultRule(kind="truncate_close", truncate_fraction=cut / len(whole))
    emulator.faults = FaultPlan.script("image", [rule])
    assert b"".join([chunk async for chunk in handle.iter_bytes()]) == whole
    assert emulator.faults_injected["truncate_close"] == 1
