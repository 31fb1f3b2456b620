"""Closing a Session ends the API exchanges under way at once, over any connection pool.

An answer whose body was still coming when its session closed was never woken (aiohttp
lets go of the body stream before the connection is lost), and the close dropped the
timer of its total limit: the call hung. Over a borrowed ``aiohttp.ClientSession``,
which the close leaves open, an answer still awaited went on until it came. Now a read
ends with the closed-Session error and a create with :class:`SubmissionUncertainError`
(it was sent: it may have made a task), within a moment of the close; a borrowed
session stays open, and usable. A keeper of deadlines that closes keeps bounding the
blocks still running.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from zimage_async import RetryPolicy, Session, SessionClosedError, SubmissionUncertainError
from zimage_async._deadlines import Deadlines
from zimage_async.emulator import Emulator, FaultPlan, FaultRule

from ._reports import raw_server
from .conftest import KEY, until

ONE_TRY = RetryPolicy(max_attempts=1)
TASK_ID = "task-unified-1-abcdefgh"
#: How soon after close() each call must have ended (the bug: never, or at a limit).
PROMPTLY = 1.0


class SlowGateway:
    """Answers every API request slowly: its headers held back, or its body trickling.

    ``/ping`` is answered at once. Either way the answer goes on until the client goes
    away (30 s at most), so only the close can end the exchange in time.
    """

    def __init__(self, phase: str) -> None:
        self.phase = phase
        self.asked = 0
        self.sent = 0
        self.serving = 0  # connections still open on this side

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection: ``/ping`` at once, any other request slowly, then close."""
        self.serving += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                if b" /ping " not in head.split(b"\r\n", 1)[0]:
                    self.asked += 1
                    await self._slowly(reader, writer)
                    return
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\npong")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away
        finally:
            writer.close()
            self.serving -= 1

    async def _slowly(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Hold the answer back, or trickle its body, until the client closes the connection."""
        if self.phase == "body":
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100000\r\n\r\n{"
            )
        for _ in range(600):  # 30 s at most, until the client goes away
            if self.phase == "body":
                writer.write(b" ")
                self.sent += 1
                await writer.drain()
            try:
                if not await asyncio.wait_for(reader.read(1), 0.05):
                    return  # the client closed the connection
            except asyncio.TimeoutError:
                continue


@pytest.mark.parametrize("pool", ["owned", "borrowed"])
@pytest.mark.parametrize("phase", ["headers", "body"])
@pytest.mark.parametrize("call", ["read", "create"])
async def test_an_exchange_under_way_ends_at_once_when_its_session_closes(
    call: str, phase: str, pool: str
) -> None:
    """A read: the closed-Session error; a create: uncertain. A borrowed session stays usable."""
    gateway = SlowGateway(phase)
    loop = asyncio.get_running_loop()
    async with raw_server(gateway) as base, aiohttp.ClientSession() as borrowed:
        zs = Session(
            api_key=KEY,
            base_url=f"{base}/apiv1",
            retry=ONE_TRY,
            timeout=20.0,  # the stall limit: far past the test
            http_session=borrowed if pool == "borrowed" else None,
        )
        await zs.open()
        running = asyncio.ensure_future(
            zs.get_task(TASK_ID) if call == "read" else zs.submit("a slow cat")
        )
        try:
            if phase == "body":
                await until(lambda: gateway.sent >= 3, deadline=5.0)  # the body trickles
            else:
                await until(lambda: gateway.asked >= 1, deadline=5.0)
                await asyncio.sleep(0.1)  # the answer is awaited
            assert not running.done()
            await zs.close()
            closed_at = loop.time()
            done, _ = await asyncio.wait({running}, timeout=3.0)
            assert done, f"the {call} still running 3 s after close()"
            took = loop.time() - closed_at
        finally:  # a failed test leaves nothing running either
            await zs.close()
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
        if call == "read":
            with pytest.raises(RuntimeError, match="the Session is closed"):
                running.result()
        else:
            with pytest.raises(SubmissionUncertainError):
                running.result()
        assert took < PROMPTLY, f"the {call} ended {took:.2f} s after close()"
        assert not borrowed.closed
        async with borrowed.get(f"{base}/ping") as answer:  # still usable
            assert await answer.read() == b"pong"
        await borrowed.close()
        await until(lambda: gateway.serving == 0, deadline=5.0)  # the connections were closed


async def test_a_closed_keeper_still_cuts_the_blocks_running_at_their_deadline() -> None:
    """close() drops the timer only of a keeper with no block left: a live one is still cut."""
    keeper = Deadlines()
    said: list[bool] = []

    async def block() -> None:
        """Sleep past the block's 0.1 s deadline, noting whether the keeper cut it."""
        task = keeper.enter(0.1)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError as exc:
            said.append(keeper.leave(task, exc))
        finally:
            keeper.leave(task)

    running = asyncio.ensure_future(block())
    await asyncio.sleep(0)  # the block is entered
    keeper.close()
    done, _ = await asyncio.wait({running}, timeout=3.0)
    if not done:  # pragma: no cover - the defect: clean up, then fail
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert done and said == [True]
    assert keeper._timer is None  # nothing left to time
    keeper.close()


async def test_a_keeper_closed_with_no_block_keeps_no_timer() -> None:
    """With every block left, close() cancels the timer at once (a loop may close next)."""
    keeper = Deadlines()

    async def block() -> None:
        """Enter a block and leave it at once."""
        task = keeper.enter(60.0)
        keeper.leave(task)

    await block()
    assert keeper._timer is not None  # armed for the block that left
    keeper.close()
    assert keeper._timer is None


async def test_a_create_waiting_to_be_sent_again_ends_uncertain_when_its_session_closes() -> None:
    """A 503 after the task was made, then the close during the wait before the resend.

    The first send may have made (and billed) a task: the create ends
    :class:`SubmissionUncertainError` with its key, not the closed-Session error, which
    would say nothing was made.
    """
    plan = FaultPlan.script(
        "create", [FaultRule(kind="http_503_after_create", retry_after_seconds=2)]
    )
    async with Emulator(task_duration=0.1, faults=plan) as emu:
        zs = Session(api_key=emu.api_key, base_url=emu.base_url)
        await zs.open()
        submit = asyncio.create_task(zs.submit("a cat"))
        await until(lambda: emu.request_counts.get("create", 0) == 1, deadline=5.0)
        await asyncio.sleep(0.2)  # the 503 is in: the create waits 2 s to be sent again
        await zs.close()
        with pytest.raises(SubmissionUncertainError) as caught:
            await asyncio.wait_for(submit, PROMPTLY)
        billed = len(emu.ledger)
    assert billed == 1
    assert caught.value.idempotency_key is not None
    assert caught.value.request is not None
    assert emu.request_counts.get("create", 0) == 1  # not sent again


async def test_a_generation_whose_session_closes_while_it_polls_names_its_task() -> None:
    """generate() gives no handle: the closed error must name the billed task to collect."""
    async with Emulator(task_duration=5.0) as emu:
        zs = Session(api_key=emu.api_key, base_url=emu.base_url)
        await zs.open()
        generating = asyncio.create_task(zs.generate("a cat"))
        await until(lambda: len(emu.ledger) == 1, deadline=5.0)
        await asyncio.sleep(0.2)  # created: now it polls
        await zs.close()
        with pytest.raises(SessionClosedError) as caught:
            await asyncio.wait_for(generating, PROMPTLY)
        task_id = emu.ledger[0].task_id
    assert isinstance(caught.value, RuntimeError)
    assert caught.value.task_id == task_id
    assert f"session.task({task_id!r})" in str(caught.value)
