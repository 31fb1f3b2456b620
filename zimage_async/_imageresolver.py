"""The image pool's resolver, and the proxies it resolves plainly.

Image hosts are resolved through :class:`PolicyResolver`, which keeps only the addresses
the link policy allows; the configured proxies' own hosts (:func:`proxy_endpoints`) are
the user's choice and resolved plainly, and a link that names one of them is no image
host (:func:`names_a_proxy`).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import aiohttp
import aiohttp.abc
import yarl

from ._httperrors import RefusedAddress, UnresolvedProxy
from ._urlpolicy import LinkPolicy

__all__ = ["PolicyResolver", "names_a_proxy", "proxy_endpoints"]


def proxy_endpoints(*proxies: str | None) -> frozenset[tuple[str, int]]:
    """Return the ``(host, port)`` of each proxy URL given, as aiohttp names them.

    aiohttp asks a pool's resolver for the proxy's host (with its port) just as for any
    other host, and names it so in its connection errors.

    >>> sorted(proxy_endpoints("http://Proxy.Corp:3128", None, "http://localhost"))
    [('localhost', 80), ('proxy.corp', 3128)]
    """
    found: set[tuple[str, int]] = set()
    for proxy in proxies:
        if proxy is None:
            continue
        try:
            url = yarl.URL(proxy)
            host, port = url.raw_host, url.port
        except ValueError:  # aiohttp refuses it too, before connecting
            continue
        if host and port is not None:
            found.add((host, port))
            if host.endswith(".."):  # aiohttp resolves such a name with one trailing dot
                found.add((host.rstrip(".") + ".", port))
    return frozenset(found)


def names_a_proxy(link: str, proxies: frozenset[tuple[str, int]]) -> str | None:
    """Refuse a *link* reached directly (``NO_PROXY``) that names one of the *proxies*.

    The image pool's resolver resolves a proxy's own host and port without the address
    check (the proxy is the user's choice); a link to that same place, reached as an
    origin, would have skipped it. A proxy is no image host.
    """
    try:
        url = yarl.URL(link)
        host, port = url.raw_host or "", url.port or 0
    except ValueError:  # the link policy judged it already; aiohttp refuses it too
        return None
    if host.endswith(".."):  # as aiohttp hands it to the resolver (see proxy_endpoints)
        host = host.rstrip(".") + "."
    if (host, port) in proxies:
        return f"it names the configured proxy ({host}:{port}), which is no image host"
    return None


class PolicyResolver(aiohttp.abc.AbstractResolver):
    """Resolves image hosts, keeping only the addresses the link policy allows.

    The *proxies*' own hosts (``(host, port)`` pairs, from :func:`proxy_endpoints`) are
    resolved plainly: the user chose them, and only image hosts are the link policy's
    to judge (through a proxy, the proxy resolves the image host, not this resolver).
    """

    def __init__(
        self,
        inner: aiohttp.abc.AbstractResolver,
        policy: Callable[[], LinkPolicy],
        *,
        proxies: frozenset[tuple[str, int]] = frozenset(),
    ) -> None:
        self._inner = inner
        self._policy = policy
        self._proxies = proxies

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        """Resolve *host* with the inner resolver; drop the addresses the policy refuses."""
        if (host, port) in self._proxies:
            try:
                found = await self._inner.resolve(host, port, family)
            except asyncio.TimeoutError:
                raise
            except OSError as exc:
                raise UnresolvedProxy(host, exc.strerror or type(exc).__name__) from None
            if not found:
                raise UnresolvedProxy(host, "it resolves to no address")
            return found
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
