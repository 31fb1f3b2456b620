"""Image completeness from the image's own framing, and image hosts that refuse us."""

from __future__ import annotations

import asyncio
import io
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from PIL import Image as PILImage

from zimage_async import (
    ImageBlockedError,
    ImageDownloadError,
    ImageExpiredError,
    Session,
    __version__,
)

from .conftest import FAST_POLL, FAST_RETRY, KEY, serving

PRODUCT_UA = f"zimage-async/{__version__}"
CLOUDFLARE_1010 = (
    "<!DOCTYPE html><html><head><title>Access denied | img.example used Cloudflare to "
    "restrict access</title></head><body><h1>Error 1010</h1><p>The owner of this website "
    "has banned your access based on your browser's signature.</p></body></html>"
)
TRAILER = b"<!-- appended by a proxy -->"


def _noise(fmt: str) -> bytes:
    """A square noisy picture of a few tens of kilobytes (noise does not compress)."""
    pixels = random.Random(fmt).randbytes(160 * 160 * 3)
    buffer = io.BytesIO()
    PILImage.frombytes("RGB", (160, 160), pixels).save(buffer, format=fmt)
    return buffer.getvalue()


IMAGES = {"png": _noise("PNG"), "jpeg": _noise("JPEG"), "webp": _noise("WEBP")}
TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


class FramedHost:
    """A loopback API + image host whose one image link per task misbehaves as asked.

    The prompt ``behaviour/format/wire[/expires]`` picks what the link does. ``wire`` is
    ``chunked`` (aiohttp, chunked encoding ended cleanly) or ``raw`` (a plain socket: no
    length, the end of the body is the connection closing).
    """

    def __init__(self) -> None:
        self.prompts: dict[str, str] = {}
        self.image_requests: list[dict[str, str]] = []
        self.api_agents: list[str] = []
        self.answers: dict[str, int] = {}
        self.base = ""
        self.raw_base = ""
        self.app = web.Application()
        self.app.router.add_post("/apiv1/v1/images/generations", self.create)
        self.app.router.add_get("/apiv1/v1/tasks/{task_id}", self.task)
        self.app.router.add_get("/img/{behaviour}/{fmt}", self.chunked_image)

    async def create(self, request: web.Request) -> web.Response:
        self.api_agents.append(request.headers.get("User-Agent", ""))
        task_id = f"task-unified-1-{len(self.prompts)}"
        self.prompts[task_id] = (await request.json())["prompt"]
        return web.json_response({"id": task_id, "status": "pending", "progress": 0})

    async def task(self, request: web.Request) -> web.Response:
        self.api_agents.append(request.headers.get("User-Agent", ""))
        task_id = request.match_info["task_id"]
        behaviour, fmt, wire, *expires = self.prompts[task_id].split("/")
        base = self.raw_base if wire == "raw" else self.base
        link = f"{base}/img/{behaviour}/{fmt}"
        if expires:
            link += f"?expires={expires[0]}&sig=abc"
        return web.json_response(
            {"id": task_id, "status": "completed", "progress": 100, "results": [link]}
        )

    def answer(
        self, behaviour: str, fmt: str, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes, bool]:
        """Return (status, headers, body, whether to announce the length) for one request."""
        self.image_requests.append(headers)
        count = self.answers[behaviour] = self.answers.get(behaviour, 0) + 1
        image = IMAGES[fmt]
        half = len(image) // 2
        typed = {"Content-Type": TYPES[fmt]}
        ranged = headers.get("range", "").removeprefix("bytes=").removesuffix("-")
        if behaviour == "cut":  # cut short once, then resumed properly
            if count == 1:
                return 200, typed, image[:half], False
            start = int(ranged)
            content_range = f"bytes {start}-{len(image) - 1}/{len(image)}"
            return 206, typed | {"Content-Range": content_range}, image[start:], True
        if behaviour == "cut-no-range":  # cut short once, then the whole image again
            return 200, typed, image[:half] if count == 1 else image, False
        if behaviour == "always-cut":
            return 200, typed, image[:half], False
        if behaviour == "trailing":
            return 200, typed, image + TRAILER, False
        if behaviour == "trailing-length":
            return 200, typed, image + TRAILER, True
        if behaviour == "short-file":  # the host's own copy is incomplete
            return 200, typed, image[:half], True
        if behaviour == "ua-gated":
            agent = headers.get("user-agent", "").lower()
            if "python" in agent or "aiohttp" in agent:
                html = {"Content-Type": "text/html", "Server": "cloudflare"}
                return 403, html, CLOUDFLARE_1010.encode(), True
            return 200, typed, image, True
        if behaviour == "denied":
            return 403, {"Content-Type": "application/xml"}, b"<Code>AccessDenied</Code>", True
        return 410, {"Content-Type": "text/plain"}, b"Gone", True

    async def chunked_image(self, request: web.Request) -> web.StreamResponse:
        headers = {k.lower(): v for k, v in request.headers.items()}
        status, extra, body, announce = self.answer(
            request.match_info["behaviour"], request.match_info["fmt"], headers
        )
        if announce:
            return web.Response(status=status, headers=extra, body=body)
        reply = web.StreamResponse(status=status, headers=extra)
        reply.enable_chunked_encoding()
        await reply.prepare(request)
        await reply.write(body)
        await reply.write_eof()  # a clean end: nothing tells the client bytes are missing
        return reply

    async def raw_image(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        _, behaviour, fmt = head[0].split()[1].split("?")[0].strip("/").split("/")
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            if value:
                headers[name.strip().lower()] = value.strip()
        status, extra, body, announce = self.answer(behaviour, fmt, headers)
        if announce:
            extra = extra | {"Content-Length": str(len(body))}
        lines = [f"HTTP/1.1 {status} X", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in extra.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        writer.close()  # with no length, closing the connection is the end of the body
        await writer.wait_closed()


@pytest.fixture
async def host() -> AsyncIterator[FramedHost]:
    framed = FramedHost()
    async with serving(framed.app) as framed.base:
        raw = await asyncio.start_server(framed.raw_image, "127.0.0.1", 0)
        framed.raw_base = f"http://127.0.0.1:{raw.sockets[0].getsockname()[1]}"
        try:
            yield framed
        finally:
            raw.close()
            await raw.wait_closed()


def _session(host: FramedHost, **options: object) -> Session:
    return Session(
        api_key=KEY,
        base_url=f"{host.base}/apiv1",
        poll=FAST_POLL,
        retry=FAST_RETRY,
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
async def session(host: FramedHost) -> AsyncIterator[Session]:
    async with _session(host) as opened:
        yield opened


FORMATS = [pytest.param(fmt, id=fmt) for fmt in IMAGES]
WIRES = [pytest.param("chunked", id="chunked"), pytest.param("raw", id="close-delimited")]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("wire", WIRES)
async def test_cleanly_cut_body_is_resumed_with_range(
    session: Session, host: FramedHost, fmt: str, wire: str
) -> None:
    """A body without a length that ends cleanly but early is completed with a Range request."""
    result = await session.generate(f"cut/{fmt}/{wire}")
    assert result.image.data == IMAGES[fmt]
    assert [h.get("range") for h in host.image_requests] == [
        None,
        f"bytes={len(IMAGES[fmt]) // 2}-",
    ]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("wire", WIRES)
async def test_cleanly_cut_body_is_restarted_when_range_is_ignored(
    session: Session, host: FramedHost, fmt: str, wire: str, tmp_path: Path
) -> None:
    """When the host ignores Range, the whole image is fetched again; the file is exact."""
    (path,) = await (await session.submit(f"cut-no-range/{fmt}/{wire}")).save(tmp_path)
    assert path.read_bytes() == IMAGES[fmt]
    assert len(host.image_requests) == 2


@pytest.mark.parametrize("wire", WIRES)
async def test_image_that_never_completes_is_not_handed_out(
    session: Session, host: FramedHost, wire: str, tmp_path: Path
) -> None:
    """An image whose framing never completes raises, is never returned, and leaves no file."""
    with pytest.raises(ImageDownloadError) as info:
        await session.generate(f"always-cut/png/{wire}")
    assert "IEND" in str(info.value)
    assert len(host.image_requests) == FAST_RETRY.max_attempts
    with pytest.raises(ImageDownloadError):
        await (await session.submit(f"always-cut/jpeg/{wire}")).save(tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("behaviour", "wire"),
    [
        pytest.param("trailing", "chunked", id="chunked"),
        pytest.param("trailing", "raw", id="close-delimited"),
        pytest.param("trailing-length", "chunked", id="with-length"),
    ],
)
async def test_bytes_after_the_image_end_are_refused(
    session: Session, fmt: str, behaviour: str, wire: str, tmp_path: Path
) -> None:
    """Bytes after the image's own end are an error, not silently kept, and no file is left."""
    with pytest.raises(ImageDownloadError) as info:
        await session.generate(f"{behaviour}/{fmt}/{wire}")
    assert "after the image's end" in str(info.value)
    with pytest.raises(ImageDownloadError):
        await (await session.submit(f"{behaviour}/{fmt}/{wire}")).save(tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("wire", WIRES)
async def test_incomplete_copy_on_the_host_is_refused(
    session: Session, host: FramedHost, wire: str
) -> None:
    """A body as long as announced whose image is cut short is refused at once."""
    with pytest.raises(ImageDownloadError) as info:
        await session.generate(f"short-file/webp/{wire}")
    assert "incomplete" in str(info.value)
    assert "RIFF size" in str(info.value)
    assert len(host.image_requests) == 1


@pytest.mark.parametrize("wire", WIRES)
async def test_product_user_agent_reaches_the_image_host(
    session: Session, host: FramedHost, wire: str
) -> None:
    """Image requests carry zimage-async/<version>, which a script-blocking CDN lets through."""
    result = await session.generate(f"ua-gated/png/{wire}")
    assert result.image.data == IMAGES["png"]
    assert [h.get("user-agent") for h in host.image_requests] == [PRODUCT_UA]
    assert set(host.api_agents) == {PRODUCT_UA}


async def test_configured_user_agent_is_sent(host: FramedHost) -> None:
    """Session(user_agent=...) is the User-Agent of the image and API requests."""
    agent = "PosterShop/2.1 (+https://shop.example/bot)"
    async with _session(host, user_agent=agent) as session:
        await session.generate("ua-gated/jpeg/chunked")
    assert [h.get("user-agent") for h in host.image_requests] == [agent]
    assert set(host.api_agents) == {agent}


async def test_borrowed_http_session_sends_the_product_user_agent(host: FramedHost) -> None:
    """A borrowed aiohttp session's own script-like User-Agent is not what the host sees."""
    async with aiohttp.ClientSession() as http, _session(host, http_session=http) as session:
        result = await session.generate("ua-gated/webp/chunked")
    assert result.image.data == IMAGES["webp"]
    assert [h.get("user-agent") for h in host.image_requests] == [PRODUCT_UA]


@pytest.mark.parametrize("wire", WIRES)
async def test_cloudflare_block_is_image_blocked(host: FramedHost, wire: str) -> None:
    """A Cloudflare 1010 refusal raises ImageBlockedError naming the User-Agent fix."""
    async with _session(host, user_agent="python-requests/2.32") as session:
        with pytest.raises(ImageBlockedError) as info:
            await session.generate(f"ua-gated/png/{wire}")
    message = str(info.value)
    assert "Session(user_agent=...)" in message
    assert "python-requests/2.32" in message
    assert "1010" in message
    assert not isinstance(info.value, ImageExpiredError)
    assert len(host.image_requests) == 1


async def test_refusal_before_the_stated_expiry_is_image_blocked(
    session: Session, host: FramedHost
) -> None:
    """A 403 for a link that states a later expiry is a block, carrying that expiry."""
    expires = int(time.time()) + 3600
    with pytest.raises(ImageBlockedError) as info:
        await session.generate(f"denied/png/chunked/{expires}")
    assert info.value.expires_at == expires
    assert "not expiry" in str(info.value)


@pytest.mark.parametrize(
    "behaviour", [pytest.param("denied", id="403"), pytest.param("gone", id="410")]
)
async def test_refusal_without_a_stated_expiry_is_image_expired(
    session: Session, behaviour: str
) -> None:
    """A plain 403 for a link stating no expiry, or a 410, is still ImageExpiredError."""
    with pytest.raises(ImageExpiredError) as info:
        await session.generate(f"{behaviour}/png/chunked")
    assert not isinstance(info.value, ImageBlockedError)
