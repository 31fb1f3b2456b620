"""Blocking work of the command line (reading a pipe, drawing a sheet) off its event loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

__all__ = ["off_the_loop"]

T = TypeVar("T")


async def off_the_loop(
    function: Callable[[], T], *, stop: threading.Event | None = None, grace: float = 2.0
) -> T:
    """Run *function* in a thread of its own and return its result; Ctrl-C abandons it.

    Run on the event loop, a read of a prompt file that is a slow pipe, or the drawing
    of a large contact sheet, held the loop, and with it the Ctrl-C and SIGTERM
    handlers, until it ended. Here the loop stays free: a signal cancels the wait at
    once. The thread is a daemon, not one of the loop's executor, which ``asyncio.run``
    would wait for at exit: an abandoned read ends with the process. A *function* that
    watches *stop* is told to stop when the wait is cancelled, and given *grace*
    seconds to clean up (a file half written) before the wait gives up on it.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():  # abandoned: the caller was cancelled
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result = function()
        except BaseException as exc:
            outcome: tuple[T | None, BaseException | None] = (None, exc)
        else:
            outcome = (result, None)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=run, name="zimage-cli-blocking", daemon=True).start()
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        if stop is not None:
            stop.set()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(future, grace)
        future.cancel()  # abandoned: what the thread ends with later is dropped, unlogged
        raise
