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
"""

from __future__ import annotations

import ssl

import aiohttp
import aiohttp.abc

from ._deadlines import Deadlines
from ._exceptions import APIConnectionError
from ._httperrors import closed_error

__all__ = ["InFlight", "closed_failure", "new_pool"]


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
