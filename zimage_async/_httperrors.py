"""Translating aiohttp's exceptions into ours: the one place it happens.

Part of the thin aiohttp layer (:mod:`zimage_async._transport`). :func:`translate` maps
them most specific first; they never reach the user, and their frames (which hold the
request's header dict, the key included) are dropped first by :func:`scrub`.
"""

from __future__ import annotations

import asyncio
import http
import re
from collections.abc import Collection

import aiohttp

from ._exceptions import (
    APIConnectionError,
    APITimeoutError,
    ImageLinkRefusedError,
    MalformedResponseError,
    SessionClosedError,
    ZImageError,
)

__all__ = [
    "CAUGHT",
    "WIRE",
    "RefusedAddress",
    "UnresolvedProxy",
    "closed_error",
    "scrub",
    "translate",
]

# Every failure of an API exchange is translated: aiohttp's own ValueErrors (a borrowed
# session's default auth clashing with our header, say) carry the headers too.
CAUGHT = (Exception,)
# The failures of the wire, for streams (whose body also sees the caller's exceptions).
WIRE = (aiohttp.ClientError, asyncio.TimeoutError)


class RefusedAddress(OSError):
    """Raised by the image resolver for an address the link policy refuses."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"{host}: {reason}")
        self.reason = f"the host {host!r}: {reason}"


class UnresolvedProxy(OSError):
    """Raised by the image resolver when the proxy's own host name does not resolve."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"{host}: {reason}")
        self.strerror = reason


def scrub(exc: BaseException) -> None:
    """Drop the frames of *exc* and of every exception it chains to.

    aiohttp's frames hold the request's header dictionary (the key) as a local. Python
    3.10 may still link the caught exception to ours as ``__context__`` although ours is
    raised outside the ``except`` block, so the chain must hold no frames at all.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        current = current.__cause__ or current.__context__


def closed_error(*, opened: bool) -> RuntimeError:
    """Return the error of a call on a closed transport: its session closed, or never opened."""
    if opened:
        return SessionClosedError("the Session is closed; create a new Session to make requests")
    return RuntimeError("the HTTP session is closed; open the zimage_async.Session first")


def translate(
    exc: BaseException,
    *,
    method: str,
    path: str,
    limits: tuple[float | None, float | None],
    proxies: Collection[tuple[str, int]] = (),
) -> ZImageError:
    """Map an aiohttp or asyncio exception to ours.

    *limits* is (stall, total) in seconds, for the timeout messages; *proxies* the
    ``(host, port)`` of the proxies configured, so that a failure to resolve one's name
    is named as the proxy's (the image resolver marks it so itself). Callers raise the
    result ``from None``: aiohttp's exceptions carry the request's headers, and with
    them the API key (and the proxy's credentials), so they are not chained.
    """
    stall, total = limits
    if isinstance(exc, ZImageError):  # already ours (from a nested layer)
        return exc
    scrub(exc)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return APITimeoutError(
            "timed out while connecting", request_sent=False, method=method, path=path
        )
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return APITimeoutError(
            f"the answer stalled (no data for {stall:g} s)"
            if stall is not None
            else "timed out waiting for the answer",
            request_sent=True,
            method=method,
            path=path,
        )
    if isinstance(exc, asyncio.TimeoutError):
        return APITimeoutError(
            f"the exchange took longer than its {total:g} s total limit"
            if total is not None
            else "timed out waiting for the answer",
            request_sent=True,
            method=method,
            path=path,
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, RefusedAddress):
            return ImageLinkRefusedError(exc.os_error.reason, url=path, task_id=None, index=None)
        reason = exc.os_error.strerror or type(exc.os_error).__name__
        if (
            isinstance(exc, aiohttp.ClientProxyConnectionError)
            or isinstance(exc.os_error, UnresolvedProxy)
            or (exc.host, exc.port) in proxies
        ):
            # Its host and port only: never its URL, which may hold its credentials.
            return APIConnectionError(
                f"could not connect to the proxy {exc.host}:{exc.port} ({reason})",
                request_sent=False,
                method=method,
                path=path,
            )
        return APIConnectionError(
            f"could not connect ({reason})", request_sent=False, method=method, path=path
        )
    if isinstance(exc, aiohttp.ClientPayloadError):
        coding = _undecodable(exc)
        return APIConnectionError(
            "the answer's body was cut short"
            if coding is None
            else f"the answer says Content-Encoding {coding}, but its body could not be "
            f"decoded as {coding}",
            request_sent=True,
            method=method,
            path=path,
        )
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return APIConnectionError(
            "the server closed the connection without answering",
            request_sent=True,
            method=method,
            path=path,
        )
    if isinstance(exc, aiohttp.TooManyRedirects):
        return APIConnectionError("too many redirects", request_sent=True, method=method, path=path)
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        # The proxy answered the CONNECT itself: the request never left for the host.
        return APIConnectionError(
            f"the proxy refused the tunnel ({_status_line(exc.status)})",
            request_sent=False,
            method=method,
            path=path,
        )
    if isinstance(exc, aiohttp.ClientResponseError):
        coding = _undecodable(exc)
        if coding is not None:  # one it was not asked for, that this client cannot decode
            return MalformedResponseError(
                f"the answer is coded with Content-Encoding {coding}, which this client did"
                " not ask for and cannot decode"
            )
        return MalformedResponseError(
            f"the HTTP answer could not be read ({type(exc).__name__}: {_parser_reason(exc)})"
        )
    if isinstance(exc, aiohttp.ClientOSError):
        return APIConnectionError(
            f"the connection failed ({exc.strerror or 'reset'})",
            request_sent=True,
            method=method,
            path=path,
        )
    return APIConnectionError(
        f"the request failed ({type(exc).__name__})", request_sent=True, method=method, path=path
    )


#: aiohttp's words for a body it cannot decode, and the coding named (``gzip``, or the
#: ``br`` of ``brotli (br)``): a token, never more of what the server sent.
_UNDECODABLE = re.compile(r"Can not decode content-encoding: (?:[\w-]{1,20} \()?([\w.-]{1,20})")


def _undecodable(exc: aiohttp.ClientError) -> str | None:
    """Return the Content-Encoding that aiohttp could not decode, if that is the failure."""
    match = _UNDECODABLE.search(str(exc)) or _UNDECODABLE.search(str(exc.__cause__))
    return match[1] if match else None


def _parser_reason(exc: aiohttp.ClientResponseError) -> str:
    """Return what the HTTP parser found wrong, without the bytes it quotes after it.

    aiohttp's message goes on to quote the line it could not parse, and a server (or a
    proxy) may have put anything there, the request's own ``Authorization`` among it: only
    the words before the first colon, quote or line end are kept.
    """
    reason = re.split(r"[:\n'\"]", str(exc.message), maxsplit=1)[0].strip()
    return _printable(reason, 80) or "unreadable"


def _status_line(status: int) -> str:
    """Return *status* with its standard reason phrase (never the proxy's own text).

    A proxy's reason phrase is its own text, and may quote the request's
    ``Proxy-Authorization`` (the proxy's credentials).
    """
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _printable(text: str, limit: int = 100) -> str:
    """*text* (a reason phrase from the wire) cut to *limit* characters, printable only."""
    return "".join(c if c.isprintable() else "?" for c in text[:limit])
