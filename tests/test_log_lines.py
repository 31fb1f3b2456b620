r"""The SDK's log lines stay one line each, whatever text the gateway sends.

A task's ``status`` and an error envelope's ``message`` are the gateway's text, and the
SDK writes them into its log records: the status at every poll (debug), a read that
lags behind an ended task and a retried call (info), an unknown status (warning). A
newline in that text used to reach the log as it was, so an answer could add lines of
its own ("CRITICAL ...") to the application's log; a status of many kilobytes was logged
whole. Now such text is written escaped (``\n``) and cut. The gateway is a small aiohttp
server on 127.0.0.1 whose task reads follow a script.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from zimage_async import Session

from .conftest import CompletedHost, _png, loopback_session, serving

FORGED = "queued\nCRITICAL zimage_async: forged line"
#: A read's answer in a script: (HTTP status, body); a body of None is the task completed.
Answer = tuple[int, dict[str, Any] | None]
COMPLETED: Answer = (200, None)


async def _image(request: web.Request) -> web.Response:
    return web.Response(body=_png((64, 64)), content_type="image/png")


class ScriptedGateway(CompletedHost):
    """A completed-task host whose reads answer ``script`` in turn, then its last answer."""

    def __init__(self, script: list[Answer]) -> None:
        super().__init__(_image)
        self.script = script

    async def task(self, request: web.Request) -> web.Response:
        status, body = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        task_id = request.match_info["task_id"]
        answer = self.completed(task_id) if body is None else {"id": task_id} | body
        return web.json_response(answer, status=status)


async def _session(script: list[Answer]) -> AsyncIterator[Session]:
    gateway = ScriptedGateway(script)
    async with serving(gateway.app) as base:
        gateway.base = base
        async with loopback_session(base) as zs:
            yield zs


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage() for record in caplog.records if record.name.startswith("zimage_async")
    ]


def _assert_one_line_each(lines: list[str]) -> None:
    assert lines
    for line in lines:
        assert "\n" not in line and "\r" not in line, line
    assert not any(line.startswith("CRITICAL") for line in lines)


async def test_a_status_with_a_newline_is_logged_escaped_at_every_poll(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The debug line of each poll shows the status on one line, its newline escaped."""
    caplog.set_level(logging.DEBUG, logger="zimage_async")
    async for zs in _session([(200, {"status": FORGED, "progress": 5}), COMPLETED]):
        await (await zs.submit("a cat"))
    lines = _lines(caplog)
    _assert_one_line_each(lines)
    assert any("queued\\nCRITICAL zimage_async: forged line" in line for line in lines)


async def test_a_lagging_read_with_a_newline_is_logged_escaped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A read that contradicts the ended task is told at info level, on one line."""
    caplog.set_level(logging.INFO, logger="zimage_async")
    async for zs in _session([COMPLETED, (200, {"status": FORGED, "progress": 5})]):
        handle = await zs.submit("a cat")
        await handle.wait()
        await handle.refresh()
    lines = [line for line in _lines(caplog) if "lagging replica" in line]
    _assert_one_line_each(lines)


async def test_a_retried_error_message_with_a_newline_is_logged_escaped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The info line of a retried read shows the gateway's message on one line."""
    caplog.set_level(logging.INFO, logger="zimage_async")
    envelope = {"error": {"type": "server_error", "message": "busy\nCRITICAL forged"}}
    async for zs in _session([(500, envelope), COMPLETED]):
        await (await zs.submit("a cat"))
    lines = [line for line in _lines(caplog) if line.startswith("retrying")]
    _assert_one_line_each(lines)
    assert any("busy\\nCRITICAL forged" in line for line in lines)


async def test_a_huge_unknown_status_is_logged_cut(caplog: pytest.LogCaptureFixture) -> None:
    """A status of 20,000 characters is not written whole into the warning."""
    caplog.set_level(logging.DEBUG, logger="zimage_async")
    huge = "x" * 20_000
    async for zs in _session([(200, {"status": huge, "progress": 5}), COMPLETED]):
        await (await zs.submit("a cat"))
    lines = _lines(caplog)
    assert any("unknown status" in line for line in lines)
    assert max(len(line) for line in lines) < 1_000
