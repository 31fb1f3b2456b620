"""One receiver serving sessions that run on other event loops, in other threads.

A receiver mounted in a web server's loop may wake handles whose session runs in another
thread's loop. Waking them must go through that loop (``call_soon_threadsafe``): a
future of another loop resolved from the receiver's thread is not thread-safe, and under
asyncio's debug mode it left the handle hanging forever, past its timeout. Everything
runs over real HTTP on 127.0.0.1; each thread is bounded in time.
"""

from __future__ import annotations

import asyncio
import threading
import time

import aiohttp

from zimage_async import CallbackReceiver, Session, TaskStatus
from zimage_async.emulator import Emulator

from .conftest import FAST_POLL, FAST_RETRY

TASK_ID = "task-unified-1700000000-crossloop"
#: The longest any thread of these tests may take.
BOUND = 8.0


async def _joined(thread: threading.Thread, deadline: float = BOUND) -> None:
    """Wait (without blocking this loop) until *thread* ends, at most *deadline* seconds."""
    for _ in range(int(deadline / 0.02)):
        if not thread.is_alive():
            return
        await asyncio.sleep(0.02)


async def _post(url: str, body: bytes) -> int:
    async with aiohttp.ClientSession() as client, client.post(url, data=body) as reply:
        await reply.read()
        return reply.status


async def test_a_watch_on_another_loop_is_woken_at_once() -> None:
    """A hint posted in the receiver's loop wakes a wait in another thread's debug loop."""
    receiver = CallbackReceiver()
    outcome: dict[str, object] = {}

    async def watcher() -> None:
        with receiver.watch(TASK_ID) as watch:
            began = time.monotonic()
            outcome["hinted"] = await watch.wait(BOUND / 2)
            outcome["took"] = time.monotonic() - began

    thread = threading.Thread(
        target=lambda: asyncio.run(watcher(), debug=True), daemon=True, name="watcher"
    )
    async with receiver.serve() as url:
        thread.start()
        for _ in range(200):  # until the other loop watches (at most 2 s)
            if receiver.watched:
                break
            await asyncio.sleep(0.01)
        assert receiver.watched == 1
        assert await _post(url, b'{"id": "%s"}' % TASK_ID.encode()) == 202
        await _joined(thread)
    assert not thread.is_alive(), "the wait on the other loop was never woken"
    assert outcome["hinted"] is True
    assert isinstance(outcome["took"], float) and outcome["took"] < 1.0
    assert (receiver.accepted, receiver.refused, receiver.watched) == (1, 0, 0)


async def test_a_session_on_another_loop_finishes_by_its_callback() -> None:
    """A session in another thread (asyncio debug on) finishes as its callback lands.

    Its polls are stretched a thousandfold, so only the callback can finish it in time.
    """
    receiver = CallbackReceiver()
    outcome: dict[str, object] = {}
    async with (
        Emulator(task_duration=0.2, seed=1, callback_mode="permissive") as emu,
        receiver.serve() as url,
    ):

        async def session_side() -> None:
            async with Session(
                api_key=emu.api_key,
                base_url=emu.base_url,
                poll=FAST_POLL,
                retry=FAST_RETRY,
                callbacks=receiver,
                callback_url=url,
                callback_poll_factor=1000.0,
            ) as zs:
                handle = await zs.submit("a fox on another loop")
                task = await asyncio.wait_for(handle.wait(timeout=BOUND / 2), BOUND / 2 + 1)
                outcome["status"] = task.status

        thread = threading.Thread(
            target=lambda: asyncio.run(session_side(), debug=True), daemon=True, name="session"
        )
        thread.start()
        await _joined(thread)
        assert not thread.is_alive(), "the handle on the other loop hangs"
        await emu.wait_for_callbacks()
        deliveries = [a.status for a in emu.callback_attempts]
    assert outcome["status"] is TaskStatus.COMPLETED
    assert deliveries == [202]
    assert receiver.accepted == 1


async def test_a_hint_for_a_wait_on_a_closed_loop_is_still_answered_202() -> None:
    """A loop that closed while one of its waits watched: the receiver is not disturbed."""
    receiver = CallbackReceiver()
    stepped: list[object] = []

    def abandon_a_wait() -> None:
        # A wait under way when its loop stops for good (the thread dies, say): the
        # coroutine is stepped by hand up to its first await, so that no Task is left.
        loop = asyncio.new_event_loop()
        watching = receiver.watch(TASK_ID)
        stepped.append(watching)  # kept: its end would stop the watch

        async def start() -> None:
            watch = watching.__enter__()
            waiting = watch.wait(60)
            stepped.append(waiting)
            waiter = waiting.send(None)  # now awaiting its waiter, on this loop
            waiter.add_done_callback(lambda _: None)  # as the Task awaiting it would

        loop.run_until_complete(start())
        loop.close()

    thread = threading.Thread(target=abandon_a_wait, daemon=True, name="abandoned")
    thread.start()
    await _joined(thread)
    assert receiver.watched == 1
    try:
        async with receiver.serve() as url:
            assert await _post(url, b'{"id": "%s"}' % TASK_ID.encode()) == 202
        assert (receiver.accepted, receiver.refused) == (1, 0)
    finally:
        stepped[1].close()  # type: ignore[attr-defined]
