"""Stopping the SDK's own asyncio tasks without losing the caller's cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

__all__ = ["outlast", "stop_in_order", "stop_task"]


async def stop_task(task: asyncio.Task[Any] | None) -> asyncio.CancelledError | None:
    """Cancel *task* and wait until it has ended, whatever it raised (None: nothing to do).

    Returns a cancellation of the caller's that came meanwhile (see :func:`outlast`).
    """
    if task is None:
        return None
    task.cancel()
    return await outlast(task)


async def outlast(task: asyncio.Task[Any]) -> asyncio.CancelledError | None:
    """Wait until *task* has ended, whatever it raised; a caller's cancel does not stop it.

    Returns a cancellation of the caller's that came meanwhile: the wait goes on (the
    task's own wind-down keeps what it must, such as a create's answer), and the caller
    raises it once its own cleanup is done, instead of losing it (which
    ``contextlib.suppress(BaseException)`` around ``await task`` did) or cutting the
    task short. What the task raised is retrieved here and left to its ``result()``.
    """
    ours = None
    while not task.done():
        try:
            await asyncio.wait((task,))
        except asyncio.CancelledError as exc:  # noqa: PERF203 - a cancellation, not a loop's cost
            ours = exc
    if not task.cancelled():
        task.exception()  # retrieved: what it raised was dealt with where it ran
    return ours


async def stop_in_order(first: Collection[asyncio.Future[Any]], then: asyncio.Future[Any]) -> None:
    """Cancel *first* and wait until they have ended; only then cancel *then*.

    *then* serves *first* while they wind down: a batch's lease renewal goes on while
    its items wait out a create's answer, so that no other worker takes them meanwhile.
    *then* is cancelled even if this wait is itself cut short.
    """
    for task in first:
        task.cancel()
    try:
        await asyncio.gather(*first, return_exceptions=True)
    finally:
        then.cancel()
        await asyncio.gather(then, return_exceptions=True)
