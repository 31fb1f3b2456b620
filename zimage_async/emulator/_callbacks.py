"""Callback delivery: POST the finished task to its ``callback_url``, with retries.

When a task with a ``callback_url`` reaches its terminal state (on the emulator's clock),
the emulator POSTs the task JSON (the same body as ``GET /v1/tasks/{id}``) to the URL with
a ``callback_timeout`` (default 10 real seconds). Any 2xx counts as delivered; otherwise
(a redirect included: it is not followed, the task never goes to a URL it did not check)
it retries after each of ``callback_retry_delays`` (default 1, 2 and 4 clock seconds, so
a ``SystemClock(speed=10)`` retries after 0.1, 0.2 and 0.4 real seconds and a
:class:`~zimage_async.emulator.ManualClock` retries when advanced). Every attempt is
recorded as a :class:`CallbackAttempt`. Deliveries still waiting are cancelled on close.

The emulator sends callbacks to loopback hosts only: an address in 127.0.0.0/8, ``::1``,
or the name ``localhost``, judged from the URL's text (:func:`is_deliverable`), with no
lookup and no connection. It is a local test bed and never sends anything to another
machine, even though its default ``callback_mode="strict"`` accepts a public ``https``
``callback_url`` as the provider does. For such a URL one attempt is recorded when the
task ends, with ``status`` None and an error saying so, and it is not retried.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import aiohttp
import attrs

from ._clock import Clock, sleep_for
from ._redact import url_repr

__all__ = ["NOT_DELIVERED", "CallbackAttempt", "CallbackDispatcher", "is_deliverable"]

NOT_DELIVERED = (
    "not sent: the emulator delivers callbacks to loopback addresses only "
    "(127.0.0.0/8, ::1 or localhost), never to another machine"
)
"""The error of the one attempt recorded for a callback_url on any other host."""


def is_deliverable(url: str) -> bool:
    """Tell whether the emulator may POST to *url*, judging its host's text alone.

    Deliverable hosts are an address literal in 127.0.0.0/8 (also IPv4-mapped), ``::1`` and
    the name ``localhost``. Nothing is resolved: a loopback address spelled so only a
    resolver could tell (``0x7f.1``, ``2130706433``, ``localhost.``) is not deliverable,
    since the resolver asked might be another machine.

    >>> is_deliverable("http://127.0.0.1:8080/hook"), is_deliverable("https://example.com/")
    (True, False)
    """
    try:
        host = urlsplit(url).hostname  # lower case, without brackets
    except ValueError:
        return False
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


@attrs.frozen(kw_only=True)
class CallbackAttempt:
    """One delivery attempt: the HTTP status, or the error if there was no reply.

    A callback to a host that is not loopback is never sent: its one attempt has
    ``status`` None and an error saying the emulator delivers callbacks to loopback
    addresses only.
    """

    task_id: str
    #: The callback URL, whole; the repr leaves out its query string (often a token).
    url: str = attrs.field(repr=url_repr)
    attempt: int
    status: int | None
    error: str | None
    at: float

    @property
    def delivered(self) -> bool:
        """Whether the receiver answered 2xx."""
        return self.status is not None and 200 <= self.status < 300


class CallbackDispatcher:
    """Schedules and performs callback deliveries for one emulator, to loopback hosts only.

    A callback_url on any other host (see :func:`is_deliverable`) is never connected to:
    when its task ends, one attempt is recorded with the error :data:`NOT_DELIVERED`.
    """

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

    def _record(
        self, task_id: str, url: str, number: int, status: int | None, error: str | None
    ) -> bool:
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
        return self._record(task_id, url, number, status, error)

    async def _deliver(
        self, *, task_id: str, url: str, due_at: float, body: Callable[[], dict[str, object]]
    ) -> None:
        await self._clock.sleep_until(due_at)
        if not is_deliverable(url):  # before body(): an unsent callback draws no fault
            self._record(task_id, url, 1, None, NOT_DELIVERED)
            return
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
