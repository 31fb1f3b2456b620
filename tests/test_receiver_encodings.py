"""Requests aiohttp refuses before the receiver sees them, such as an undecodable body.

A body in a Content-Encoding that aiohttp cannot decode (``br`` without Brotli, ``zstd``
without a zstd module) is refused while aiohttp parses the headers, before any handler
runs, as are malformed request lines and headers. Under ``receiver.serve()`` each is a
refusal like the others: answered 400, counted in ``refused``, logged at INFO without a
traceback and never as an ERROR. Mounted in an app of one's own, the app's server refuses
them as it refuses them for any route (what docs/webhooks.md says). Everything runs over
raw sockets on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp import compression_utils, web

from zimage_async import CallbackReceiver

from .conftest import serving

#: The longest any step of these tests waits for the server (an answer, a count).
BOUND = 5.0

GOOD_BODY = b'{"id": "task-unified-1-abc"}'

DECODABLE = {"br": compression_utils.HAS_BROTLI, "zstd": compression_utils.HAS_ZSTD}


def _request(*headers: str, body: bytes = b"0123456789", path: str = "/") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", *headers]
    lines += [f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode() + body


MALFORMED = {
    "a header line without a colon": _request("Not A Header"),
    "a header line over aiohttp's limit": _request("X-Long: " + "a" * 9000),
    "a Content-Length that is not a number": _request("Content-Length: ten"),
}


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Captures every record of the aiohttp and zimage_async loggers, from DEBUG up."""
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    caplog.set_level(logging.DEBUG, logger="zimage_async")
    return caplog


async def _exchange(port: int, data: bytes) -> bytes:
    """Send *data* on a new connection; return the answer's status line."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), BOUND)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return answer.split(b"\r\n", 1)[0]


@contextlib.asynccontextmanager
async def _served(receiver: CallbackReceiver) -> AsyncIterator[int]:
    async with receiver.serve() as url:
        yield int(url.rstrip("/").rsplit(":", 1)[1])


async def _counted(receiver: CallbackReceiver, refused: int) -> None:
    """Wait (bounded) until *receiver* has refused *refused* callbacks."""
    for _ in range(int(BOUND / 0.01)):
        if receiver.refused >= refused:
            return
        await asyncio.sleep(0.01)


def _assert_a_quiet_refusal(logs: pytest.LogCaptureFixture) -> None:
    """One INFO refusal of ours, no traceback above DEBUG, nothing at ERROR or above."""
    errors = [f"{r.name}: {r.getMessage()}" for r in logs.records if r.levelno >= logging.ERROR]
    assert errors == []
    ours = [r for r in logs.records if r.name == "zimage_async" and r.levelno > logging.DEBUG]
    assert [r.levelno for r in ours] == [logging.INFO]
    assert ours[0].getMessage().startswith("refused a task callback: ")
    assert not any(r.exc_info for r in logs.records if r.levelno > logging.DEBUG)


@pytest.mark.parametrize("encoding", ["br", "zstd"])
async def test_serve_refuses_an_undecodable_encoding_quietly(
    encoding: str, logs: pytest.LogCaptureFixture
) -> None:
    """``serve()``: a body aiohttp cannot decode is a refusal counted and logged at INFO."""
    if DECODABLE[encoding]:
        pytest.skip(f"aiohttp can decode {encoding} here")
    receiver = CallbackReceiver()
    async with _served(receiver) as port:
        status = await _exchange(port, _request(f"Content-Encoding: {encoding}"))
        await _counted(receiver, 1)
    assert status.endswith(b" 400 Bad Request")
    assert (receiver.accepted, receiver.refused) == (0, 1)
    _assert_a_quiet_refusal(logs)
    assert any(f"({encoding})" in r.getMessage() for r in logs.records if r.name == "zimage_async")


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
async def test_serve_refuses_a_malformed_request_quietly(
    data: bytes, logs: pytest.LogCaptureFixture
) -> None:
    """``serve()``: a request aiohttp cannot parse is a refusal counted and logged at INFO."""
    receiver = CallbackReceiver()
    async with _served(receiver) as port:
        status = await _exchange(port, data)
        await _counted(receiver, 1)
    assert status.endswith(b" 400 Bad Request")
    assert (receiver.accepted, receiver.refused) == (0, 1)
    _assert_a_quiet_refusal(logs)


async def test_serve_counts_a_request_that_is_not_http_at_debug(
    logs: pytest.LogCaptureFixture,
) -> None:
    """TLS sent to the plain port is counted too, at DEBUG, where aiohttp logs it."""
    receiver = CallbackReceiver()
    async with _served(receiver) as port:
        status = await _exchange(port, b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03")
        await _counted(receiver, 1)
    assert status.endswith(b" 400 Bad Request")
    assert receiver.refused == 1
    assert [r for r in logs.records if r.levelno > logging.DEBUG] == []
    ours = [r for r in logs.records if r.name == "zimage_async"]
    assert [r.getMessage().startswith("refused a task callback: ") for r in ours] == [True]


async def test_serve_still_accepts_callbacks_after_refusing_requests(
    logs: pytest.LogCaptureFixture,
) -> None:
    """The refusals change nothing for the callbacks that follow."""
    receiver = CallbackReceiver()
    async with _served(receiver) as port:
        for data in MALFORMED.values():
            await _exchange(port, data)
        status = await _exchange(port, _request(body=GOOD_BODY))
    assert status.endswith(b" 202 Accepted")
    assert (receiver.accepted, receiver.refused) == (1, len(MALFORMED))


async def test_serve_still_logs_a_failing_handler_as_an_error(
    logs: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the requests aiohttp refuses are quiet: a handler's own crash stays an ERROR."""
    receiver = CallbackReceiver()

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("a bug in the handler")

    monkeypatch.setattr(receiver, "receive", broken)
    async with _served(receiver) as port:
        status = await _exchange(port, _request(body=GOOD_BODY))
    assert status.endswith(b" 500 Internal Server Error")
    assert receiver.refused == 0
    errors = [r for r in logs.records if r.levelno >= logging.ERROR]
    assert [r.name for r in errors] == ["aiohttp.server"]
    assert errors[0].exc_info is not None


@pytest.mark.parametrize("encoding", ["br", "zstd"])
async def test_a_mounted_receiver_never_sees_an_undecodable_body(
    encoding: str, logs: pytest.LogCaptureFixture
) -> None:
    """Mounted in one's own app, the app's server refuses it, as docs/webhooks.md says.

    aiohttp answers 400 before the route's handler runs, so the receiver does not count
    it, and the app's server logs it as it logs such a request to any route: an ERROR with
    a traceback on ``aiohttp.server`` (the app's runner has aiohttp's default logger).
    """
    if DECODABLE[encoding]:
        pytest.skip(f"aiohttp can decode {encoding} here")
    receiver = CallbackReceiver()
    app = web.Application()
    app.router.add_post("/hooks/zimage", receiver.receive)
    async with serving(app) as base:
        port = int(base.rsplit(":", 1)[1])
        status = await _exchange(
            port, _request(f"Content-Encoding: {encoding}", path="/hooks/zimage")
        )
    assert status.endswith(b" 400 Bad Request")
    assert (receiver.accepted, receiver.refused) == (0, 0)
    errors = [r for r in logs.records if r.levelno >= logging.ERROR]
    assert [r.name for r in errors] == ["aiohttp.server"]
    assert errors[0].exc_info is not None
