"""The API key never reaches an error report: Sentry at its defaults, tracebacks with locals."""

from __future__ import annotations

import asyncio
import collections.abc
import json
import socket
import struct
from typing import Any

import pytest
from aiohttp import web

from zimage_async import (
    APIConnectionError,
    AuthenticationError,
    MalformedResponseError,
    RetryPolicy,
    SubmissionUncertainError,
    ZImageError,
)
from zimage_async._transport import RedactedHeaders

from ._reports import CapturingTransport, raw_server, rendered, report
from .conftest import KEY, loopback_session, serving

ONE_TRY = RetryPolicy(max_attempts=1)
TASK_ID = "task-unified-1-abcdefgh"


async def _reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    await reader.read()  # never answers; ends when the client gives up and closes
    writer.close()


async def _garbled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    body = b'{"id": "task-unified-1-ab'
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    )
    await writer.drain()
    writer.close()


def _free_closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def _fail(base: str, action: str, **options: Any) -> ZImageError:
    async with loopback_session(base, retry=ONE_TRY, **options) as session:
        call = session.submit("a cat") if action == "create" else session.get_task(TASK_ID)
        with pytest.raises(ZImageError) as info:
            await call
    return info.value


def _assert_clean(
    error: BaseException, capture: CapturingTransport, *, in_transport: bool = True
) -> None:
    envelope = report(capture, error)
    text = rendered(error)
    assert KEY.encode() not in envelope and KEY not in text
    assert b'"vars"' in envelope  # the frames' locals were captured
    if in_transport:  # the transport's frame is in the traceback, its headers masked
        assert b"RedactedHeaders" in envelope and "RedactedHeaders" in text


async def test_refused_connection_report_has_no_key(sentry: CapturingTransport) -> None:
    """A refused connection, reported with locals, never shows the key."""
    error = await _fail(f"http://127.0.0.1:{_free_closed_port()}", "read")
    assert isinstance(error, APIConnectionError) and not error.request_sent
    _assert_clean(error, sentry)


async def test_reset_connection_report_has_no_key(sentry: CapturingTransport) -> None:
    """A reset after the request was read, reported with locals, never shows the key."""
    async with raw_server(_reset) as base:
        error = await _fail(base, "read")
    assert isinstance(error, APIConnectionError)
    _assert_clean(error, sentry)


async def test_timeout_report_has_no_key(sentry: CapturingTransport) -> None:
    """A stalled answer timing out, reported with locals, never shows the key."""
    async with raw_server(_silent) as base:
        error = await _fail(base, "read", timeout=0.2)
    assert isinstance(error, APIConnectionError)
    _assert_clean(error, sentry)


async def test_garbled_reply_report_has_no_key(sentry: CapturingTransport) -> None:
    """A garbled JSON answer, reported with locals, never shows the key."""
    async with raw_server(_garbled) as base:
        error = await _fail(base, "read")
    assert isinstance(error, MalformedResponseError)
    _assert_clean(error, sentry, in_transport=False)


async def test_uncertain_create_and_its_cause_have_no_key(sentry: CapturingTransport) -> None:
    """An uncertain create, with its chained cause, reported with locals, never shows the key."""
    async with raw_server(_reset) as base:
        error = await _fail(base, "create")
    assert isinstance(error, SubmissionUncertainError) and error.__cause__ is not None
    _assert_clean(error, sentry)


@pytest.mark.parametrize(
    "echo",
    [
        pytest.param(f"Incorrect API key provided: {KEY}", id="bare-key"),
        pytest.param(f"header Authorization: Bearer {KEY} is not valid", id="bearer"),
    ],
)
async def test_401_echoing_the_key_is_masked(sentry: CapturingTransport, echo: str) -> None:
    """A 401 whose message echoes the key shows it nowhere: text, attributes or report."""

    async def refuse(request: web.Request) -> web.Response:
        return web.json_response(
            {"error": {"code": 401, "type": "authentication_error", "message": echo}},
            status=401,
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    async with serving(app) as base:
        error = await _fail(base, "read")
    assert isinstance(error, AuthenticationError)
    assert KEY not in f"{error} {error!r} {error.message} {error.args}"
    _assert_clean(error, sentry, in_transport=False)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32", "utf-32-be", "utf-8-sig"])
async def test_a_key_echoed_in_json_of_another_unicode_encoding_is_masked(
    sentry: CapturingTransport, encoding: str
) -> None:
    """JSON in UTF-16 or UTF-32 (read as the standard library reads it) is masked too."""
    envelope = {"error": {"code": 401, "type": "authentication_error", "message": f"bad {KEY}"}}
    error = await _refused_with(json.dumps(envelope).encode(encoding))
    assert "bad ***" in error.message
    assert KEY not in f"{error} {error!r} {error.message} {error.args}"
    _assert_clean(error, sentry, in_transport=False)


async def _refused_with(body: bytes) -> AuthenticationError:
    """Return the error of a task read answered 401 with *body* (JSON, of any encoding)."""

    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=401, body=body, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    async with serving(app) as base:
        error = await _fail(base, "read")
    assert isinstance(error, AuthenticationError)
    return error


def test_redacted_headers_are_not_a_mapping() -> None:
    """RedactedHeaders is no Mapping or Sequence, so reporters fall back to its masked repr."""
    headers = RedactedHeaders({"Authorization": f"Bearer {KEY}", "Accept": "application/json"})
    headers["Idempotency-Key"] = "k" * 20
    assert not isinstance(headers, collections.abc.Mapping)
    assert not isinstance(headers, collections.abc.Sequence)
    assert KEY not in repr(headers) and KEY not in str(headers)
    assert "Idempotency-Key" in repr(headers)


async def test_a_key_echoed_in_utf16_json_with_a_lone_surrogate_is_masked(
    sentry: CapturingTransport,
) -> None:
    """A raw lone surrogate (which the answer's reading keeps) does not stop the masking."""
    head = '{"error": {"code": 401, "type": "authentication_error", "message": "bad '
    tail = f' {KEY}"}}}}'
    lone = b"\x00\xd8"  # U+D800 alone, in UTF-16-LE: no valid UTF-16 decoder takes it
    error = await _refused_with(head.encode("utf-16-le") + lone + tail.encode("utf-16-le"))
    assert "bad \ud800 ***" in error.message
    assert KEY not in f"{error} {error!r} {error.message} {error.args}"
    _assert_clean(error, sentry, in_transport=False)
