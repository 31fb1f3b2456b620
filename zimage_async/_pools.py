"""The transport's own connection pools: how one is made, and how what it carries ends.

Part of the thin aiohttp layer (:mod:`zimage_async._transport`). :func:`new_pool` makes
each of the transport's pools. Closing aiohttp's pools does not end every read waiting
on them: aiohttp lets go of an answer's body stream before the connection is lost, so a
read waiting for more of a body is never woken (and the close drops the pools' stall
timers); a borrowed ``aiohttp.ClientSession`` is not closed at all. So a closing
transport ends what it has under way itself (:meth:`InFlight.close`), before it closes
its pools:

* each image body still open gets the closed-session error, which every later read of
  it raises, a read already waiting too, whether bytes are at hand or not;
* each block its keeper of deadlines bounds (an API exchange, the wait for an image
  host's answer, a read waiting for more of a body) is cut off at once, as its deadline
  would; seeing :attr:`InFlight.closed`, its owner raises the closed-session error
  instead of a timeout, save for a request that may have changed something, such as a
  create, which was sent: :func:`closed_failure` makes it a connection error, which the
  create reports as uncertain.

Cheap where it runs often: one set entry per download, nothing per API exchange or per
chunk (the keeper already knows the task of each block).

Then :func:`close_pools` closes the pools themselves, every one of them even when the
close is cancelled part-way, and without their event loop when that loop has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import aiohttp
import aiohttp.abc

from ._deadlines import Deadlines
from ._exceptions import APIConnectionError
from ._httperrors import closed_error

__all__ = ["InFlight", "close_pools", "closed_failure", "new_pool"]


def new_pool(
    *,
    limit: int,
    resolver: aiohttp.abc.AbstractResolver | None,
    keepalive: float,
    trust: ssl.SSLContext | bool,
    user_agent: str,
    timeout: aiohttp.ClientTimeout,
) -> aiohttp.ClientSession:
    """Return a session over a pool of at most *limit* connections, sending *user_agent*.

    A connection idle for longer than *keepalive* seconds is not used again; *trust*
    verifies the servers; proxies are chosen per request, never from the environment.
    """
    # aiohttp checks a pooled connection's idle time when it hands it out, and closes
    # it instead if it was idle longer than keepalive_timeout (15 s is its default).
    connector = aiohttp.TCPConnector(
        limit=limit, resolver=resolver, keepalive_timeout=keepalive, ssl=trust
    )
    return aiohttp.ClientSession(
        connector=connector,
        headers={"User-Agent": user_agent},
        auto_decompress=True,
        trust_env=False,  # proxies are chosen per request; .netrc is never read
        timeout=timeout,
    )


class InFlight:
    """The image bodies a transport has open, and whether it has closed."""

    __slots__ = ("_bodies", "closed")

    def __init__(self) -> None:
        #: Whether the transport has closed: a failure from then on is the close's.
        self.closed = False
        self._bodies: set[aiohttp.ClientResponse] = set()

    def opened(self, response: aiohttp.ClientResponse) -> None:
        """Count in the image body *response* (one opened after the close ends at once)."""
        if self.closed:
            response.content.set_exception(closed_error(opened=True))
        else:
            self._bodies.add(response)

    def released(self, response: aiohttp.ClientResponse) -> None:
        """Count out *response*, released (idempotent)."""
        self._bodies.discard(response)

    def close(self, keeper: Deadlines) -> None:
        """End every body open and every block *keeper* bounds (see the module docstring)."""
        self.closed = True
        bodies, self._bodies = self._bodies, set()
        for response in bodies:
            response.content.set_exception(closed_error(opened=True))
        keeper.cut_all()


def closed_failure(method: str, path: str) -> Exception:
    """Return the error of an API exchange the close cut off, whatever aiohttp raised.

    A ``GET`` changes nothing: the closed-session error, as for a call made after the
    close. Any other request was sent, and may have done its work (a create, its billed
    task): a connection error that says it was sent, which the caller reports as such.
    """
    if method == "GET":
        return closed_error(opened=True)
    return APIConnectionError(
        "the Session was closed before the answer came",
        request_sent=True,
        method=method,
        path=path,
    )


async def close_pools(
    pools: Iterable[aiohttp.ClientSession], loop: asyncio.AbstractEventLoop | None
) -> None:
    """Close each of *pools*, made in *loop*; idempotent.

    A cancellation (a second Ctrl-C, a task group ending, ``wait_for``) cuts short only the
    wait for the pool being closed: the close of every other one still begins, and the
    cancellation is raised once all have. A pool's close marks it closed and closes its
    connections before it waits at all, so none is left open; closing again finishes
    what a cancelled close left (its resolver). When *loop* has ended, each pool's
    sockets are closed at once (:func:`_close_sockets`): that loop can close none.
    """
    pools = list(pools)
    if loop is not None and loop.is_closed():
        for pool in pools:
            _close_sockets(pool)
    cancelled: asyncio.CancelledError | None = None
    for pool in pools:
        stopped = await _close_pool(pool)
        cancelled = cancelled or stopped
    if cancelled is not None:
        raise cancelled


async def _close_pool(pool: aiohttp.ClientSession) -> asyncio.CancelledError | None:
    """Close *pool*; return the cancellation that cut the wait for it short, if one did."""
    try:
        connector = pool.connector  # closed again, it closes what it had left (its resolver)
        if connector is not None:
            await connector.close()
        await pool.close()
    except asyncio.CancelledError as exc:
        return exc
    return None


def _close_sockets(pool: aiohttp.ClientSession) -> None:
    """Close the sockets of *pool*'s connections, whose event loop has ended, there and then.

    aiohttp closes a connection through its loop (a callback closes the socket); an ended
    loop runs none, so aiohttp's close lets go of them, sockets open ("unclosed transport"
    when collected). So each connection it holds, idle or in use, is closed here as
    aiohttp's own close walks them, its socket closed directly, no callback on that loop.
    """
    connector = pool.connector
    if connector is None or connector.closed:
        return
    idle = getattr(connector, "_conns", {}).values()
    handlers = [handler for pooled in idle for handler, _ in pooled]
    handlers.extend(getattr(connector, "_acquired", ()))
    transports = [handler.transport for handler in handlers]
    transports.extend(getattr(connector, "_cleanup_closed_transports", ()))
    for transport in transports:
        if transport is not None:
            _close_transport(transport)


def _close_transport(transport: Any) -> None:
    """Close *transport* of an ended loop, and the socket under it (under TLS too)."""
    with contextlib.suppress(RuntimeError, OSError):
        transport.close()  # marked closed; then it finds its loop closed
    for _ in range(3):  # a TLS transport is over the one holding the socket
        inner = getattr(getattr(transport, "_ssl_protocol", None), "_transport", None)
        if inner is None:
            break
        transport = inner
    sock = getattr(transport, "_sock", None)
    if isinstance(sock, socket.socket):
        sock.close()
        transport._sock = None  # closed: nothing left for it to warn of when collected
