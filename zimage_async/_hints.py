"""Callback hints: read a task id out of an untrusted callback body, and wake its waiters.

The provider's callbacks are not signed, so a callback body is never believed: the only
thing taken from it is *which* task may have changed. :func:`read_hint` extracts that id
(pure: bytes in, id or ``None`` out); a :class:`HintBoard` passes it to the handles
waiting on that id, which then fetch the task from the API themselves. Nothing here
touches the network.

A hint for an id nobody waits on yet is kept for a short while (``hint_ttl`` seconds),
because a fast task's callback can arrive before the create call's answer does. It is kept
in a fixed-size table of time stamps (a Bloom filter whose slots hold the last time they
were set), so a flood of forged callbacks for made-up ids cannot push a genuine early hint
out; at worst it makes a few ids look hinted that were not, which costs one early look.

One board may serve handles on several event loops (a receiver in a web server's loop,
sessions in other threads): a watch remembers the loop it was opened on, and a hint
posted from another thread reaches it through that loop (``call_soon_threadsafe``),
since an asyncio future may only be resolved on its own loop.
"""

from __future__ import annotations

import array
import asyncio
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import Protocol

from ._exceptions import InvalidRequestError
from ._validation import validate_task_id

__all__ = ["HintBoard", "HintSource", "HintWatch", "read_hint", "wake"]


def read_hint(body: bytes) -> str | None:
    r"""Return the task id a callback body names, or ``None`` if it names none.

    The body must be a JSON object whose ``"id"`` is a valid task id; every other field
    (status, results, error) is ignored, since anybody can send them.

    >>> read_hint(b'{"id": "task-unified-1-abc", "status": "completed"}')
    'task-unified-1-abc'
    >>> read_hint(b'{"id": "../../admin"}') is None
    True
    >>> read_hint(b"\xff not json") is None
    True
    """
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # bad UTF-8 or JSON, or absurd nesting
        return None
    if not isinstance(payload, dict):
        return None
    try:
        return validate_task_id(payload.get("id"))
    except InvalidRequestError:
        return None


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """Return the event loop running in this thread, or None."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class HintWatch:
    """One waiter's view of the hints for one task id (made by :meth:`HintBoard.watch`).

    Its state belongs to the loop it was opened on: a hint from another thread is handed
    to that loop, never applied from the poster's thread.
    """

    __slots__ = ("_hinted", "_loop", "_waiter", "task_id")

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self._hinted = False
        self._waiter: asyncio.Future[None] | None = None
        #: The loop its waits run on (None if opened outside one: used where it is).
        self._loop = _running_loop()

    def _notify(self) -> None:
        """Take a hint: at once on the watch's own loop, else through that loop."""
        loop = self._loop
        if loop is None or loop is _running_loop():
            self._hint()
            return
        with suppress(RuntimeError):  # a closed loop: nothing waits on it now
            loop.call_soon_threadsafe(self._hint)

    def _hint(self) -> None:
        """Mark a hint and wake the wait under way (on the watch's loop)."""
        self._hinted = True
        wake(self._waiter)

    async def wait(self, seconds: float, alarms: set[asyncio.Future[None]] | None = None) -> bool:
        """Wait up to *seconds* for a hint; return whether one came (and consume it).

        A cancellation of the waiter always propagates, also one in the same loop turn
        as the hint (``asyncio.wait_for`` would return the hint then, on Python 3.10
        and 3.11, and the cancellation would be lost). The wait is kept in *alarms*
        while it runs, so that their owner can end it early (a session closing).
        """
        if not self._hinted:
            loop = asyncio.get_running_loop()
            self._waiter = waiter = loop.create_future()
            timer = loop.call_later(seconds, wake, waiter)
            if alarms is not None:
                alarms.add(waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
                if alarms is not None:
                    alarms.discard(waiter)
            if not self._hinted:
                return False
        self._hinted = False
        return True


def wake(waiter: asyncio.Future[None] | None) -> None:
    """Resolve *waiter* unless it is done (or None)."""
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class HintSource(Protocol):
    """Where a handle learns of callbacks: a :class:`HintBoard`, or a receiver's face of it."""

    def watch(self, task_id: str) -> AbstractContextManager[HintWatch]:
        """Watch *task_id* for hints while a ``with`` block runs."""
        ...


class HintBoard:
    """Routes callback hints to the handles waiting on their task ids.

    :meth:`post` records a hint and wakes every :class:`HintWatch` on that id; a hint
    nobody watches is remembered for *hint_ttl* seconds, and a watch opened in that time
    starts out woken. Remembering takes a fixed table sized for *max_hints* ids at a time
    (about 128 bytes an id): beyond that, ids start to look hinted that were not (each
    then costs one early look), but no hint is ever forgotten early. Watches may be
    opened and hints posted from several threads (each with its own loop).
    """

    #: Slots set per id.
    _HASHES = 4
    #: Slots per id the table is sized for.
    _SLOTS_PER_HINT = 16

    def __init__(
        self,
        *,
        hint_ttl: float = 60.0,
        max_hints: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not hint_ttl > 0:
            raise ValueError(f"hint_ttl must be a number of seconds above 0, got {hint_ttl!r}")
        if max_hints < 1:
            raise ValueError(f"max_hints must be 1 or more, got {max_hints!r}")
        self._ttl = hint_ttl
        self._clock = clock
        self._stamps = array.array("d", [-float("inf")]) * (max_hints * self._SLOTS_PER_HINT)
        self._watches: dict[str, set[HintWatch]] = {}
        self._lock = threading.Lock()  # the watches, for threads with loops of their own

    def _slots(self, task_id: str) -> list[int]:
        digest = hashlib.blake2b(task_id.encode(), digest_size=8 * self._HASHES).digest()
        size = len(self._stamps)
        return [
            int.from_bytes(digest[8 * n : 8 * n + 8], "little") % size for n in range(self._HASHES)
        ]

    def post(self, task_id: str) -> bool:
        """Record a hint that *task_id* changed; return whether a handle was waiting on it."""
        now = self._clock()
        for slot in self._slots(task_id):
            self._stamps[slot] = now
        with self._lock:
            watches = tuple(self._watches.get(task_id, ()))
        for watch in watches:
            watch._notify()
        return bool(watches)

    def recent(self, task_id: str) -> bool:
        """Whether a hint for *task_id* arrived within the last ``hint_ttl`` seconds.

        Never wrong about a hint that did arrive; may say yes for one that did not, once
        far more than ``max_hints`` ids were posted within ``hint_ttl``.
        """
        oldest = min(self._stamps[slot] for slot in self._slots(task_id))
        return self._clock() - oldest < self._ttl

    @contextmanager
    def watch(self, task_id: str) -> Iterator[HintWatch]:
        """Watch *task_id* for the duration of a ``with`` block.

        The watch starts out woken if a hint for the id is still kept. It is listed
        before the kept hints are looked at, so that a hint posted meanwhile from another
        thread is seen one way or the other.
        """
        watch = HintWatch(task_id)
        with self._lock:
            self._watches.setdefault(task_id, set()).add(watch)
        try:
            if self.recent(task_id):
                watch._notify()
            yield watch
        finally:
            with self._lock:
                watches = self._watches[task_id]
                watches.discard(watch)
                if not watches:
                    del self._watches[task_id]

    @property
    def watched(self) -> int:
        """The number of task ids with a handle waiting on them now."""
        return len(self._watches)
