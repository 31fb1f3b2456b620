"""Image hosts that answer in ways the emulator never does, on a raw socket.

A 206 whose body is longer than the range it states (a JPEG's framing cannot see bytes
repeated inside its data: only the lengths can); a whole image whose connection drops
before its end, then a correct 416 for the bytes after it; a 403 page that trickles
after its first line; a Retry-After past the download's limit.
"""

from __future__ import annotations

import asyncio
import io
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from PIL import Image as PILImage

from zimage_async import ImageBlockedError, ImageDownloadError, Session

from .conftest import CompletedHost, loopback_session, serving


def _noise(kind: str, seed: int) -> bytes:
    """An image of random pixels: its data does not compress, its framing is real."""
    pixels = random.Random(seed).randbytes(160 * 160 * 3)
    buffer = io.BytesIO()
    PILImage.frombytes("RGB", (160, 160), pixels).save(buffer, format=kind)
    return buffer.getvalue()


JPEG = _noise("JPEG", 5)
PNG = _noise("PNG", 6)

Writer = asyncio.StreamWriter
Answer = Callable[[dict[str, str], Writer], Awaitable[None]]


def _reply(status: int, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    head = [f"HTTP/1.1 {status} X", *(f"{name}: {value}" for name, value in headers)]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def _answering(status: int, headers: list[tuple[str, str]], body: bytes = b"") -> Answer:
    """An answer that is always this reply."""

    async def answer(request: dict[str, str], writer: Writer) -> None:
        writer.write(_reply(status, headers, body))
        await writer.drain()

    return answer


class RawImageHost(CompletedHost):
    """The API on aiohttp; the image link on a raw socket answering with ``answer``."""

    def __init__(self) -> None:
        super().__init__(self._unused)
        self.raw = ""
        self.answer: Answer | None = None
        self.requests: list[dict[str, str]] = []

    async def _unused(self, request: web.Request) -> web.StreamResponse:  # pragma: no cover
        raise AssertionError("the image is on the raw host, not linked here")

    def link(self, task_id: str) -> str:
        return f"{self.raw}/img/0"

    async def serve(self, reader: asyncio.StreamReader, writer: Writer) -> None:
        """One request per connection: read its head, answer, close."""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            headers = {}
            for line in head.decode("latin-1").split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if value:
                    headers[name.strip().lower()] = value.strip()
            self.requests.append(headers)
            assert self.answer is not None
            await self.answer(headers, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def host() -> AsyncIterator[RawImageHost]:
    made = RawImageHost()
    server = await asyncio.start_server(made.serve, "127.0.0.1", 0)
    made.raw = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        async with serving(made.app) as made.base:
            yield made
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def session(host: RawImageHost) -> AsyncIterator[Session]:
    async with loopback_session(host.base, read_timeout=3, image_timeout=20) as opened:
        yield opened


def _first_half_then(resume: Answer, image: bytes, kind: str) -> Answer:
    """The first answer ends cleanly halfway (chunked); later ones are *resume*'s."""

    async def answer(headers: dict[str, str], writer: Writer) -> None:
        if "range" in headers:
            await resume(headers, writer)
            return
        half = len(image) // 2
        chunk = f"{half:x}\r\n".encode() + image[:half] + b"\r\n0\r\n\r\n"
        writer.write(_reply(200, [("Content-Type", kind), ("Transfer-Encoding", "chunked")]))
        writer.write(chunk)
        await writer.drain()

    return answer


async def test_a_206_longer_than_its_range_is_refused(
    session: Session, host: RawImageHost, tmp_path: Path
) -> None:
    """206 bytes N-(T-1)/T with 100 bytes too many: an error, no image, no file."""

    async def repeating(headers: dict[str, str], writer: Writer) -> None:
        start = int(headers["range"].removeprefix("bytes=").removesuffix("-"))
        body = JPEG[start - 100 :]  # the 100 bytes before the offset, again
        content_range = f"bytes {start}-{len(JPEG) - 1}/{len(JPEG)}"
        fields = [("Content-Type", "image/jpeg"), ("Content-Range", content_range)]
        writer.write(_reply(206, [*fields, ("Content-Length", str(len(body)))], body))
        await writer.drain()

    host.answer = _first_half_then(repeating, JPEG, "image/jpeg")
    handle = await session.submit("a cat")
    with pytest.raises(ImageDownloadError, match="Content-Length"):
        await handle
    with pytest.raises(ImageDownloadError):
        await handle.save(tmp_path / "out")
    assert not list((tmp_path / "out").glob("*"))


async def test_a_206_that_goes_past_the_total_it_states_is_refused(
    session: Session, host: RawImageHost
) -> None:
    """Without Content-Length (chunked), bytes past the stated total are refused."""

    async def repeating(headers: dict[str, str], writer: Writer) -> None:
        start = int(headers["range"].removeprefix("bytes=").removesuffix("-"))
        body = JPEG[start - 100 :]
        content_range = f"bytes {start}-{len(JPEG) - 1}/{len(JPEG)}"
        fields = [("Content-Type", "image/jpeg"), ("Content-Range", content_range)]
        writer.write(_reply(206, [*fields, ("Transfer-Encoding", "chunked")]))
        writer.write(f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
        await writer.drain()

    host.answer = _first_half_then(repeating, JPEG, "image/jpeg")
    with pytest.raises(ImageDownloadError, match=f"{len(JPEG)} bytes"):
        await (await session.submit("a cat"))


def _then_416(first: Answer, *, stated: bool) -> Answer:
    """*first* for the image, then 416 for the resume (stating the PNG's length, or bare)."""
    length = [("Content-Range", f"bytes */{len(PNG)}")] if stated else []
    refused = _answering(416, [*length, ("Content-Length", "0")])

    async def answer(headers: dict[str, str], writer: Writer) -> None:
        await (refused if "range" in headers else first)(headers, writer)

    return answer


@pytest.mark.parametrize("stated", [True, False], ids=["416-states-the-length", "416-bare"])
async def test_a_whole_image_then_a_416_is_delivered(
    session: Session, host: RawImageHost, stated: bool
) -> None:
    """All its bytes came (chunked), the connection dropped, then a 416: delivered."""
    fields = [("Content-Type", "image/png"), ("Transfer-Encoding", "chunked")]
    body = f"{len(PNG):x}\r\n".encode() + PNG + b"\r\n"  # no last chunk: cut at the end
    host.answer = _then_416(_answering(200, fields, body), stated=stated)
    result = await (await session.submit("a cat"))
    assert result.image.data == PNG
    assert host.requests[1]["range"] == f"bytes={len(PNG)}-"


@pytest.mark.parametrize("stated", [True, False], ids=["416-states-the-length", "416-bare"])
async def test_a_416_after_fewer_bytes_than_first_announced_is_refused(
    session: Session, host: RawImageHost, stated: bool
) -> None:
    """Content-Length 100 bytes over the image's framing, then 416: the host disagrees."""
    fields = [("Content-Type", "image/png"), ("Content-Length", str(len(PNG) + 100))]
    host.answer = _then_416(_answering(200, fields, PNG), stated=stated)
    with pytest.raises(ImageDownloadError) as caught:
        await (await session.submit("a cat"))
    message = str(caught.value)
    assert f"{len(PNG) + 100} bytes" in message
    assert "incomplete" not in message  # the framing says complete: the lengths disagree


async def test_a_416_for_bytes_the_image_still_lacks_is_an_incomplete_copy(
    session: Session, host: RawImageHost
) -> None:
    """Half the image, then 416: the host's copy is short (as before)."""
    fields = [("Content-Range", f"bytes */{len(PNG) // 2}"), ("Content-Length", "0")]
    host.answer = _first_half_then(_answering(416, fields), PNG, "image/png")
    with pytest.raises(ImageDownloadError, match="incomplete"):
        await (await session.submit("a cat"))


async def test_a_block_page_that_trickles_is_read_briefly_and_named(
    session: Session, host: RawImageHost
) -> None:
    """A 1010 page whose body then trickles: ImageBlockedError in seconds, not at the limit."""

    async def trickling(headers: dict[str, str], writer: Writer) -> None:
        page = b"<title>Access denied | Cloudflare</title> error code: 1010"
        fields = [("Content-Type", "text/html"), ("Content-Length", "4096")]
        writer.write(_reply(403, fields, page))
        await writer.drain()
        for _ in range(30):
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(1)

    host.answer = trickling
    handle = await session.submit("a cat")
    started = time.monotonic()
    with pytest.raises(ImageBlockedError):
        await handle
    assert time.monotonic() - started < 15  # the image_timeout is 20 s


async def test_a_retry_after_past_the_limit_is_named_as_such(
    session: Session, host: RawImageHost
) -> None:
    """503 with Retry-After 50 and a 20 s limit: raised at once, saying what the host asked."""
    host.answer = _answering(503, [("Retry-After", "50"), ("Content-Length", "0")])
    with pytest.raises(ImageDownloadError) as caught:
        await (await session.submit("a cat"))
    message = str(caught.value)
    assert "the image host asks 50 s" in message
    assert "took longer" not in message


async def test_a_retry_after_past_the_time_left_says_time_left(host: RawImageHost) -> None:
    """503 every time, Retry-After 2 s, a 5 s limit: raised when the wait passes what is left."""
    host.answer = _answering(503, [("Retry-After", "2"), ("Content-Length", "0")])
    async with loopback_session(host.base, image_timeout=5) as session:
        with pytest.raises(ImageDownloadError) as caught:
            await (await session.submit("a cat"))
    message = str(caught.value)
    assert "s left of the 5 s total limit" in message, message


async def test_a_whole_other_image_answering_a_resume_is_not_joined(
    session: Session, host: RawImageHost
) -> None:
    """No validator, no length: a 200 of another image is told by its first bytes."""
    other = _noise("JPEG", 9)

    fields = [("Content-Type", "image/jpeg"), ("Content-Length", str(len(other)))]
    host.answer = _first_half_then(_answering(200, fields, other), JPEG, "image/jpeg")
    with pytest.raises(ImageDownloadError, match="changed between attempts"):
        await (await session.submit("a cat"))


async def test_the_same_image_answering_a_resume_whole_is_joined(
    session: Session, host: RawImageHost
) -> None:
    """A 200 of the same image (Range ignored): its first bytes are skipped, it is whole."""
    fields = [("Content-Type", "image/jpeg"), ("Content-Length", str(len(JPEG)))]
    host.answer = _first_half_then(_answering(200, fields, JPEG), JPEG, "image/jpeg")
    result = await (await session.submit("a cat"))
    assert result.image.data == JPEG
