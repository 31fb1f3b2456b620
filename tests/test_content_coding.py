"""An image host that compresses the body although the SDK asked for ``identity``.

The SDK asks for the image's own bytes (``Accept-Encoding: identity``), so that lengths
and ``Range`` offsets count them. A host that gzips the body anyway (some CDNs compress
every type) must still deliver the image: its ``Content-Length`` then counts the
compressed bytes, and a resume cannot ask for a range of the image's own bytes.
"""

from __future__ import annotations

import gzip
import io
import random
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from PIL import Image as PILImage

from zimage_async import APIConnectionError, MalformedResponseError, Session

from .conftest import CompletedHost, loopback_session, serving


def _noisy_png() -> bytes:
    """A PNG of random pixels: gzip makes it longer, not shorter."""
    pixels = random.Random(7).randbytes(96 * 96 * 3)
    buffer = io.BytesIO()
    PILImage.frombytes("RGB", (96, 96), pixels).save(buffer, format="PNG")
    return buffer.getvalue()


PNG = _noisy_png()
GZIPPED = gzip.compress(PNG)
assert len(GZIPPED) > len(PNG)


class GzipHost(CompletedHost):
    """A loopback gateway whose image host gzips the image.

    ``cut_first`` ends the first answer cleanly halfway through the compressed body.
    """

    def __init__(self) -> None:
        super().__init__(self.image)
        self.cut_first = False
        self.image_requests: list[dict[str, str]] = []

    async def image(self, request: web.Request) -> web.StreamResponse:
        self.image_requests.append(dict(request.headers))
        headers = {"Content-Type": "image/png", "Content-Encoding": "gzip"}
        if self.cut_first and len(self.image_requests) == 1:
            reply = web.StreamResponse(headers=headers)
            reply.enable_chunked_encoding()
            await reply.prepare(request)
            await reply.write(GZIPPED[: len(GZIPPED) // 2])
            await reply.write_eof()
            return reply
        reply = web.Response(body=GZIPPED, headers=headers)
        reply.enable_compression = lambda *args, **kwargs: None  # type: ignore[method-assign]
        return reply


@pytest.fixture
async def host() -> AsyncIterator[GzipHost]:
    gzip_host = GzipHost()
    async with serving(gzip_host.app) as gzip_host.base:
        yield gzip_host


@pytest.fixture
async def session(host: GzipHost) -> AsyncIterator[Session]:
    async with loopback_session(host.base) as opened:
        yield opened


async def test_a_gzipped_image_is_delivered_as_the_image(session: Session, host: GzipHost) -> None:
    """The body is decoded; its Content-Length (of the gzip bytes) is not the image's."""
    result = await session.generate("a gzipped image")
    assert result.image.data == PNG
    assert [h.get("Accept-Encoding") for h in host.image_requests] == ["identity"]


async def test_a_gzipped_image_cut_short_is_fetched_again_whole(
    session: Session, host: GzipHost
) -> None:
    """A compressed body cut short is fetched again whole (no Range), delivered bytes skipped."""
    host.cut_first = True
    result = await session.generate("a gzipped image cut short")
    assert result.image.data == PNG
    assert len(host.image_requests) == 2
    assert "Range" not in host.image_requests[1]


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br"])
async def test_an_answer_whose_coding_is_a_lie_is_not_called_cut_short(coding: str) -> None:
    """A whole plain body labelled compressed: the error names the coding, not a cut body."""
    reads: list[int] = []

    async def read(request: web.Request) -> web.Response:
        reads.append(1)
        body = b'{"id": "task-unified-1796285667-coded001", "status": "processing"}'
        return web.Response(body=body, headers={"Content-Encoding": coding})

    app = web.Application()
    app.router.add_get("/apiv1/v1/tasks/{id}", read)
    async with serving(app) as base, loopback_session(base) as zs:
        with pytest.raises((APIConnectionError, MalformedResponseError)) as caught:
            await zs.get_task("task-unified-1796285667-coded001")
    message = str(caught.value)
    assert "cut short" not in message
    assert f"Content-Encoding {coding}" in message
    assert len(reads) > 1, "a coding error may be a proxy's glitch: the read is tried again"
