"""An open image download (:class:`ImageStream`) and the resolver that guards image hosts.

Part of the thin aiohttp layer (:mod:`zimage_async._transport`), which opens the streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from types import TracebackType

import aiohttp
import aiohttp.abc

from ._deadlines import Deadlines, bounded_by, within
from ._exceptions import APIConnectionError, ImageLinkRefusedError, ZImageError
from ._httperrors import WIRE, closed_error, translate
from ._imageresolver import names_a_proxy
from ._links import redact_url
from ._pools import InFlight
from ._quoting import log_text
from ._slots import Slots
from ._urlpolicy import LinkPolicy, next_hop

__all__ = ["ImageOpening", "ImageStream"]

logger = logging.getLogger("zimage_async")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: What a read of a body may raise: the wire's failures, and aiohttp's "Connection closed."
#: (a RuntimeError) once the pool closed under it.
_BROKEN = (*WIRE, RuntimeError)

#: How long an error page's start is waited for, as evidence of what the refusal means.
SAMPLE_SECONDS = 2.0


class ImageStream:
    """An open image download: status, headers and the body as a stream of chunks.

    Reads that must wait for the host are bounded by *bound*: the transport's
    :class:`~zimage_async._deadlines.Deadlines` and the download's deadline (loop time),
    and each by the stall limit (*limits*' first) on *keeper*, the same Deadlines: only
    the waits for bytes not yet arrived count as the host's stalls, never the consumer's
    time between reads. A read of bytes that have already arrived does not wait, and is
    not bounded. Once the transport closed (*inflight*), every read raises the
    closed-session error.
    """

    __slots__ = (
        "_bound",
        "_inflight",
        "_keeper",
        "_limits",
        "_name",
        "_response",
        "content_length",
        "headers",
        "status",
    )

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        *,
        name: Callable[[], str],
        inflight: InFlight,
        limits: tuple[float | None, float | None] = (None, None),
        bound: tuple[Deadlines, float] | None = None,
        keeper: Deadlines | None = None,
    ) -> None:
        self._response = response
        self._name = name  # names the link in messages
        self._inflight = inflight
        self._limits = limits
        self._bound = bound
        self._keeper = keeper
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers
        #: The body length the server announced, if it did.
        self.content_length = response.content_length

    async def read(self, limit: int) -> bytes:
        """Return the next bytes of the body, at most *limit*; ``b""`` at its end.

        What has arrived is returned at once, without waiting for *limit* bytes. A body
        shorter than its ``Content-Length`` raises :class:`APIConnectionError`; one that
        stalls or outlasts the download's total limit, :class:`APITimeoutError`; any read
        once the transport closed, the closed-session error (a ``RuntimeError``).
        """
        failure: Exception
        content = self._response.content
        try:
            chunk = content.read_nowait(limit)
            if chunk or content.at_eof():
                return chunk
            bound, stall, keeper = self._bound, self._limits[0], self._keeper
            if stall is not None and keeper is not None:  # the host's stall is timed here
                stalled_at = asyncio.get_running_loop().time() + stall
                if bound is None or stalled_at < bound[1]:
                    try:
                        return await bounded_by(keeper, stalled_at, content.read(limit))
                    except asyncio.TimeoutError:  # as aiohttp's own read timer says it
                        raise aiohttp.ServerTimeoutError("no data within the limit") from None
            if bound is None:
                return await content.read(limit)
            return await bounded_by(*bound, content.read(limit))
        except _BROKEN as exc:
            if self._inflight.closed:  # the close set its error, cut the wait, or both
                failure = closed_error(opened=True)
            elif isinstance(exc, RuntimeError):  # "Connection closed.": the pool closed
                failure = APIConnectionError(
                    "the connection was closed during the download",
                    request_sent=True,
                    method="GET",
                    path=self._name(),
                )
            else:
                failure = translate(exc, method="GET", path=self._name(), limits=self._limits)
        raise failure from None

    def extend(self, seconds: float) -> None:
        """Move the download's deadline *seconds* later: time its consumer held a chunk."""
        bound = self._bound
        if bound is not None:
            self._bound = (bound[0], bound[1] + seconds)

    async def iter_chunks(self, chunk_size: int) -> AsyncIterator[bytes]:
        """Yield the body in chunks of at most *chunk_size* bytes (see :meth:`read`)."""
        while chunk := await self.read(chunk_size):
            yield chunk

    async def sample(self, limit: int, seconds: float = SAMPLE_SECONDS) -> bytes:
        """Return the first *limit* bytes of the body, or fewer: what came in *seconds*.

        For reading an error page as evidence: a page that trickles is judged by what
        arrived in time (its first line says the most), one that fails by what came.
        """
        parts: list[bytes] = []

        async def gather() -> None:
            size = 0
            while size < limit and (chunk := await self.read(limit - size)):
                parts.append(chunk)
                size += len(chunk)

        with contextlib.suppress(ZImageError, asyncio.TimeoutError):
            await within(gather(), seconds)
        return b"".join(parts)


class ImageOpening:
    """``async with transport.stream(...)``: the GET of an image, open for streaming.

    Entering takes a download slot and follows the redirects hop by hop, each checked
    against *policy*, within *total* seconds; it returns the :class:`ImageStream`.
    Leaving releases the answer and the slot. Once the transport closed (*inflight*),
    entering raises the closed-session error. Made by :meth:`Transport.stream`, which
    explains the rest.
    """

    __slots__ = (
        "_bound",
        "_headers",
        "_http",
        "_inflight",
        "_keeper",
        "_label",
        "_limits",
        "_policy",
        "_proxy_ends",
        "_proxy_for",
        "_response",
        "_slot",
        "_started",
        "_url",
    )

    def __init__(
        self,
        http: aiohttp.ClientSession,
        slot: Slots,
        url: str,
        headers: dict[str, str],
        *,
        label: str | None,
        policy: LinkPolicy,
        proxy_for: Callable[[str], str | None],
        proxy_ends: frozenset[tuple[str, int]] = frozenset(),
        keeper: Deadlines,
        limits: tuple[float | None, float | None],
        inflight: InFlight,
    ) -> None:
        self._http, self._slot, self._url, self._headers = http, slot, url, headers
        self._label, self._policy, self._proxy_for = label, policy, proxy_for
        self._proxy_ends = proxy_ends
        self._keeper, self._limits, self._inflight = keeper, limits, inflight
        self._bound: tuple[Deadlines, float] | None = None
        self._response: aiohttp.ClientResponse | None = None
        self._started = 0.0

    async def __aenter__(self) -> ImageStream:
        waiter = self._slot.take()
        if waiter is not None:
            await self._slot.wait(waiter)
        self._started = time.perf_counter()
        total = self._limits[1]
        if total is not None:
            self._bound = (self._keeper, asyncio.get_running_loop().time() + total)
        failure: Exception
        try:
            if self._inflight.closed:  # closed while in line for a slot: nothing was sent
                raise closed_error(opened=True)
            if self._bound is None:
                response = await self._follow()
            else:  # bounded_by, inline: no coroutine of its own per download
                keeper, deadline = self._bound
                task = keeper.enter_at(deadline)
                try:
                    response = await self._follow()
                except asyncio.CancelledError as exc:
                    if not keeper.leave(task, exc):
                        raise
                    raise asyncio.TimeoutError from None
                finally:
                    keeper.leave(task)
        except _BROKEN as exc:
            self._release()
            if self._inflight.closed:  # the close cut the wait off, or the pool closed
                failure = closed_error(opened=True)
            elif isinstance(exc, RuntimeError):
                raise
            else:
                failure = translate(exc, method="GET", path=self._named(), limits=self._limits)
        except BaseException:
            self._release()
            raise
        else:
            self._inflight.opened(response)
            if self._limits[0] is not None:  # ImageStream.read times the body's stalls
                _no_read_timer(response)
            return ImageStream(
                response,
                name=self._named,
                inflight=self._inflight,
                limits=self._limits,
                bound=self._bound,
                keeper=self._keeper,
            )
        raise failure from None

    async def _follow(self) -> aiohttp.ClientResponse:
        # The proxy's URL (its password) is in no local: error reporters show the locals.
        url, policy = self._url, self._policy
        hop, seen = url, {url}
        for _ in range(policy.max_redirects + 1):
            refusal = policy.refusal(hop)
            proxied = refusal is None and self._proxy_for(hop) is not None  # a sound link
            if refusal is None and not proxied and self._proxy_ends:
                refusal = names_a_proxy(hop, self._proxy_ends)
            if refusal is not None:
                what = "the link" if hop == url else f"a redirect to {redact_url(hop)}"
                raise self._refused(f"{what} is refused: {refusal}")
            self._response = response = await self._http.get(
                hop,
                headers=self._headers,
                allow_redirects=False,
                raise_for_status=False,
                proxy=self._proxy_for(hop) if proxied else None,
            )
            location = response.headers.get("Location")
            if response.status not in _REDIRECTS or not location:
                return response
            response.release()
            try:
                hop = next_hop(hop, location)
            except ValueError:  # urljoin: "Invalid IPv6 URL"
                raise self._refused("a redirect to an unreadable location is refused") from None
            if hop in seen:
                raise self._refused(f"the redirects loop back to {redact_url(hop)}")
            seen.add(hop)
        raise self._refused(f"more than {policy.max_redirects} redirects")

    def _named(self) -> str:
        """Name the link for a message: the label given, else the link without its query."""
        if self._label is None:
            self._label = redact_url(self._url)
        return self._label

    def _refused(self, why: str) -> ImageLinkRefusedError:
        return ImageLinkRefusedError(why, url=self._named(), task_id=None, index=None)

    def _release(self) -> None:
        response = self._response
        if response is not None:
            self._inflight.released(response)
            response.release()
        self._slot.release()
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "GET %s -> %s (%.1f ms)",
                log_text(self._named()),  # a link is the gateway's text
                response.status if response is not None else "error",
                (time.perf_counter() - self._started) * 1000,
            )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release()
        if isinstance(exc, WIRE):
            failure = translate(exc, method="GET", path=self._named(), limits=self._limits)
            raise failure from None


def _no_read_timer(response: aiohttp.ClientResponse) -> None:
    """Stop aiohttp's read timer on *response*'s connection, for its body.

    That timer runs whenever no bytes arrive, also while what did arrive waits unread in
    aiohttp's buffer: a consumer holding a chunk would count as the host stalling.
    The connection's next request sets its timer again (aiohttp's per-request limits).
    """
    connection = response.connection
    protocol = None if connection is None else connection.protocol
    if protocol is not None:
        protocol.read_timeout = None
        protocol.start_timeout()  # with no limit: cancels the one running
