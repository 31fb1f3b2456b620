"""A create answered 2xx whose body is cut short or too large still reports the task id read.

The task exists and is billed once the gateway answers 2xx. When the connection drops
mid-body (chunked, or fewer bytes than ``Content-Length`` said), or the answer is over
the SDK's cap on API answers, the outcome is uncertain, but the id already received is
the task's: it must be in the error (and so in the journal), not dropped.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable

import pytest

from zimage_async import APIConnectionError, RetryPolicy, SubmissionUncertainError
from zimage_async._api import MAX_API_BODY

from ._reports import raw_server
from .conftest import loopback_session

TASK_ID = "task-unified-1757165031-uyujaw3d"
HEAD = (
    f'{{"created":1757165031,"id":"{TASK_ID}","model":"z-image-turbo",'
    '"object":"image.generation.task","progress":0,"status":"pen'
).encode()
ONE_TRY = RetryPolicy(max_attempts=1)

Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _answering(head: bytes, body: bytes, *, pause: bool) -> Answer:
    """Answer every request with *head* and *body*, then drop the connection."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length: *(\d+)", request_head)
            await reader.readexactly(int(length[1]) if length else 0)  # read all: FIN, no RST
            writer.write(head)
            if pause:  # the body in a packet of its own, the close in another
                await writer.drain()
                await asyncio.sleep(0.05)
            writer.write(body)
            if pause:
                await writer.drain()
                await asyncio.sleep(0.05)
        finally:
            writer.close()

    return answer


def _cut_chunked(pause: bool) -> Answer:
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    return _answering(head, b"%x\r\n%s\r\n" % (len(HEAD), HEAD), pause=pause)


def _cut_length(pause: bool) -> Answer:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (
        len(HEAD) + 200
    )
    return _answering(head, HEAD, pause=pause)


def _oversized(pause: bool) -> Answer:
    task = {
        "created": 1757165031,
        "id": TASK_ID,
        "status": "pending",
        "progress": 0,
        "prompt_echo": "x" * (MAX_API_BODY + 10),
    }
    body = json.dumps(task).encode()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (
        len(body)
    )
    return _answering(head, body, pause=pause)


@pytest.mark.parametrize("pause", [True, False], ids=["body-then-close", "body-and-close"])
@pytest.mark.parametrize("answer", [_cut_chunked, _cut_length, _oversized])
async def test_a_create_answer_cut_short_or_too_large_keeps_the_task_id(
    answer: Callable[[bool], Answer], pause: bool
) -> None:
    """The uncertain create names the task id the body held before it ended."""
    async with raw_server(answer(pause)) as base, loopback_session(base, retry=ONE_TRY) as zs:
        with pytest.raises(SubmissionUncertainError) as info:
            await zs.submit("a cat")
    assert info.value.task_id == TASK_ID
    assert info.value.sent == 1


async def test_a_task_read_cut_short_is_still_a_failed_read() -> None:
    """Only a create keeps a partial answer: a read cut short fails (and is retried)."""
    async with (
        raw_server(_cut_length(True)) as base,
        loopback_session(base, retry=ONE_TRY) as zs,
    ):
        with pytest.raises(APIConnectionError, match="cut short"):
            await zs.get_task(TASK_ID)


async def test_a_create_answer_that_stalls_after_the_id_keeps_it() -> None:
    """The body stops coming (the read timeout ends it): the id already read is kept."""
    release = asyncio.Event()

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length: *(\d+)", request_head)
            await reader.readexactly(int(length[1]) if length else 0)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(HEAD) + 200, HEAD)
            )
            await writer.drain()
            await asyncio.wait_for(release.wait(), 10)  # stalls: the client gives up first
        except TimeoutError:
            pass
        finally:
            writer.close()

    async with (
        raw_server(stall) as base,
        loopback_session(base, retry=ONE_TRY, timeout=0.3) as zs,
    ):
        with pytest.raises(SubmissionUncertainError) as info:
            await zs.submit("a cat")
        release.set()
    assert info.value.task_id == TASK_ID
