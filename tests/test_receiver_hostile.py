"""The callback receiver against senders that never deliver a whole body.

A sender that announces a body and hangs up, one whose chunks or compression are broken,
and one that trickles its body a byte at a time: each is a refused callback, counted as
one, logged like the other refusals (INFO, no traceback) and never as an ERROR, which
would let anybody who knows the URL flood the application's error logs and reporters.
Everything runs over raw sockets on 127.0.0.1, against an aiohttp app of the test's own
with the receiver mounted as a route.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from zimage_async import CallbackReceiver

from .conftest import serving

#: The longest any step of these tests waits for the server (an answer, a count).
BOUND = 5.0

GOOD_BODY = b'{"id": "task-unified-1-abc"}'

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _head(*headers: str) -> bytes:
    lines = ["POST /hooks/zimage HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]
    return "\r\n".join(lines).encode()


@contextlib.asynccontextmanager
async def _mounted(
    receiver: CallbackReceiver, handler: Handler | None = None
) -> AsyncIterator[int]:
    """Serve an app with *receiver* at ``/hooks/zimage`` on 127.0.0.1; yield its port.

    *handler*, if given, is mounted there instead (one that calls the receiver itself).
    """
    app = web.Application()
    app.router.add_post("/hooks/zimage", handler or receiver.receive)
    async with serving(app) as base:
        yield int(base.rsplit(":", 1)[1])


@contextlib.asynccontextmanager
async def _connection(
    port: int,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _answer(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes (b"" if it closes without a word)."""
    try:
        return await asyncio.wait_for(reader.read(), BOUND)
    except ConnectionResetError:
        return b""
    except asyncio.TimeoutError:
        return b"(the connection was not closed within %d s)" % BOUND


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Captures every record of the aiohttp and zimage_async loggers, from DEBUG up."""
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    caplog.set_level(logging.DEBUG, logger="zimage_async")
    return caplog


async def _settled(receiver: CallbackReceiver, logs: pytest.LogCaptureFixture) -> None:
    """Wait (at most BOUND) until the receiver has counted a callback or an ERROR is logged."""
    for _ in range(int(BOUND / 0.01)):
        if receiver.accepted + receiver.refused or any(
            r.levelno >= logging.ERROR for r in logs.records
        ):
            return
        await asyncio.sleep(0.01)


def _assert_refused_quietly(
    receiver: CallbackReceiver, logs: pytest.LogCaptureFixture, *, accepted: int = 0
) -> None:
    """One refusal counted, logged at INFO without a traceback, and no ERROR anywhere."""
    errors = [f"{r.name}: {r.getMessage()}" for r in logs.records if r.levelno >= logging.ERROR]
    assert errors == []
    assert (receiver.accepted, receiver.refused) == (accepted, 1)
    ours = [r for r in logs.records if r.name == "zimage_async" and r.levelno > logging.DEBUG]
    assert [r.levelno for r in ours] == [logging.INFO]
    assert ours[0].getMessage().startswith("refused a task callback: ")
    assert ours[0].exc_info is None
    assert not any(r.exc_info for r in logs.records if r.levelno > logging.DEBUG)


# -- bodies cut off by the sender -------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "sent"),
    [
        pytest.param(_head("Content-Length: 1000"), b'{"id": "ta', id="content-length"),
        pytest.param(_head("Transfer-Encoding: chunked"), b'a\r\n{"id": "ta\r\n', id="chunked"),
    ],
)
@pytest.mark.parametrize("hang_up", ["close", "half-close"])
async def test_a_sender_hanging_up_midway_is_a_quiet_refusal(
    logs: pytest.LogCaptureFixture, head: bytes, sent: bytes, hang_up: str
) -> None:
    """Headers announce a body, part of it comes, the sender hangs up: one refusal, no ERROR."""
    receiver = CallbackReceiver()
    async with _mounted(receiver) as port:
        async with _connection(port) as (reader, writer):
            writer.write(head + sent)
            await writer.drain()
            await asyncio.sleep(0.05)  # the receiver is reading the body
            if hang_up == "half-close":
                writer.write_eof()
                assert not (await _answer(reader)).startswith(b"HTTP/1.1 2")
        await _settled(receiver, logs)
        # the receiver still serves the next sender
        async with _connection(port) as (reader, writer):
            writer.write(_head(f"Content-Length: {len(GOOD_BODY)}") + GOOD_BODY)
            await writer.drain()
            assert (await reader.readline()).startswith(b"HTTP/1.1 202")
    _assert_refused_quietly(receiver, logs, accepted=1)


async def test_a_body_with_broken_compression_is_refused_quietly(
    logs: pytest.LogCaptureFixture,
) -> None:
    """A gzip body that does not decompress is answered 400 and the connection closed."""
    receiver = CallbackReceiver()
    async with _mounted(receiver) as port, _connection(port) as (reader, writer):
        writer.write(_head("Content-Encoding: gzip", "Content-Length: 10") + b"0123456789")
        await writer.drain()
        answer = await _answer(reader)
    assert answer.startswith(b"HTTP/1.1 400 ")
    _assert_refused_quietly(receiver, logs)


# -- slow and stalled bodies --------------------------------------------------------------


async def test_a_trickled_body_is_cut_off_at_body_timeout(
    logs: pytest.LogCaptureFixture,
) -> None:
    """A byte every 0.2 s: answered 408 and closed before the body is complete."""
    receiver = CallbackReceiver(body_timeout=0.5)
    body = GOOD_BODY.ljust(100)
    sent = 0
    async with _mounted(receiver) as port, _connection(port) as (reader, writer):
        writer.write(_head(f"Content-Length: {len(body)}"))
        answering = asyncio.ensure_future(_answer(reader))
        try:
            while not answering.done() and sent < 30:  # 30 bytes: 6 s at most
                writer.write(body[sent : sent + 1])
                sent += 1
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
                await asyncio.wait({answering}, timeout=0.2)
            answer = await answering
        finally:
            answering.cancel()
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"Connection: close" in answer
    assert sent < 30  # the answer came while the sender was still trickling
    _assert_refused_quietly(receiver, logs)


async def test_a_chunked_body_stalled_by_a_broken_chunk_is_cut_off(
    logs: pytest.LogCaptureFixture,
) -> None:
    """A chunk size that is not hex stops the body from ever ending: 408, not a hang."""
    receiver = CallbackReceiver(body_timeout=0.5)
    async with _mounted(receiver) as port, _connection(port) as (reader, writer):
        writer.write(_head("Transfer-Encoding: chunked"))
        await writer.drain()
        await asyncio.sleep(0.05)  # the receiver is reading the body
        writer.write(b'zz\r\n{"id": "task-unified-1-abc"}\r\n')
        await writer.drain()
        answer = await _answer(reader)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    _assert_refused_quietly(receiver, logs)


async def test_a_prompt_callback_is_accepted_with_a_short_body_timeout(
    logs: pytest.LogCaptureFixture,
) -> None:
    """The bound only cuts off slow bodies: a whole body sent at once is a 202."""
    receiver = CallbackReceiver(body_timeout=0.5)
    async with _mounted(receiver) as port, _connection(port) as (reader, writer):
        writer.write(_head(f"Content-Length: {len(GOOD_BODY)}") + GOOD_BODY)
        await writer.drain()
        assert (await reader.readline()).startswith(b"HTTP/1.1 202")
    assert (receiver.accepted, receiver.refused) == (1, 0)


@pytest.mark.parametrize("read_first", [True, False], ids=["read-first", "cancel-first"])
async def test_a_receive_cancelled_as_its_body_read_completes_stays_cancelled(
    logs: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, read_first: bool
) -> None:
    """The handler cancelled in the turn its body read ends: cancelled, nothing accepted.

    aiohttp cancels a handler when its sender disconnects (``handler_cancellation``) or
    the server shuts down. ``asyncio.wait_for`` around the read returned the body then,
    on Python 3.10 and 3.11, and the handler went on and posted the hint. The read is a
    stand-in here, so that its end and the cancel come in one callback.
    """
    receiver = CallbackReceiver()
    body: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
    reading: list[bool] = []
    handlers: list[asyncio.Task[object]] = []
    outcomes: list[str] = []

    async def held_read(request: web.Request) -> bytes | None:
        reading.append(True)
        return await body

    async def handler(request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        handlers.append(task)
        try:
            return await receiver.receive(request)
        except asyncio.CancelledError:
            outcomes.append("cancelled")
            raise

    def read_and_cancel() -> None:
        if read_first:
            body.set_result(GOOD_BODY)
        handlers[0].cancel()
        if not body.done():  # (the cancel may have reached the read's own future)
            body.set_result(GOOD_BODY)

    monkeypatch.setattr(receiver, "_read", held_read)
    async with _mounted(receiver, handler) as port, _connection(port) as (reader, writer):
        writer.write(_head(f"Content-Length: {len(GOOD_BODY)}") + GOOD_BODY)
        await writer.drain()
        for _ in range(int(BOUND / 0.01)):  # until the receiver is reading the body
            if reading:
                break
            await asyncio.sleep(0.01)
        assert reading
        asyncio.get_running_loop().call_soon(read_and_cancel)
        done, _ = await asyncio.wait(set(handlers), timeout=BOUND)
        assert done == set(handlers)
        assert outcomes == ["cancelled"]
        assert await _answer(reader) == b""  # no answer: the connection is closed
    assert handlers[0].cancelled()
    assert (receiver.accepted, receiver.refused) == (0, 0)
    assert not receiver._board.recent("task-unified-1-abc")  # no hint was posted
    assert [r.getMessage() for r in logs.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("seconds", [0, -1.0, math.nan, math.inf])
def test_body_timeout_must_be_a_finite_number_of_seconds_above_0(seconds: float) -> None:
    with pytest.raises(ValueError, match="body_timeout"):
        CallbackReceiver(body_timeout=seconds)


# -- bodies over the limit ----------------------------------------------------------------


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(_head("Content-Length: 100000000"), id="content-length"),
        pytest.param(_head("Transfer-Encoding: chunked"), id="chunked"),
    ],
)
async def test_a_body_over_the_limit_is_answered_413_and_not_read_further(
    logs: pytest.LogCaptureFixture, head: bytes
) -> None:
    """413, then the connection closed: the rest of the body is not read (nor unzipped).

    Before, aiohttp went on reading what was left for up to 10 s after the 413 (its
    lingering read), gigabytes from a fast sender, all of it decompressed if gzipped.
    A sender still sending when the connection closes may see it reset before it reads
    the 413 (its system drops the answer it has not read yet).
    """
    receiver = CallbackReceiver(max_body_bytes=1000)
    chunked = b"chunked" in head
    piece = b" " * 65536
    if chunked:
        piece = b"%x\r\n%s\r\n" % (len(piece), piece)
    sent = 0
    async with _mounted(receiver) as port, _connection(port) as (reader, writer):
        writer.write(head)
        answering = asyncio.ensure_future(_answer(reader))
        try:
            while not answering.done() and sent < 400:  # 26 MB at most
                writer.write(piece)
                sent += 1
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
                await asyncio.sleep(0)
            answer = await answering
        finally:
            answering.cancel()
    assert answer == b"" or answer.startswith(b"HTTP/1.1 413 "), answer
    assert sent < 400  # closed while the sender still had more to send
    _assert_refused_quietly(receiver, logs)


async def test_leaving_serve_does_not_wait_for_a_trickling_sender(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``serve()`` ends promptly while a sender trickles its body (``body_timeout`` 30 s).

    Its exit waited for that sender's handler: until ``body_timeout``, or aiohttp's 60 s
    shutdown limit for one that never reads its answers. A callback is answered in
    milliseconds: nothing is worth waiting for.
    """
    receiver = CallbackReceiver(body_timeout=30.0)
    loop = asyncio.get_running_loop()
    async with receiver.serve(host="127.0.0.1", port=0) as url:
        port = int(url.rsplit(":", 1)[1].strip("/"))
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        head = "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n"
        writer.write(head.encode() + b"{")
        await writer.drain()
        await asyncio.sleep(0.2)  # its handler is reading the body
        started = loop.time()
    took = loop.time() - started
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    assert took < 5.0, f"leaving serve() took {took:.1f} s"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
