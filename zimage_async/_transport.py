"""The one module that touches aiohttp: send a request, stream a body, translate errors.

Everything above this layer sees :class:`Reply` and :class:`ImageStream` and the
exceptions of :mod:`zimage_async._exceptions`; aiohttp's own exceptions are translated
here, in :func:`_translate`, most specific first, and never reach the user.

Rules kept here, so that no caller can forget them:

* Request headers live in a :class:`RedactedHeaders`, which is not a mapping: error
  reporters that serialise mappings item by item (Sentry does, with its defaults) see
  only its masked repr. The plain header dict aiohttp needs is built inside the call
  expression, never held in a local; aiohttp's frames are cut from every traceback.
* Each exchange has a stall limit and a total limit; the wait for a free connection
  in the pool counts against neither.
* A ``POST`` (the billed create) always goes out on a new connection: a pooled one may
  have been closed by the server while idle, which would make the create "uncertain".
* Image downloads use a connection pool of their own, whose resolver refuses internal
  addresses (:class:`~zimage_async._urlpolicy.LinkPolicy`), follow redirects hop by
  hop with every hop checked, and never send ``Authorization``, also when a borrowed
  ``aiohttp.ClientSession`` has one among its default headers.
* Proxies come from ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` (loopback never
  proxied), the CA bundle from ``ca_bundle`` or ``SSL_CERT_FILE``; nothing from
  ``.netrc``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import NoReturn
from urllib.parse import urlsplit

import aiohttp
import aiohttp.abc
import attrs

from ._exceptions import (
    APIConnectionError,
    APITimeoutError,
    ImageLinkRefusedError,
    MalformedResponseError,
    ZImageError,
)
from ._links import redact_url
from ._proxy import ProxyConfig
from ._secret import MASK, Secret
from ._urlpolicy import LinkPolicy, next_hop
from ._version import __version__

__all__ = [
    "DEFAULT_TOTAL_TIMEOUT",
    "DEFAULT_USER_AGENT",
    "ImageStream",
    "RedactedHeaders",
    "Reply",
    "Transport",
    "redact_url",
]

logger = logging.getLogger("zimage_async")

#: The default ``User-Agent`` of every request: a plain product token. Nothing that looks
#: like a script (``python``, ``aiohttp``): CDNs in front of the file host, and of the
#: gateway, block those (Cloudflare error 1010).
DEFAULT_USER_AGENT = f"zimage-async/{__version__}"

#: Seconds one API exchange may take in all (sending, waiting, reading), by default.
DEFAULT_TOTAL_TIMEOUT = 120.0

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


class RedactedHeaders:
    """Request headers whose every printed form hides the ``Authorization`` value.

    Deliberately *not* a mapping (nor a sequence): error reporters serialise mappings
    item by item (Sentry's SDK does so with the local variables of every frame), and
    would send the key; for anything else they fall back to the repr, which is masked.
    The values of ``Authorization``, ``Proxy-Authorization`` and ``Cookie`` are kept as
    :class:`~zimage_async._secret.Secret` objects, so not even ``vars()`` shows them.
    Only the transport turns it into the header dict aiohttp needs, inside the call.

    >>> headers = RedactedHeaders({"Authorization": "Bearer sk-1", "Accept": "text/plain"})
    >>> headers["Idempotency-Key"] = "abc"
    >>> headers
    RedactedHeaders({'Authorization': '***', 'Accept': 'text/plain', 'Idempotency-Key': 'abc'})
    """

    __slots__ = ("_values",)

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        self._values: dict[str, str | Secret] = {}
        for name, value in (headers or {}).items():
            self[name] = value

    def __setitem__(self, name: str, value: str) -> None:
        self._values[name] = Secret(value) if name.lower() in _SECRET_HEADERS else value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in {k.lower() for k in self._values}

    def __repr__(self) -> str:
        shown = {k: (MASK if isinstance(v, Secret) else v) for k, v in self._values.items()}
        return f"RedactedHeaders({shown!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("RedactedHeaders cannot be pickled")

    def _wire(self, user_agent: str) -> dict[str, str]:
        """Return the plain header dict for aiohttp; call it only inside the request call."""
        wire = {"User-Agent": user_agent}
        for name, value in self._values.items():
            if name.lower() == "user-agent":
                del wire["User-Agent"]
            wire[name] = value.reveal() if isinstance(value, Secret) else value
        return wire

    def _tokens(self) -> list[bytes]:
        """Return the secret values (and the token of ``Bearer <token>``), to mask echoes."""
        tokens: list[bytes] = []
        for value in self._values.values():
            if isinstance(value, Secret):
                revealed = value.reveal()
                token = revealed.partition(" ")[2] or revealed
                if len(token) >= 4:
                    tokens.extend({token.encode(), token.replace("/", "\\/").encode()})
        return tokens


def _mask_echoes(body: bytes, tokens: list[bytes]) -> bytes:
    """Replace every echo of a request secret in an answer's *body* with ``***``."""
    for token in tokens:
        if token in body:
            body = body.replace(token, MASK.encode())
    return body


@attrs.frozen
class Reply:
    """A complete HTTP answer: status, headers and the whole (size-capped) body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class _RefusedAddress(OSError):
    """Raised by the image resolver for an address the link policy refuses."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"{host}: {reason}")
        self.reason = f"the host {host!r}: {reason}"


class _PolicyResolver(aiohttp.abc.AbstractResolver):
    """Resolves image hosts, keeping only the addresses the link policy allows."""

    def __init__(
        self, inner: aiohttp.abc.AbstractResolver, policy: Callable[[], LinkPolicy]
    ) -> None:
        self._inner = inner
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        policy = self._policy()
        refusals = [policy.address_refusal(entry["host"]) for entry in found]
        kept = [entry for entry, refusal in zip(found, refusals, strict=True) if refusal is None]
        if not kept:
            reason = next((r for r in refusals if r is not None), "it resolves to no address")
            raise _RefusedAddress(host, reason)
        return kept

    async def close(self) -> None:
        return None


def _scrub(exc: BaseException) -> None:
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


def _translate(
    exc: BaseException, *, method: str, path: str, limits: tuple[float | None, float | None]
) -> ZImageError:
    """Map an aiohttp or asyncio exception to ours. The one place this happens.

    *limits* is (stall, total) in seconds, for the timeout messages. Callers raise the
    result ``from None``: aiohttp's exceptions carry the request's headers, and with
    them the API key, so they are not chained.
    """
    stall, total = limits
    if isinstance(exc, ZImageError):  # already ours (from a nested layer)
        return exc
    _scrub(exc)
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
        if isinstance(exc.os_error, _RefusedAddress):
            return ImageLinkRefusedError(exc.os_error.reason, url=path, task_id=None, index=None)
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


# Every failure of an API exchange is translated: aiohttp's own ValueErrors (a borrowed
# session's default auth clashing with our header, say) carry the headers too.
_CAUGHT = (Exception,)
# The failures of the wire, for streams (whose body also sees the caller's exceptions).
_WIRE = (aiohttp.ClientError, asyncio.TimeoutError)


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

    async def iter_chunks(self, chunk_size: int) -> AsyncIterator[bytes]:
        """Yield the body in chunks of at most *chunk_size* bytes.

        A body shorter than its ``Content-Length`` raises :class:`APIConnectionError`;
        one that stalls or outlasts the download's total limit, :class:`APITimeoutError`.
        """
        failure: ZImageError | None = None
        try:
            async for chunk in self._response.content.iter_chunked(chunk_size):
                yield chunk
        except _WIRE as exc:
            failure = _translate(exc, method="GET", path=self._label, limits=self._limits)
        if failure is not None:
            raise failure from None

    async def sample(self, limit: int) -> bytes:
        """Return the first *limit* bytes of the body, or fewer if it is shorter.

        For reading an error page as evidence: a body that fails to arrive is ``b""``.
        """
        try:
            return (await _read_capped(self._response.content, limit))[:limit]
        except _WIRE:
            return b""


class Transport:
    """Sends HTTP requests over ``aiohttp`` sessions, one of them possibly borrowed.

    API calls go over the caller's ``aiohttp.ClientSession`` when one is passed (used
    as is, never closed here, but always with ``raise_for_status=False`` and this
    transport's ``User-Agent``), else over one that :meth:`open` creates with a pool of
    *max_connections*. Creates (``POST``) over an owned session use a new connection
    each. Image downloads always use a pool of this transport's own, whatever the API
    uses: its resolver enforces the link policy, and no default header of a borrowed
    session (``Authorization``) can reach the image host.

    Limits, in seconds: *connect_timeout* to open a connection; *timeout* for an API
    answer to stall (first byte, or between reads) and *total_timeout* for a whole API
    exchange; *read_timeout* for a download to stall, and the ``total_timeout`` given
    to :meth:`stream` for a whole download. Time queued for a free connection counts
    against none of them (over a borrowed session, its own pool's queue is not ours to
    see).

    *api_base_url* sets the image :class:`~zimage_async._urlpolicy.LinkPolicy` (loopback
    images only while the API is on loopback...); when ``None``, the origin of the first
    API request decides, and a download before any API request gets the strict policy.
    *trust_env* (default ``True``) reads ``HTTPS_PROXY`` / ``HTTP_PROXY`` /
    ``ALL_PROXY`` / ``NO_PROXY`` and ``SSL_CERT_FILE`` from *environ* (default
    ``os.environ``) for the owned sessions; loopback is never proxied and ``.netrc`` is
    never read. *ca_bundle* is a PEM file of the certificate authorities to trust
    instead of the system's. *resolver* replaces aiohttp's DNS resolver (the link policy
    still checks what it returns).
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
        total_timeout: float = DEFAULT_TOTAL_TIMEOUT,
        api_base_url: str | None = None,
        trust_env: bool = True,
        environ: Mapping[str, str] | None = None,
        ca_bundle: str | None = None,
        resolver: aiohttp.abc.AbstractResolver | None = None,
    ) -> None:
        self._borrowed = http_session
        #: The ``User-Agent`` of every request (a plain product token by default).
        self.user_agent = user_agent
        self._own: aiohttp.ClientSession | None = None
        self._fresh: aiohttp.ClientSession | None = None
        self._images: aiohttp.ClientSession | None = None
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._max_connections = max_connections
        self._stall = timeout
        self._total = total_timeout
        self._read_stall = read_timeout
        self._connect = connect_timeout
        # aiohttp's own total would also count the wait for a free pooled connection;
        # the owned pools never queue inside aiohttp (a semaphore of the pool's size is
        # taken first), so its total only counts the exchange itself.
        self._timeout = aiohttp.ClientTimeout(
            total=total_timeout, sock_connect=connect_timeout, sock_read=timeout
        )
        self._policy = LinkPolicy.for_api(api_base_url) if api_base_url else None
        env = os.environ if environ is None else environ
        self._proxies = ProxyConfig.from_environ(env) if trust_env else ProxyConfig()
        self._ca_bundle = ca_bundle or ((env.get("SSL_CERT_FILE") or None) if trust_env else None)
        self._resolver = resolver
        self._ssl: ssl.SSLContext | None = None

    @property
    def link_policy(self) -> LinkPolicy:
        """The policy that image links and their redirects are checked against."""
        return self._policy if self._policy is not None else LinkPolicy()

    def open(self) -> None:
        """Create the owned ``aiohttp`` sessions (needs a running event loop)."""
        self._loop = asyncio.get_running_loop()
        if self._images is not None:
            return
        if self._ca_bundle is not None:
            self._ssl = ssl.create_default_context(cafile=self._ca_bundle)
        self._images = self._session(
            resolver=_PolicyResolver(
                self._resolver or aiohttp.ThreadedResolver(), lambda: self.link_policy
            )
        )
        if self._borrowed is None:
            self._own = self._session(resolver=self._resolver)
            self._fresh = self._session(resolver=self._resolver, force_close=True)
        self._slots = {
            name: asyncio.Semaphore(self._max_connections) for name in ("api", "post", "images")
        }

    def _session(
        self, *, resolver: aiohttp.abc.AbstractResolver | None, force_close: bool = False
    ) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            resolver=resolver,
            force_close=force_close,
            ssl=self._ssl if self._ssl is not None else True,
        )
        return aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": self.user_agent},
            auto_decompress=True,
            trust_env=False,  # proxies are chosen per request; .netrc is never read
        )

    async def close(self) -> None:
        """Close the owned sessions; a borrowed one is left open. Idempotent."""
        owned = (self._own, self._fresh, self._images)
        self._own = self._fresh = self._images = None
        for session in owned:
            if session is not None:
                await session.close()

    def _check_loop(self) -> None:
        if self._loop is not None and asyncio.get_running_loop() is not self._loop:
            raise RuntimeError(
                "this zimage_async.Session was opened in another event loop; a session "
                "(and its connection pool) belongs to the loop that opened it - open a "
                "new Session in this loop (for example inside the asyncio.run() call "
                "that uses it)"
            )

    def _api_session(self, method: str) -> tuple[aiohttp.ClientSession, asyncio.Semaphore | None]:
        self._check_loop()
        if self._borrowed is not None:
            if self._borrowed.closed:
                raise RuntimeError("the borrowed aiohttp.ClientSession is closed")
            return self._borrowed, None
        # A create goes out on a new connection: a pooled one may have been closed by
        # the server while idle, and a POST written to it ends "uncertain".
        http = self._fresh if method == "POST" else self._own
        if http is None or http.closed:
            raise RuntimeError("the HTTP session is closed; open the zimage_async.Session first")
        return http, self._slots["post" if method == "POST" else "api"]

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: RedactedHeaders,
        body: bytes | None = None,
        max_body: int,
        attempt: int = 1,
    ) -> Reply:
        """Send one request and read the whole answer (at most *max_body* bytes).

        Redirects are not followed: API answers come from the API's origin, so the
        ``Authorization`` header never travels anywhere else. ``User-Agent`` is this
        transport's unless *headers* set one. Echoes of the request's secrets in the
        answer's body (an error message quoting the key) are replaced by ``***``.
        """
        if self._policy is None:
            self._policy = LinkPolicy.for_api(url)
        http, slot = self._api_session(method)
        started = time.perf_counter()
        status: int | str = "error"
        failure: BaseException
        try:
            if slot is not None:
                await slot.acquire()
            try:
                async with http.request(
                    method,
                    url,
                    headers=headers._wire(self.user_agent),
                    data=body,
                    allow_redirects=False,
                    timeout=self._timeout,
                    raise_for_status=False,
                    proxy=self._proxy(url),
                    **self._ssl_option(),
                ) as response:
                    status = response.status
                    data = await _read_capped(response.content, max_body)
                    if len(data) > max_body:
                        raise MalformedResponseError(
                            f"the answer is larger than {max_body} bytes", status=response.status
                        )
                    return Reply(
                        response.status, response.headers, _mask_echoes(data, headers._tokens())
                    )
            finally:
                if slot is not None:
                    slot.release()
        except asyncio.CancelledError as exc:
            # Keep aiohttp's frames (and the header dict in them) out of the traceback.
            failure = exc.with_traceback(None)
        except _CAUGHT as exc:
            # Raised below, outside this block: aiohttp's exception holds the request
            # headers (the key), so it must not even be the implicit __context__.
            failure = _translate(
                exc, method=method, path=urlsplit(url).path, limits=(self._stall, self._total)
            )
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
        raise failure from None

    def _proxy(self, url: str) -> str | None:
        return None if self._borrowed is not None else self._proxies.proxy_for(url)

    def _ssl_option(self) -> dict[str, ssl.SSLContext]:
        # Only a CA bundle of ours overrides a borrowed session's own TLS settings.
        return {} if self._ssl is None else {"ssl": self._ssl}

    @asynccontextmanager
    async def stream(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        total_timeout: float | None = None,
    ) -> AsyncIterator[ImageStream]:
        """Open a GET of an image for streaming; no ``Authorization`` is ever sent with it.

        The link and every redirect hop (at most :attr:`LinkPolicy.max_redirects`) are
        checked against :attr:`link_policy`, and so is every address a host resolves to;
        a refusal raises :class:`~zimage_async.ImageLinkRefusedError` before connecting.
        *total_timeout* bounds the whole download, redirects and body included. The
        ``User-Agent`` is always this transport's.
        """
        self._check_loop()
        http, slot = self._images, self._slots.get("images")
        if http is None or http.closed or slot is None:
            raise RuntimeError("the HTTP session is closed; open the zimage_async.Session first")
        label = redact_url(url)
        clean = {k: v for k, v in headers.items() if k.lower() not in _SECRET_HEADERS}
        clean = {k: v for k, v in clean.items() if k.lower() != "user-agent"}
        clean["User-Agent"] = self.user_agent
        # Identity encoding: lengths and Range offsets then count the image's own bytes.
        clean["Accept-Encoding"] = "identity"
        limits = (self._read_stall, total_timeout)
        timeout = aiohttp.ClientTimeout(
            total=total_timeout, sock_connect=self._connect, sock_read=self._read_stall
        )
        policy = self.link_policy
        started = time.perf_counter()
        response: aiohttp.ClientResponse | None = None
        failure: ZImageError | None = None
        async with slot:
            try:
                hop, seen = url, {url}
                for _ in range(policy.max_redirects + 1):
                    refusal = policy.refusal(hop)
                    if refusal is not None:
                        what = "the link" if hop == url else f"a redirect to {redact_url(hop)}"
                        raise ImageLinkRefusedError(
                            f"{what} is refused: {refusal}", url=label, task_id=None, index=None
                        )
                    response = await http.get(
                        hop,
                        headers=clean,
                        timeout=timeout,
                        allow_redirects=False,
                        raise_for_status=False,
                        proxy=self._proxies.proxy_for(hop),
                    )
                    location = response.headers.get("Location")
                    if response.status not in _REDIRECTS or not location:
                        break
                    response.release()
                    hop = next_hop(hop, location)
                    if hop in seen:
                        raise ImageLinkRefusedError(
                            f"the redirects loop back to {redact_url(hop)}",
                            url=label,
                            task_id=None,
                            index=None,
                        )
                    seen.add(hop)
                else:
                    raise ImageLinkRefusedError(
                        f"more than {policy.max_redirects} redirects",
                        url=label,
                        task_id=None,
                        index=None,
                    )
                yield ImageStream(response, label=label, limits=limits)
            except _WIRE as exc:
                failure = _translate(exc, method="GET", path=label, limits=limits)
            finally:
                if response is not None:
                    response.release()
                logger.debug(
                    "GET %s -> %s (%.1f ms)",
                    label,
                    response.status if response is not None else "error",
                    (time.perf_counter() - started) * 1000,
                )
        if failure is not None:
            raise failure from None
