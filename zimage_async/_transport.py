"""The one module that touches aiohttp: send a request, stream a body, translate errors.

Everything above this layer sees :class:`Reply` and :class:`ImageStream` and the
exceptions of :mod:`zimage_async._exceptions`; aiohttp's own exceptions are translated
here, in :func:`_translate`, most specific first, and never reach the user.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import aiohttp
import attrs

from ._exceptions import APIConnectionError, APITimeoutError, MalformedResponseError, ZImageError
from ._version import __version__

__all__ = ["DEFAULT_USER_AGENT", "ImageStream", "Reply", "Transport", "redact_url"]

logger = logging.getLogger("zimage_async")

#: The default ``User-Agent`` of every request: a plain product token. Nothing that looks
#: like a script (``python``, ``aiohttp``): CDNs in front of the file host, and of the
#: gateway, block those (Cloudflare error 1010).
DEFAULT_USER_AGENT = f"zimage-async/{__version__}"


def redact_url(url: str) -> str:
    """Return *url* without query string or fragment (signed links are credentials).

    >>> redact_url("https://cdn.example/x/0.png?sig=secret")
    'https://cdn.example/x/0.png'
    """
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


class RedactedHeaders(dict[str, str]):
    """Request headers whose repr hides the ``Authorization`` value.

    Tracebacks that show local variables (pytest ``-l``, error trackers) print reprs;
    this keeps the key out of them.
    """

    def __repr__(self) -> str:
        shown = {k: ("***" if k.lower() == "authorization" else v) for k, v in self.items()}
        return f"RedactedHeaders({shown!r})"


@attrs.frozen
class Reply:
    """A complete HTTP answer: status, headers and the whole (size-capped) body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def _translate(exc: BaseException, *, method: str, path: str) -> ZImageError:
    """Map an aiohttp or asyncio exception to ours. The one place this happens.

    Callers raise the result ``from None``: aiohttp's exceptions carry the request's
    headers, and with them the API key, so they are not chained.
    """
    if isinstance(exc, ZImageError):  # already ours (from a nested layer)
        return exc
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return APITimeoutError(
            "timed out while connecting", request_sent=False, method=method, path=path
        )
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return APITimeoutError(
            "timed out waiting for the answer", request_sent=True, method=method, path=path
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return APIConnectionError(
            f"could not connect ({exc.os_error.strerror or type(exc.os_error).__name__})",
            request_sent=False,
            method=method,
            path=path,
        )
    if isinstance(exc, aiohttp.ClientPayloadError):
        return APIConnectionError(
            "the answer's body was cut short", request_sent=True, method=method, path=path
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
    if isinstance(exc, aiohttp.ClientResponseError):
        return MalformedResponseError(
            f"the HTTP answer could not be read ({type(exc).__name__}: {exc.message})"
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


_CAUGHT = (aiohttp.ClientError, asyncio.TimeoutError)


async def _read_capped(content: aiohttp.StreamReader, limit: int) -> bytes:
    """Read a whole body, or the first ``limit + 1`` bytes of a longer one."""
    parts: list[bytes] = []
    size = 0
    async for chunk in content.iter_any():
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(parts)


class ImageStream:
    """An open image download: status, headers and the body as a stream of chunks."""

    def __init__(self, response: aiohttp.ClientResponse, *, label: str) -> None:
        self._response = response
        self._label = label
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers
        #: The body length the server announced, if it did.
        self.content_length = response.content_length

    async def iter_chunks(self, chunk_size: int) -> AsyncIterator[bytes]:
        """Yield the body in chunks of at most *chunk_size* bytes.

        A body shorter than its ``Content-Length`` raises :class:`APIConnectionError`.
        """
        failure: ZImageError | None = None
        try:
            async for chunk in self._response.content.iter_chunked(chunk_size):
                yield chunk
        except _CAUGHT as exc:
            failure = _translate(exc, method="GET", path=self._label)
        if failure is not None:
            raise failure

    async def sample(self, limit: int) -> bytes:
        """Return the first *limit* bytes of the body, or fewer if it is shorter.

        For reading an error page as evidence: a body that fails to arrive is ``b""``.
        """
        try:
            return (await _read_capped(self._response.content, limit))[:limit]
        except _CAUGHT:
            return b""


class Transport:
    """Sends HTTP requests over one ``aiohttp.ClientSession``, owned or borrowed.

    A session passed in by the caller is used as is and never closed here; otherwise
    :meth:`open` creates one with a connection pool of *max_connections* and
    :meth:`close` closes it. Every request sends *user_agent*, also over a borrowed
    session (whose own default, ``Python/... aiohttp/...``, looks like a script).
    """

    def __init__(
        self,
        *,
        http_session: aiohttp.ClientSession | None,
        max_connections: int,
        timeout: float,
        connect_timeout: float,
        read_timeout: float,
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> None:
        self._borrowed = http_session
        #: The ``User-Agent`` of every request (a plain product token by default).
        self.user_agent = user_agent
        self._own: aiohttp.ClientSession | None = None
        self._max_connections = max_connections
        # No total timeout: it would also count the wait for a free connection in the
        # pool, and expire there as an ambiguous "timed out" for a request never sent.
        # Opening a connection has its own limit; then the answer must not stall.
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=timeout
        )
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )

    def open(self) -> None:
        """Create the owned ``aiohttp.ClientSession`` (needs a running event loop)."""
        if self._borrowed is None and self._own is None:
            self._own = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                headers={"User-Agent": self.user_agent},
                auto_decompress=True,
                trust_env=False,
            )

    async def close(self) -> None:
        """Close the owned session; a borrowed one is left open. Idempotent."""
        own, self._own = self._own, None
        if own is not None:
            await own.close()

    @property
    def _http(self) -> aiohttp.ClientSession:
        http = self._borrowed or self._own
        if http is None or http.closed:
            raise RuntimeError("the HTTP session is closed; open the zimage_async.Session first")
        return http

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | None = None,
        max_body: int,
        attempt: int = 1,
    ) -> Reply:
        """Send one request and read the whole answer (at most *max_body* bytes).

        Redirects are not followed: API answers come from the API's origin, so the
        ``Authorization`` header never travels anywhere else. ``User-Agent`` is this
        transport's unless *headers* set one.
        """
        started = time.perf_counter()
        status: int | str = "error"
        if self._borrowed is not None and "User-Agent" not in headers:
            headers = RedactedHeaders({"User-Agent": self.user_agent, **headers})
        try:
            async with self._http.request(
                method,
                url,
                headers=headers,
                data=body,
                allow_redirects=False,
                timeout=self._timeout,
            ) as response:
                status = response.status
                data = await _read_capped(response.content, max_body)
                if len(data) > max_body:
                    raise MalformedResponseError(
                        f"the answer is larger than {max_body} bytes", status=response.status
                    )
                return Reply(response.status, response.headers, data)
        except _CAUGHT as exc:
            # Raised below, outside this block: aiohttp's exception holds the request
            # headers (the key), so it must not even be the implicit __context__.
            failure = _translate(exc, method=method, path=urlsplit(url).path)
        finally:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "%s %s -> %s (attempt %d, %.1f ms)",
                    method,
                    urlsplit(url).path,
                    status,
                    attempt,
                    (time.perf_counter() - started) * 1000,
                )
        raise failure

    @asynccontextmanager
    async def stream(self, url: str, *, headers: Mapping[str, str]) -> AsyncIterator[ImageStream]:
        """Open a GET for streaming; no ``Authorization`` is ever sent with it.

        The ``User-Agent`` is always this transport's, never a borrowed session's.
        """
        label = redact_url(url)
        clean = {
            k: v for k, v in headers.items() if k.lower() not in ("authorization", "user-agent")
        }
        clean["User-Agent"] = self.user_agent
        # Identity encoding: lengths and Range offsets then count the image's own bytes.
        clean["Accept-Encoding"] = "identity"
        started = time.perf_counter()
        response: aiohttp.ClientResponse | None = None
        failure: ZImageError | None = None
        try:
            async with self._http.get(
                url, headers=clean, timeout=self._stream_timeout, allow_redirects=True
            ) as response:
                yield ImageStream(response, label=label)
        except _CAUGHT as exc:
            failure = _translate(exc, method="GET", path=label)
        finally:
            logger.debug(
                "GET %s -> %s (%.1f ms)",
                label,
                response.status if response is not None else "error",
                (time.perf_counter() - started) * 1000,
            )
        if failure is not None:
            raise failure
