"""The thin layer over aiohttp: send a request, stream a body, translate errors.

This module and its helpers (:mod:`~zimage_async._redaction` for the headers,
:mod:`~zimage_async._httperrors` for the errors, :mod:`~zimage_async._imagestream` for
image bodies, :mod:`~zimage_async._imageresolver` for image hosts' addresses,
:mod:`~zimage_async._pools` for the pools and their close) are the only ones that touch
aiohttp. Everything above them sees :class:`~zimage_async._reply.Reply` and
:class:`ImageStream` and the exceptions of :mod:`zimage_async._exceptions`; aiohttp's own
exceptions are translated in :func:`~zimage_async._httperrors.translate`.

Rules kept here, so that no caller can forget them:

* Request headers live in a :class:`RedactedHeaders`, which is not a mapping: error
  reporters that serialise mappings item by item (Sentry does, with its defaults) see
  only its masked repr. The plain header dict aiohttp needs is built inside the call
  expression, never held in a local; aiohttp's frames are cut from every traceback.
* Each exchange has a stall limit and a total limit; the wait for a free connection in
  the pool counts against neither. The total limits of the API exchanges and of the image
  downloads (and an image body's stalls) share one timer, not one per request.
* A ``POST`` (the billed create) only goes out on a connection that was in use less
  than :data:`API_KEEPALIVE` seconds ago, far less than any server keeps an idle
  connection, so it never meets one the server is closing (the create would be
  "uncertain"). Task reads share the creates' pool while it is in use, else use their
  own, which keeps connections for 15 s (a handle polling every few seconds then opens
  no connection per look).
* Image downloads use a connection pool of their own, whose resolver refuses internal
  addresses (:class:`~zimage_async._urlpolicy.LinkPolicy`) for image hosts, never for the
  proxy's own host (the user's choice, resolved plainly), follow redirects hop by
  hop with every hop checked, and never send ``Authorization``, also when a borrowed
  ``aiohttp.ClientSession`` has one among its default headers.
* Proxies come from ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` (loopback never proxied),
  the CA bundle from ``ca_bundle`` or ``SSL_CERT_FILE``; nothing from ``.netrc``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import aiohttp.abc

from ._config import ca_bundle_context, default_trust
from ._deadlines import Deadlines
from ._exceptions import ZImageError
from ._httperrors import CAUGHT, closed_error, translate
from ._imageresolver import PolicyResolver, proxy_endpoints
from ._imagestream import ImageOpening, ImageStream
from ._links import redact_url
from ._pools import InFlight, close_pools, closed_failure, new_pool
from ._proxy import ProxyConfig
from ._redaction import SECRET_HEADERS, RedactedHeaders, SealedBody, kept_headers, mask_echoes
from ._reply import Reply, read_body
from ._sending import handing_over
from ._slots import Slots
from ._urlpolicy import LinkPolicy
from ._version import __version__

__all__ = [
    "API_KEEPALIVE",
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

#: Seconds after its last use that a pooled API connection may still carry a request (a
#: create above all). Far below the idle timeout of any server in front of an API (2 s at
#: the least, usually 5 to 75 s), so a create never meets a connection being closed.
API_KEEPALIVE = 1.0

_NOT_FOR_IMAGES = SECRET_HEADERS | {"user-agent"}  # the User-Agent is always ours


class Transport:
    """Sends HTTP requests over ``aiohttp`` sessions, one of them possibly borrowed.

    API calls go over the caller's ``aiohttp.ClientSession`` when one is passed (used
    as is, never closed here, but always with ``raise_for_status=False`` and this
    transport's ``User-Agent``), else over the two pools :meth:`open` creates (see the
    module docstring; creates reuse a connection within *keepalive* seconds, default
    :data:`API_KEEPALIVE`), *max_connections* requests at a time over both. Image
    downloads always use a pool of this transport's own (see the module docstring).

    Limits, in seconds: *connect_timeout* to open a connection; *timeout* for an API answer to
    stall (first byte, or between reads) and *total_timeout* for a whole API exchange;
    *read_timeout* for a download to stall, and the ``total_timeout`` given to :meth:`stream`
    for a whole download. Time queued for a free connection counts against none of them (over a
    borrowed session, its own pool's queue counts against *connect_timeout*, as aiohttp counts).

    *api_base_url* sets the image :class:`~zimage_async._urlpolicy.LinkPolicy` (loopback images
    only while the API is on loopback...); when ``None``, the origin of the first API request
    decides, and a download before any API request gets the strict policy. *trust_env* (default
    ``True``) reads ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` / ``NO_PROXY`` and
    ``SSL_CERT_FILE`` from *environ* (default ``os.environ``) for the owned sessions; loopback
    is never proxied and ``.netrc`` is never read. *ca_bundle* is a PEM file of the certificate
    authorities to trust instead of the system's. *resolver* replaces aiohttp's DNS resolver
    (the link policy still checks what it returns).
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
        keepalive: float = API_KEEPALIVE,
    ) -> None:
        self._borrowed = http_session
        #: The ``User-Agent`` of every request (a plain product token by default).
        self.user_agent = user_agent
        self._reads: aiohttp.ClientSession | None = None
        self._creates: aiohttp.ClientSession | None = None
        self._creates_used = float("-inf")  # when an exchange over it last ended
        self._keepalive = keepalive
        self._images: aiohttp.ClientSession | None = None
        self._closing: list[aiohttp.ClientSession] = []  # kept until closed, by a later close too
        self._slots: dict[str, Slots] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._max_connections = max_connections
        self._stall = timeout
        self._total = total_timeout
        self._read_stall = read_timeout
        self._connect = connect_timeout
        # The total limit is ours (Deadlines), from when a slot is taken (not the wait for one);
        # connect bounds a proxy's CONNECT too, unrounded: it must end before the total.
        self._timeout = aiohttp.ClientTimeout(
            connect=connect_timeout, sock_read=timeout, ceil_threshold=math.inf
        )
        self._limit = Deadlines()
        self._inflight = InFlight()  # what close() ends at once
        self._policy = LinkPolicy.for_api(api_base_url) if api_base_url else None
        env = os.environ if environ is None else environ
        self._proxies = ProxyConfig.from_environ(env) if trust_env else ProxyConfig()
        self._proxied = self._proxies.http is not None or self._proxies.https is not None
        self._proxy_ends = proxy_endpoints(self._proxies.https, self._proxies.http)
        self._resolver = resolver
        self._ssl = ca_bundle_context(ca_bundle, env, trust_env=trust_env)
        self._trust = self._ssl or default_trust(env, trust_env=trust_env)  # owned pools'
        self._api_options: dict[str, Any] = {  # for aiohttp, besides method, URL, body
            "allow_redirects": False,
            "timeout": self._timeout,
            "raise_for_status": False,
            # Only a CA bundle of ours overrides a borrowed session's own TLS settings.
            **({} if self._ssl is None else {"ssl": self._ssl}),
        }

    @property
    def link_policy(self) -> LinkPolicy:
        """The policy that image links and their redirects are checked against."""
        return self._policy if self._policy is not None else LinkPolicy()

    def open(self) -> None:
        """Create the owned ``aiohttp`` sessions (needs a running event loop)."""
        self._loop = asyncio.get_running_loop()
        if self._images is not None:
            return
        self._inflight = InFlight()
        self._images = self._session(
            resolver=PolicyResolver(
                self._resolver or aiohttp.ThreadedResolver(),
                lambda: self.link_policy,
                proxies=self._proxy_ends,  # resolved plainly: the policy judges image hosts
            ),
            # The total limit per download is the shared timer's (ImageOpening).
            timeout=aiohttp.ClientTimeout(
                connect=self._connect, sock_read=self._read_stall, ceil_threshold=math.inf
            ),
        )
        if self._borrowed is None:
            self._reads = self._session(resolver=self._resolver)
            self._creates = self._session(resolver=self._resolver, keepalive=self._keepalive)
        self._slots = {name: Slots(self._max_connections) for name in ("api", "images")}

    def _session(
        self,
        *,
        resolver: aiohttp.abc.AbstractResolver | None,
        keepalive: float = 15.0,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> aiohttp.ClientSession:
        return new_pool(
            limit=self._max_connections,
            resolver=resolver,
            keepalive=keepalive,
            trust=self._trust,
            user_agent=self.user_agent,
            timeout=timeout or self._timeout,
        )

    async def close(self) -> None:
        """Close the owned sessions (never a borrowed one), all even if cancelled. Idempotent.

        What is under way ends first, at once, with the closed-session error (a create
        with a connection error: it was sent); see :mod:`~zimage_async._pools`.
        """
        self._closing += filter(None, (self._reads, self._creates, self._images))
        self._reads = self._creates = self._images = None
        self._inflight.close(self._limit)
        try:
            await close_pools(self._closing, self._loop)
        finally:
            self._limit.close()
        self._closing = []

    def check_loop(self, *, closing: bool = False) -> None:
        """Raise RuntimeError out of the loop that opened it (*closing*: unless that ended)."""
        loop = self._loop
        ended = closing and loop is not None and loop.is_closed()
        if loop is not None and asyncio.get_running_loop() is not loop and not ended:
            raise RuntimeError(
                "this zimage_async.Session was opened in another event loop, which owns its"
                " connections: open a new Session in this loop (for example inside the"
                " asyncio.run() call that uses it), and close it there"
            )

    def _api_session(self, method: str) -> tuple[aiohttp.ClientSession, Slots | None]:
        self.check_loop()
        if self._borrowed is not None:
            if self._borrowed.closed:
                raise RuntimeError("the borrowed aiohttp.ClientSession is closed")
            return self._borrowed, None
        # Reads share the creates' pool while it is in use (see the module docstring).
        quiet = time.monotonic() - self._creates_used >= self._keepalive
        http = self._reads if method == "GET" and quiet else self._creates
        if http is None or http.closed:
            raise closed_error(opened=self._loop is not None)
        return http, self._slots["api"]

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: RedactedHeaders,
        body: SealedBody | None = None,
        max_body: int,
        attempt: int = 1,
        keep_cut: bool = False,
    ) -> Reply:
        """Send one request and read the whole answer (at most *max_body* bytes).

        Redirects are not followed: API answers come from the API's origin, so the
        ``Authorization`` header never travels anywhere else. ``User-Agent`` is this
        transport's unless *headers* set one. Echoes of the request's secrets in the
        answer's body (the key, a callback token; the start of one ending a cut body)
        are replaced by ``***``. With *keep_cut*, an answer whose body was cut short or
        is over *max_body* is returned as far as it came, its error in :attr:`Reply.cut`.
        """
        if self._policy is None:
            self._policy = LinkPolicy.for_api(url)
        http, slot = self._api_session(method)
        if slot is not None and (waiter := slot.take()) is not None:
            await slot.wait(waiter)
            if self._inflight.closed:  # closed while in line for a slot: never sent
                slot.release()
                raise closed_error(opened=True)
        limit = self._limit
        started = time.perf_counter()
        status: int | str = "error"
        failure: BaseException
        try:
            task = limit.enter(self._total)
            if method == "POST":
                handing_over()  # a create: maybe sent, and with the service until answered
            try:
                async with http.request(
                    method,
                    url,
                    # An owned session sends its User-Agent among its default headers.
                    headers=headers._wire(self.user_agent if slot is None else None),
                    data=None if body is None else body.reveal(),
                    # A borrowed session (no slot) proxies as it was made to.
                    proxy=self._proxies.proxy_for(url)
                    if self._proxied and slot is not None
                    else None,
                    **self._api_options,
                ) as response:
                    status = response.status
                    data, cut = await read_body(
                        response.content, max_body, status=status, keep_cut=keep_cut
                    )
                    return Reply(
                        status,
                        kept_headers(response.headers, headers),
                        mask_echoes(data, headers, cut=cut is not None),
                        None if cut is None else self._translated(cut, method, url),
                    )
            except asyncio.CancelledError as exc:
                if not limit.leave(task, exc):
                    raise
                raise asyncio.TimeoutError from None  # translated below, as the total limit
            finally:
                limit.leave(task)
                if slot is not None:
                    slot.release()
                    if http is self._creates:
                        self._creates_used = time.monotonic()
        except asyncio.CancelledError as exc:
            # Keep aiohttp's frames (and the header dict in them) out of the traceback.
            failure = exc.with_traceback(None)
        except CAUGHT as exc:
            # Raised below, outside this block: aiohttp's exception holds the request
            # headers (the key), so it must not even be the implicit __context__.
            if self._inflight.closed:  # cut off by close(), or broken by it
                failure = closed_failure(method, urlsplit(url).path)
            else:
                failure = self._translated(exc, method, url)
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

    def _translated(self, exc: BaseException, method: str, url: str) -> ZImageError:
        return translate(
            exc,
            method=method,
            path=urlsplit(url).path,
            limits=(self._stall, self._total),
            proxies=self._proxy_ends,
        )

    def stream(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        total_timeout: float | None = None,
        label: str | None = None,
    ) -> ImageOpening:
        """Open a GET of an image for streaming (``async with``); no ``Authorization`` is sent.

        The link and every redirect hop (at most :attr:`LinkPolicy.max_redirects`) are
        checked against :attr:`link_policy`, and so is every address a host resolves to;
        a refusal raises :class:`~zimage_async.ImageLinkRefusedError` before connecting.
        *total_timeout* bounds the whole download, redirects and body included (each wait
        for the host, on the transport's shared timer). The ``User-Agent`` is always this
        transport's; *label* names the link in messages (by default the link without its
        query string, made only when a message needs it).
        """
        self.check_loop()
        http, slot = self._images, self._slots.get("images")
        if http is None or http.closed or slot is None:
            raise closed_error(opened=self._loop is not None)
        clean = {k: v for k, v in headers.items() if k.lower() not in _NOT_FOR_IMAGES}
        clean["User-Agent"] = self.user_agent
        # Identity encoding: lengths and Range offsets then count the image's own bytes.
        clean["Accept-Encoding"] = "identity"
        return ImageOpening(
            http,
            slot,
            url,
            clean,
            label=label,
            policy=self.link_policy,
            proxy_for=self._proxies.proxy_for if self._proxied else _no_proxy,
            proxy_ends=self._proxy_ends,
            keeper=self._limit,
            limits=(self._read_stall, total_timeout),
            inflight=self._inflight,
        )


def _no_proxy(url: str) -> None:
    """No proxy for any image link (no proxy is configured)."""
