"""An open image download (:class:`ImageStream`) and the resolver that guards image hosts.

Part of the thin aiohttp layer (:mod:`zimage_async._transport`), which opens the streams.
"""

from __future__ import annotations

import math
import socket
from collections.abc import AsyncIterator, Callable, Mapping

import aiohttp
import aiohttp.abc

from ._exceptions import ZImageError
from ._httperrors import WIRE, RefusedAddress, translate
from ._urlpolicy import LinkPolicy

__all__ = ["DownloadTimeouts", "ImageStream", "PolicyResolver", "read_capped"]


async def read_capped(content: aiohttp.StreamReader, limit: int) -> bytes:
    """Read a whole body, or the first ``limit + 1`` bytes of a longer one.

    Each read takes what has arrived (an API answer usually comes in one piece), and
    asks for no more than would go one byte past *limit*.
    """
    data = await content.read(limit + 1)
    if not data or content.at_eof():  # the whole body came at once: no read of its end
        return data
    parts = [data]
    size = len(data)
    while size <= limit:
        more = await content.read(limit + 1 - size)
        if not more:
            break
        parts.append(more)
        size += len(more)
    return data if len(parts) == 1 else b"".join(parts)


class DownloadTimeouts:
    """aiohttp's limits for downloads: *connect* and *stall* seconds, and a total per call.

    aiohttp rounds a deadline 5 s or more away up to a whole second (its
    ``ceil_threshold``), so such totals are rounded up here too: one limit then serves
    many downloads instead of a new one being made for each.
    """

    __slots__ = ("_connect", "_made", "_stall")

    def __init__(self, *, connect: float, stall: float) -> None:
        self._connect = connect
        self._stall = stall
        self._made: dict[float | None, aiohttp.ClientTimeout] = {}

    def get(self, total: float | None) -> aiohttp.ClientTimeout:
        """Return the limits for a download of at most *total* seconds (None: no total)."""
        if total is not None and total >= 5:
            total = float(math.ceil(total))
        timeout = self._made.get(total)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(
                total=total, sock_connect=self._connect, sock_read=self._stall
            )
            if len(self._made) < 1024:
                self._made[total] = timeout
        return timeout


class PolicyResolver(aiohttp.abc.AbstractResolver):
    """Resolves image hosts, keeping only the addresses the link policy allows."""

    def __init__(
        self, inner: aiohttp.abc.AbstractResolver, policy: Callable[[], LinkPolicy]
    ) -> None:
        self._inner = inner
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        """Resolve *host* with the inner resolver; drop the addresses the policy refuses."""
        found = await self._inner.resolve(host, port, family)
        policy = self._policy()
        refusals = [policy.address_refusal(entry["host"]) for entry in found]
        kept = [entry for entry, refusal in zip(found, refusals, strict=True) if refusal is None]
        if not kept:
            reason = next((r for r in refusals if r is not None), "it resolves to no address")
            raise RefusedAddress(host, reason)
        return kept

    async def close(self) -> None:
        """Nothing to close: the inner resolver belongs to whoever made it."""


class ImageStream:
    """An open image download: status, headers and the body as a stream of chunks."""

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        *,
        label: str,
        limits: tuple[float | None, float | None] = (None, None),
    ) -> None:
        self._response = response
        self._label = label
        self._limits = limits
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers
        #: The body length the server announced, if it did.
        self.content_length = response.content_length

    async def read(self, limit: int) -> bytes:
        """Return the next bytes of the body, at most *limit*; ``b""`` at its end.

        What has arrived is returned at once, without waiting for *limit* bytes. A body
        shorter than its ``Content-Length`` raises :class:`APIConnectionError`; one that
        stalls or outlasts the download's total limit, :class:`APITimeoutError`.
        """
        failure: ZImageError
        try:
            return await self._response.content.read(limit)
        except WIRE as exc:
            failure = translate(exc, method="GET", path=self._label, limits=self._limits)
        raise failure from None

    async def iter_chunks(self, chunk_size: int) -> AsyncIterator[bytes]:
        """Yield the body in chunks of at most *chunk_size* bytes (see :meth:`read`)."""
        while chunk := await self.read(chunk_size):
            yield chunk

    async def sample(self, limit: int) -> bytes:
        """Return the first *limit* bytes of the body, or fewer if it is shorter.

        For reading an error page as evidence: a body that fails to arrive is ``b""``.
        """
        try:
            return (await read_capped(self._response.content, limit))[:limit]
        except WIRE:
            return b""
