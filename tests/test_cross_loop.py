"""A session and its handles belong to the event loop that opened the session.

Used from another thread's event loop, every call refuses with a RuntimeError that names
the problem, before it touches anything of the owning loop: a handle's wait (which took
its lock first, then timed out, and broke the lock for the owning loop), and ``close()``
(which returned silently, the owning loop's sockets left as they were).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from zimage_async import PollSchedule, Session
from zimage_async.emulator import Emulator

QUICK = PollSchedule(wait_min=0.05, wait_max=0.05, jitter=0.0, timeout=30.0)
#: Bounds the other thread: a refusal comes at once, a wait across loops hangs.
BOUND = 10.0


async def _from_another_loop(call: Callable[[], Awaitable[Any]]) -> BaseException | None:
    """Run *call* in a new event loop in another thread; return what it raised."""
    failures: list[BaseException] = []

    def elsewhere() -> None:
        async def bounded() -> None:
            await asyncio.wait_for(call(), BOUND)

        try:
            asyncio.run(bounded())
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=elsewhere)
    thread.start()
    await asyncio.to_thread(thread.join)
    return failures[0] if failures else None


@pytest.mark.parametrize("how", ["result", "wait", "save", "updates"])
async def test_a_handle_waited_on_from_another_loop_is_refused_and_its_own_wait_ends(
    how: str, tmp_path: Any
) -> None:
    """The other loop gets the RuntimeError; the owning loop's wait still ends normally."""
    async with (
        Emulator(task_duration=1.0) as emu,
        Session(api_key=emu.api_key, base_url=emu.base_url, poll=QUICK) as zs,
    ):
        handle = await zs.submit("a cat")
        own = asyncio.ensure_future(handle.result())
        await asyncio.sleep(0.1)  # the owning loop's wait holds the handle's lock

        async def other() -> None:
            if how == "updates":
                async for _ in handle.updates():
                    pass
            elif how == "save":
                await handle.save(tmp_path)
            else:
                await getattr(handle, how)()

        failure = await _from_another_loop(other)
        assert isinstance(failure, RuntimeError), repr(failure)
        assert "another event loop" in str(failure)
        result = await asyncio.wait_for(own, BOUND)
        assert result.images
        assert (await asyncio.wait_for(handle.wait(), BOUND)).is_terminal


async def test_close_from_another_loop_is_refused_and_the_session_stays_usable() -> None:
    """close() from another loop raises and changes nothing; the session still works."""
    async with (
        Emulator(task_duration=0.1) as emu,
        Session(api_key=emu.api_key, base_url=emu.base_url, poll=QUICK) as zs,
    ):
        failure = await _from_another_loop(zs.close)
        assert isinstance(failure, RuntimeError), repr(failure)
        assert "another event loop" in str(failure)
        result = await asyncio.wait_for(zs.generate("a dog"), BOUND)
        assert result.images


def test_a_session_whose_loop_has_ended_can_still_be_closed() -> None:
    """Opened in one ``asyncio.run()``, closed from the next: closed, its pools released."""

    async def opened() -> tuple[Session, Emulator]:
        emu = Emulator(task_duration=0.1)
        await emu.start()
        zs = Session(api_key=emu.api_key, base_url=emu.base_url, poll=QUICK)
        await zs.open()
        await zs.generate("a cat")
        await emu.close()
        return zs, emu

    zs, _ = asyncio.run(opened())
    asyncio.run(asyncio.wait_for(zs.close(), BOUND))
    assert zs.state.name == "CLOSED"
