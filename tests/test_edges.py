"""Edge cases of the wire: split replies, pools, proxies, garbled creates, secrets."""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import AsyncIterator

import pytest

from zimage_async import (
    MalformedResponseError,
    RetryPolicy,
    Session,
    SubmissionUncertainError,
    TaskStatus,
    WaitTimeoutError,
)
from zimage_async.emulator import Emulator, FaultPlan, FaultRule

from .conftest import FAST_POLL, FAST_RETRY, KEY, OddHost


async def test_reply_arriving_in_pieces_is_read_whole(odd_session: Session) -> None:
    """A create reply written in two chunks is read in full and parsed."""
    handle = await odd_session.submit("in-pieces")
    assert handle.id == "task-unified-1-ok"


async def test_bare_503_from_a_proxy_is_uncertain(odd_session: Session, odd_host: OddHost) -> None:
    """A 503 without the API's envelope may follow a made task: not retried."""
    with pytest.raises(SubmissionUncertainError):
        await odd_session.submit("bare-503")
    assert odd_host.creates == 1


async def test_image_host_429_and_503_are_retried(odd_session: Session, odd_host: OddHost) -> None:
    """An image host answering 429 then 503 is retried until the image arrives."""
    result = await odd_session.generate("busy")
    assert result.image.width == 400
    assert len(odd_host.image_headers) == 3


async def test_garbled_create_names_the_task_it_made(zs: Session, emulator: Emulator) -> None:
    """A create answered with cut JSON reports the id it can read, and resuming works."""
    emulator.faults = FaultPlan.script("create", ["malformed_json"])
    with pytest.raises(SubmissionUncertainError) as info:
        await zs.submit("garbled")
    assert isinstance(info.value.cause, MalformedResponseError)
    (billed,) = emulator.ledger
    assert info.value.task_id == billed.task_id
    result = await zs.task(billed.task_id).result(timeout=10.0)
    assert result.task.status is TaskStatus.COMPLETED
    assert len(emulator.ledger) == 1


async def test_queueing_for_a_connection_is_not_a_timeout(emulator: Emulator) -> None:
    """A submit waiting for a pooled connection is not cut off as an ambiguous timeout."""
    emulator.faults = FaultPlan.script("create", [FaultRule(kind="slow", delay_seconds=0.6)])
    async with Session(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        max_connections=1,
        timeout=0.3,
        retry=FAST_RETRY,
        poll=FAST_POLL,
    ) as session:
        outcomes = await asyncio.gather(
            session.submit("slow"), session.submit("queued"), return_exceptions=True
        )
    uncertain = [o for o in outcomes if isinstance(o, SubmissionUncertainError)]
    handles = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(uncertain) == 1  # the slow one: sent, then no answer in time
    assert len(handles) == 1  # the queued one went out once the connection was free


async def test_wait_deadline_holds_while_another_waiter_polls(zs: Session) -> None:
    """wait(timeout=...) raises on time even when another coroutine owns the poll loop."""
    handle = await zs.submit("long [[duration:30]]")
    patient = asyncio.ensure_future(handle.wait(timeout=None))
    await asyncio.sleep(0)  # let the patient waiter take the poll loop first
    with pytest.raises(WaitTimeoutError):
        await handle.wait(timeout=0.2)
    patient.cancel()
    with pytest.raises(asyncio.CancelledError):
        await patient


async def test_concurrent_results_download_once(zs: Session, emulator: Emulator) -> None:
    """Five coroutines awaiting one handle share a single image download."""
    handle = await zs.submit("popular")
    results = await asyncio.gather(*(handle.result() for _ in range(5)))
    assert all(r is results[0] for r in results)
    assert emulator.request_counts["image"] == 1


async def test_retry_is_logged_with_reason_and_delay(
    zs: Session, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Each retry logs what failed and how long it waits, at INFO."""
    emulator.faults = FaultPlan.script("task", [FaultRule(kind="http_503", retry_after_seconds=0)])
    caplog.set_level(logging.INFO, logger="zimage_async")
    await zs.generate("log my retries")
    lines = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(lines) == 1
    assert "answered 503" in lines[0]
    assert "attempt 1 failed" in lines[0]
    assert " in 0." in lines[0]


async def test_request_debug_lines_name_method_path_status_attempt(
    zs: Session, caplog: pytest.LogCaptureFixture
) -> None:
    """A DEBUG line per request gives method, path, status, attempt and milliseconds."""
    caplog.set_level(logging.DEBUG, logger="zimage_async")
    await zs.submit("log my request")
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("POST")]
    assert line.startswith("POST /apiv1/v1/images/generations -> 200 (attempt 1, ")
    assert line.endswith(" ms)")


@pytest.fixture
async def garbage_server() -> AsyncIterator[str]:
    """A loopback server that answers every request with broken HTTP."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n{}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/apiv1"
    finally:
        server.close()
        await server.wait_closed()


async def test_key_absent_from_cause_and_traceback_locals(garbage_server: str) -> None:
    """A transport failure's chain and locals-capturing traceback never show the key."""
    async with Session(
        api_key=KEY, base_url=garbage_server, retry=RetryPolicy(max_attempts=1)
    ) as session:
        with pytest.raises(MalformedResponseError) as info:
            await session.get_task("task-unified-1-abcdefgh")
    error = info.value
    rendered = "".join(
        traceback.TracebackException.from_exception(error, capture_locals=True).format()
    )
    assert "RedactedHeaders" in rendered  # the locals were captured, redacted
    assert KEY not in rendered
    assert KEY not in repr(error.__cause__) and KEY not in repr(error.__context__)
