"""Chunked callback bodies with a malformed chunk: what each sender gets, and the docs say so.

Where the malformed chunk arrives decides who answers. Sent together with the head, it
fails aiohttp's parsing of the request before any handler runs: aiohttp answers ``400``
itself (``receiver.serve()`` counts that as a refusal; a mounted receiver never sees it).
Sent after the head, the body stalls in aiohttp's C parser and is cut off at
``body_timeout`` with ``408`` (tests/test_receiver_hostile.py), while aiohttp's
pure-Python parser (PyPy, ``AIOHTTP_NO_EXTENSIONS``) hands the receiver the error, which
it refuses at once with ``400``, quietly. Everything runs over raw sockets on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp import http_parser, web, web_protocol

from zimage_async import CallbackReceiver

from .conftest import ROOT, serving

#: The longest any step of these tests waits for the server.
BOUND = 5.0
HEAD = b"POST /hooks/zimage HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
#: A chunk whose size line is not hexadecimal.
BROKEN = b'zz\r\n{"id": "task-unified-1-abc"}\r\n0\r\n\r\n'


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Captures every record of the aiohttp and zimage_async loggers, from DEBUG up."""
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    caplog.set_level(logging.DEBUG, logger="zimage_async")
    return caplog


@contextlib.asynccontextmanager
async def _mounted(receiver: CallbackReceiver) -> AsyncIterator[int]:
    """Serve an app with *receiver* at ``/hooks/zimage``; yield its port."""
    app = web.Application()
    app.router.add_post("/hooks/zimage", receiver.receive)
    async with serving(app) as base:
        yield int(base.rsplit(":", 1)[1])


async def _send(port: int, *parts: bytes) -> bytes:
    """Send *parts* (50 ms apart), return the answer's status line (b"" if none)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for n, part in enumerate(parts):
            if n:
                await asyncio.sleep(0.05)
            writer.write(part)
            await writer.drain()
        return await asyncio.wait_for(reader.readline(), BOUND)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _logged_error(logs: pytest.LogCaptureFixture) -> bool:
    """Whether an ERROR is logged within a short while (aiohttp logs after answering)."""
    for _ in range(20):
        if any(r.levelno >= logging.ERROR for r in logs.records):
            return True
        await asyncio.sleep(0.01)
    return False


def _quiet(logs: pytest.LogCaptureFixture) -> None:
    """No ERROR, and the receiver's one refusal at INFO without a traceback."""
    assert [r.getMessage() for r in logs.records if r.levelno >= logging.ERROR] == []
    ours = [r for r in logs.records if r.name == "zimage_async" and r.levelno > logging.DEBUG]
    assert [r.levelno for r in ours] == [logging.INFO]
    assert ours[0].exc_info is None


async def test_a_broken_chunk_with_the_head_is_aiohttps_400_before_a_mounted_receiver(
    logs: pytest.LogCaptureFixture,
) -> None:
    """Mounted: aiohttp answers 400 and logs an ERROR; the receiver never sees the request."""
    receiver = CallbackReceiver()
    async with _mounted(receiver) as port:
        status = await _send(port, HEAD + BROKEN)
        assert await _logged_error(logs)
    assert status.split(b" ")[1] == b"400"
    assert (receiver.accepted, receiver.refused) == (0, 0)
    errors = [r for r in logs.records if r.levelno >= logging.ERROR]
    assert {r.name for r in errors} == {"aiohttp.server"}


async def test_serve_counts_a_broken_chunk_with_the_head_as_a_quiet_refusal(
    logs: pytest.LogCaptureFixture,
) -> None:
    """Under receiver.serve(): the same 400, counted and logged at INFO, no ERROR."""
    receiver = CallbackReceiver()
    async with receiver.serve() as url:
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        status = await _send(port, HEAD + BROKEN)
        await _logged_error(logs)  # (none comes: give it the time to)
    assert status.split(b" ")[1] == b"400"
    assert (receiver.accepted, receiver.refused) == (0, 1)
    _quiet(logs)


async def test_a_broken_chunk_after_the_head_is_a_quiet_400_with_the_python_parser(
    logs: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With aiohttp's pure-Python parser, the receiver gets the error: 400 at once, no ERROR."""
    monkeypatch.setattr(web_protocol, "HttpRequestParser", http_parser.HttpRequestParserPy)
    receiver = CallbackReceiver(body_timeout=BOUND)
    async with _mounted(receiver) as port:
        status = await asyncio.wait_for(_send(port, HEAD, BROKEN), BOUND - 1)
        await _logged_error(logs)
    assert status == b"HTTP/1.1 400 Bad Request\r\n"
    assert (receiver.accepted, receiver.refused) == (0, 1)
    _quiet(logs)


def _rows(word: str) -> list[str]:
    """The rows of docs/webhooks.md's tables that mention *word*."""
    text = (ROOT / "docs" / "webhooks.md").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.startswith("| ") and word in line]


def test_the_docs_table_gives_each_outcome_of_a_malformed_chunk() -> None:
    """With the head: aiohttp's own 400; after it: 408 at body_timeout (C parser)."""
    rows = _rows("malformed chunk")
    assert any("`400` from aiohttp itself" in row for row in rows), rows
    assert any("`408`" in row and "body_timeout" in row for row in rows), rows
    # No row promises the receiver's own quiet 400 for broken chunks any more.
    assert not any("broken chunks" in row for row in _rows("`400`, and the connection")), rows


def test_the_receiver_docstring_gives_each_outcome_of_a_malformed_chunk() -> None:
    doc = inspect.getdoc(CallbackReceiver) or ""
    paragraph = next(p for p in doc.split("\n\n") if "malformed chunk" in p)
    assert "408" in paragraph and "400" in paragraph and "aiohttp" in paragraph
