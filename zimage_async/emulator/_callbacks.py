"""Callback delivery: POST the finished task to its ``callback_url``, with retries.

When a task with a ``callback_url`` reaches its terminal state (on the emulator's clock),
the emulator POSTs the task JSON (the same body as ``GET /v1/tasks/{id}``) to the URL with
a ``callback_timeout`` (default 10 real seconds). Any 2xx counts as delivered; otherwise
(a redirect included: it is not followed, the task never goes to a URL it did not check)
it retries after each of ``callback_retry_delays`` (default 1, 2 and 4 clock seconds, so
a ``SystemClock(speed=10)`` retries after 0.1, 0.2 and 0.4 real seconds and a
:class:`~zimage_async.emulator.ManualClock` retries when advanced). Every attempt is
recorded as a :class:`CallbackAttempt`. Deliveries still waiting are cancelled on close.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence

import aiohttp
import attrs

from ._clock import Clock, sleep_for

__all__ = ["CallbackAttempt", "CallbackDispatcher"]


@attrs.frozen(kw_only=True)
class CallbackAttempt:
    """One delivery attempt: the HTTP status, or the error if there was no reply."""

    task_id: str
    url: str
    attempt: int
    status: int | None
    error: str | None
    at: float

    @property
    def delivered(self) -> bool:
        """Whether the receiver answered 2xx."""
        return self.status is not None and 200 <= self.status < 300


class CallbackDispatcher:
    """Schedules and performs callback deliveries for one emulator."""

    def __init__(
        self,
        *,
        clock: Clock,
        retry_delays_seconds: Sequence[float],
        timeout_seconds: float,
        on_attempt: Callable[[CallbackAttempt], None],
    ) -> None:
        self._clock = clock
        self._retry_delays = tuple(retry_delays_seconds)
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._on_attempt = on_attempt
        self._session: aiohttp.ClientSession | None = None
        self._pending: set[asyncio.Task[None]] = set()

    def open(self) -> None:
        """Create the HTTP session (call inside the running event loop)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                headers={"User-Agent": "zimage-emulator-callbacks"},
            )

    def schedule(
        self, *, task_id: str, url: str, due_at: float, body: Callable[[], dict[str, object]]
    ) -> None:
        """Deliver ``body()`` to *url* once the clock reaches *due_at* (not after close)."""
        if self._session is None:
            return
        task = asyncio.get_running_loop().create_task(
            self._deliver(task_id=task_id, url=url, due_at=due_at, body=body)
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _attempt(self, task_id: str, url: str, number: int, payload: bytes) -> bool:
        assert self._session is not None
        status: int | None = None
        error: str | None = None
        try:
            async with self._session.post(
                url,
                data=payload,
                headers={"Content-Type": "application/json"},
                allow_redirects=False,
            ) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        attempt = CallbackAttempt(
            task_id=task_id,
            url=url,
            attempt=number,
            status=status,
            error=error,
            at=self._clock.now(),
        )
        self._on_attempt(attempt)
        return attempt.delivered

    async def _deliver(
        self, *, task_id: str, url: str, due_at: float, body: Callable[[], dict[str, object]]
    ) -> None:
        await self._clock.sleep_until(due_at)
        payload = json.dumps(body()).encode()
        delays = (None, *self._retry_delays)
        for number, delay in enumerate(delays, start=1):
            if delay is not None:
                await sleep_for(self._clock, delay)
            if await self._attempt(task_id, url, number, payload):
                return

    async def wait(self) -> None:
        """Wait until every delivery scheduled so far has finished (or was cancelled)."""
        for _ in range(1000):
            pending = [task for task in self._pending if not task.done()]
            if not pending:
                return
            await asyncio.wait(pending)

    @property
    def pending(self) -> int:
        """The number of deliveries not finished yet."""
        return len(self._pending)

    async def close(self) -> None:
        """Cancel waiting deliveries and close the HTTP session."""
        pending = list(self._pending)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
