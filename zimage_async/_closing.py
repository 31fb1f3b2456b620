"""Who closes a :class:`~zimage_async.Session`: the one that opened it, once.

A Session is opened once and closed once, by its opener. An ``async with`` closes the
session at its end, so one entered again (a helper "making sure" the session it was given
is open) would close it under its caller: a second open, or ``async with`` on a session
already open, raises :data:`ALREADY_OPEN` instead (as httpx does), changing nothing.

One ``async with`` may take over an open: that of ``async with await zs.open() as zs:``,
where the ``async with`` follows the ``open()`` in the same task with no turn of the event
loop between. A session opened earlier (its opener then holds it, and closes it) is never
taken over. The pools themselves are closed by :func:`~zimage_async._pools.close_pools`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

__all__ = ["ALREADY_OPEN", "CLOSED", "NOT_OPEN", "OpenGuard", "Unshared"]

#: The error of a call on a Session not opened yet.
NOT_OPEN = (
    "the Session is not open yet; use `async with Session(...) as zs:` (or `await zs.open()`)"
)
#: The error of a call on a closed Session.
CLOSED = "the Session is closed; create a new Session to make requests"

#: The error of a second open, or of ``async with`` on a session already open.
ALREADY_OPEN = (
    "this zimage_async.Session is already open: a Session is opened once (by `async with`"
    " or `await zs.open()`) and closed once, by its opener; pass the open Session to the"
    " code that uses it, and use it there without `async with` (whose end would close it)"
)


class Unshared:
    """Refuses pickling and copying a Session: a copy would share its connections.

    Closing such a copy would close the pools of the original, which would still say it
    is open; a pickle could not carry them (nor the key) anyway.
    """

    __slots__ = ()

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "a Session cannot be pickled or copied (it owns its connections, opened and "
            "closed once, by its opener): pass the same Session along, or make another"
        )


class OpenGuard:
    """Refuses a Session's second open; lets one ``async with`` take over a fresh open."""

    __slots__ = ("_fresh", "_opening")

    def __init__(self) -> None:
        self._opening = False
        self._fresh: asyncio.Task[Any] | None = None  # the task of an open just finished

    @contextmanager
    def opening(self, *, is_open: bool) -> Iterator[None]:
        """Hold the guard while the session opens; raise RuntimeError if open or opening."""
        if is_open or self._opening:
            raise RuntimeError(ALREADY_OPEN)
        self._opening = True
        try:
            yield
        finally:
            self._opening = False

    def opened(self) -> None:
        """Mark the open just made as fresh, until the event loop next runs anything."""
        self._fresh = asyncio.current_task()
        asyncio.get_running_loop().call_soon(self._forget)

    def take(self) -> bool:
        """Whether an ``async with`` now takes over a fresh open of this task (one at most)."""
        fresh, self._fresh = self._fresh, None
        return fresh is not None and fresh is asyncio.current_task()

    def _forget(self) -> None:
        self._fresh = None
