"""Closing a Session ends the waits still napping in it at once, with the closed error.

A wait naps between looks (up to ``wait_max``, stretched by ``callback_poll_factor``
while a callback is expected). Before, a wait napping when its session closed slept on,
holding its task (and its watch on the callback receiver), and only failed at its next
look: many seconds later, or tens of seconds with callbacks.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from zimage_async import CallbackReceiver, PollSchedule, Session
from zimage_async.emulator import Emulator

#: Naps far longer than the test may take: a wait still napping after close would hang it.
LONG_NAPS = PollSchedule(wait_min=30.0, wait_max=30.0, jitter=0.0, timeout=600.0)
#: Bounds the end of the wait: met at once by a nap that close() wakes, never by a nap.
BOUND = 10.0


async def _napping_wait(zs: Session, emu: Emulator, how: str) -> asyncio.Task[Any]:
    handle = await zs.submit("a slow cat")

    async def drain() -> None:
        async for _ in handle.updates():
            pass

    waiter = asyncio.ensure_future(drain() if how == "updates" else getattr(handle, how)())
    await asyncio.sleep(0.2)  # it naps from the create's snapshot until its first look
    assert not waiter.done() and emu.request_counts.get("task", 0) == 0
    return waiter


@pytest.mark.parametrize("how", ["wait", "result", "updates"])
async def test_a_wait_napping_when_its_session_closes_ends_at_once(how: str) -> None:
    """The nap is cut short and the wait raises the closed-Session error."""
    async with Emulator(task_duration=120.0) as emu:
        zs = Session(api_key=emu.api_key, base_url=emu.base_url, poll=LONG_NAPS)
        async with zs:
            waiter = await _napping_wait(zs, emu, how)
        with pytest.raises(RuntimeError, match="closed"):
            await asyncio.wait_for(waiter, BOUND)


async def test_a_wait_expecting_a_callback_ends_when_its_session_closes() -> None:
    """With a callback receiver, the wait's watch on it ends with the wait."""
    receiver = CallbackReceiver()
    async with (
        Emulator(task_duration=120.0, callback_mode="permissive") as emu,
        receiver.serve() as url,
    ):
        zs = Session(
            api_key=emu.api_key,
            base_url=emu.base_url,
            poll=PollSchedule(wait_min=1.0, wait_max=3.0, jitter=0.0, timeout=600.0),
            callbacks=receiver,
            callback_url=url,
            callback_poll_factor=20.0,
        )
        async with zs:
            waiter = await _napping_wait(zs, emu, "wait")
            assert receiver.watched == 1
        with pytest.raises(RuntimeError, match="closed"):
            await asyncio.wait_for(waiter, BOUND)
        assert receiver.watched == 0


async def test_a_nap_begun_after_the_close_with_callbacks_ends_at_once() -> None:
    """Closing inside ``updates()``: the next nap (a hint wait) does not sleep, it fails."""
    receiver = CallbackReceiver()
    async with (
        Emulator(task_duration=120.0, callback_mode="permissive") as emu,
        receiver.serve() as url,
    ):
        zs = Session(
            api_key=emu.api_key,
            base_url=emu.base_url,
            poll=LONG_NAPS,
            callbacks=receiver,
            callback_url=url,
        )
        await zs.open()
        handle = await zs.submit("a slow cat")

        async def close_inside_the_loop() -> None:
            async for _ in handle.updates():
                await zs.close()  # the next snapshot starts a nap of a closed session

        with pytest.raises(RuntimeError, match="closed"):
            await asyncio.wait_for(close_inside_the_loop(), BOUND)
        assert receiver.watched == 0
