r"""The SDK's exception messages and log lines stay safe to print, whatever a server sends.

A gateway's or an image host's text (an error envelope's message, a task's status or
error, a result link, an image host's headers) goes into the SDK's exceptions and log
lines. Printed as it came, it could add lines of its own to an application's log
(``log.error("%s", exc)``), send terminal escape codes, make ``print(exc)`` fail on a
UTF-8 stream (a lone surrogate, valid in JSON) or grow a message to hundreds of
kilobytes. In an exception's message such text is written escaped (``\n``, ``\x1b``,
``\ud800``) and each piece cut to 500 characters; the exception's attributes keep the
text as it came (the key masked). An image host that echoes the API key (which it is
never sent) has it masked too. The servers are small aiohttp apps on 127.0.0.1.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiohttp import web

from zimage_async import (
    BadRequestError,
    ImageDownloadError,
    ImageLinkRefusedError,
    TaskFailedError,
    WaitTimeoutError,
    ZImageError,
)

from .conftest import KEY, CompletedHost, _png, loopback_session, serving

#: Text a hostile server sends: a forged log line, terminal escapes, a lone surrogate.
HOSTILE = "line\nCRITICAL forged\x1b[2J\x1b]0;title\x07\ud800"


def _assert_printable(text: str) -> None:
    """*text* is one line of printable characters that UTF-8 can encode."""
    assert text.isprintable(), ascii(text[:200])
    text.encode("utf-8")


async def _image(request: web.Request) -> web.Response:
    return web.Response(body=_png((64, 64)), content_type="image/png")


class Gateway(CompletedHost):
    """A gateway whose creates and reads answer what a test sets."""

    def __init__(self) -> None:
        super().__init__(_image)
        self.create_answer: tuple[int, dict[str, Any]] | None = None
        self.read_answer: dict[str, Any] | None = None

    async def create(self, request: web.Request) -> web.StreamResponse:
        if self.create_answer is not None:
            status, body = self.create_answer
            return web.json_response(body, status=status)
        return await super().create(request)

    async def task(self, request: web.Request) -> web.Response:
        if self.read_answer is None:
            return await super().task(request)
        return web.json_response({"id": request.match_info["task_id"]} | self.read_answer)


async def test_an_error_envelope_message_is_escaped_and_cut_in_the_exception() -> None:
    """A 400 whose message is 200 KB of forged lines: str(exc) is one short line."""
    gateway = Gateway()
    message = (HOSTILE * 8000)[:200_000]
    envelope = {
        "code": 400,
        "type": "invalid_request_error",
        "message": message,
        "param": "prompt",
    }
    gateway.create_answer = (400, {"error": envelope})
    async with serving(gateway.app) as gateway.base, loopback_session(gateway.base) as zs:
        with pytest.raises(BadRequestError) as caught:
            await zs.submit("a cat")
    text = str(caught.value)
    _assert_printable(text)
    assert len(text) < 1_000
    assert "[param: prompt]" in text  # the SDK's own parts after the cut text are kept
    assert caught.value.message == message  # the attribute keeps the text as it came


async def test_an_unknown_status_is_escaped_and_cut_in_the_wait_timeout() -> None:
    """A task whose status is kilobytes of forged lines times out with a short message."""
    gateway = Gateway()
    gateway.read_answer = {"status": HOSTILE * 500, "progress": 3}
    async with serving(gateway.app) as gateway.base, loopback_session(gateway.base) as zs:
        handle = zs.task("task-unified-1757165031-abcdefgh")
        with pytest.raises(WaitTimeoutError) as caught:
            await handle.result(timeout=0.3)
    text = str(caught.value)
    _assert_printable(text)
    assert len(text) < 1_000
    assert caught.value.last_status == HOSTILE * 500


async def test_a_failed_task_message_with_a_lone_surrogate_can_be_printed() -> None:
    """A failed task's error message holding a lone surrogate: str(exc) encodes as UTF-8."""
    gateway = Gateway()
    error = {"code": "service_error", "message": HOSTILE}
    gateway.read_answer = {"status": "failed", "progress": 100, "error": error}
    async with serving(gateway.app) as gateway.base, loopback_session(gateway.base) as zs:
        with pytest.raises(TaskFailedError) as caught:
            await zs.task("task-unified-1757165031-abcdefgh")
    _assert_printable(str(caught.value))
    assert "\\ud800" in str(caught.value) and "\\x1b[2J" in str(caught.value)
    assert caught.value.message == HOSTILE


def test_every_sdk_error_message_is_escaped_when_made() -> None:
    """Whatever text an SDK error is made with, its message is one printable line."""
    error = ZImageError(HOSTILE)
    _assert_printable(str(error))
    assert str(error) == "line\\nCRITICAL forged\\x1b[2J\\x1b]0;title\\x07\\ud800"
    assert str(ZImageError("plain words, unchanged: é ✓")) == "plain words, unchanged: é ✓"


async def test_a_result_link_with_escape_codes_is_logged_escaped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The debug line of an image GET names a hostile link escaped, and its error too."""
    caplog.set_level(logging.DEBUG, logger="zimage_async")
    gateway = Gateway()
    async with serving(gateway.app) as gateway.base, loopback_session(gateway.base) as zs:
        gateway.read_answer = {
            "status": "completed",
            "progress": 100,
            "results": [f"{gateway.base}/img/x\x1b]0;pwned\x07\x1b[2J\ud800.png"],
        }
        with pytest.raises(ImageDownloadError) as caught:
            await zs.task("task-unified-1757165031-abcdefgh")
    _assert_printable(str(caught.value))
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("zimage_async")]
    gets = [line for line in lines if line.startswith("GET http")]
    assert gets
    for line in lines:
        _assert_printable(line)


async def test_an_image_host_echoing_the_key_has_it_masked_in_the_error() -> None:
    """The key in an image host's Content-Type or Content-Range never reaches the error."""

    async def echoing(request: web.Request) -> web.Response:
        return web.Response(
            body=b"<html>blocked</html>", headers={"Content-Type": f"text/html; {KEY}"}
        )

    async def ranged(request: web.Request) -> web.Response:
        body = _png((64, 64))
        return web.Response(
            status=206,
            body=body,
            headers={"Content-Type": "image/png", "Content-Range": f"bytes {KEY}"},
        )

    for handler in (echoing, ranged):
        host = CompletedHost(handler)
        async with serving(host.app) as host.base, loopback_session(host.base) as zs:
            with pytest.raises(ImageDownloadError) as caught:
                await zs.task("task-unified-1757165031-abcdefgh")
        error = caught.value
        assert not isinstance(error, ImageLinkRefusedError)
        assert KEY not in str(error) and KEY not in error.reason, str(error)
        assert "***" in error.reason
