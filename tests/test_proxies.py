"""Proxies met through real HTTP on 127.0.0.1: a proxy named by host name, one unreachable.

The API is said to be ``https://api.example.com`` (never resolved nor contacted: every
request goes to the test's proxy on 127.0.0.1), so the strict link policy applies, as
for the real service. Host names resolve through MapResolver only (nothing asks DNS).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import pytest
import trustme

from zimage_async import APIConnectionError, ImageLinkRefusedError

from .test_hardening_transport import (
    MapResolver,
    TinyProxy,
    headers,
    opened,
    raw_server,
    tls_server,
    transport,
)

T = TypeVar("T")

API = "https://api.example.com/apiv1"  # not loopback: the strict link policy
PASSWORD = "pr0xy-s3cret-pw"  # the test proxy's password, never to be shown


async def bounded(wait: Awaitable[T]) -> T:
    """Await *wait*, failing the test after 30 s instead of hanging."""
    return await asyncio.wait_for(wait, 30)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


# -- a proxy named by host name ------------------------------------------------------------


@pytest.mark.parametrize("name", ["localhost", "proxy.test"])
async def test_an_image_proxy_named_by_a_host_name_carries_downloads(
    ca: trustme.CA, ca_file: str, name: str
) -> None:
    """A proxy whose name resolves to an internal address (loopback) carries image downloads.

    The link policy judges image hosts; the proxy is the user's choice, resolved plainly
    (``localhost``, and a name that resolves to 127.0.0.1 as a corporate one would to 10.x).
    """
    async with tls_server(ca, "images.test") as port:
        proxy = TinyProxy({"images.test": "127.0.0.1"})
        async with raw_server(proxy) as proxy_port:
            env = {"HTTPS_PROXY": f"http://{name}:{proxy_port}"}
            resolver = MapResolver({name: "127.0.0.1"})
            t = transport(environ=env, ca_bundle=ca_file, resolver=resolver, api_base_url=API)
            async with opened(t):
                link = f"https://images.test:{port}/hello"
                async with t.stream(link, headers={}, total_timeout=10) as image:
                    status, body = image.status, await bounded(image.read(100))
    assert (status, body) == (200, b"hello")
    assert proxy.seen == [f"CONNECT images.test:{port}"]
    assert resolver.asked == [name]  # the proxy's name only: the proxy resolves the image host


@pytest.mark.parametrize("host", ["images.test", "proxy.test"])
async def test_image_hosts_reached_directly_are_still_checked_while_a_proxy_is_named(
    host: str,
) -> None:
    """With a proxy named by host name, an image host bypassing it is still judged by address.

    Also the proxy's own name on another port: only the proxy itself is exempt.
    """
    connections: list[str] = []

    async def origin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append("accepted")
        writer.close()

    proxy = TinyProxy({})
    async with raw_server(origin) as port, raw_server(proxy) as proxy_port:
        env = {"HTTPS_PROXY": f"http://proxy.test:{proxy_port}", "NO_PROXY": host}
        resolver = MapResolver({"proxy.test": "127.0.0.1", "images.test": "127.0.0.1"})
        t = transport(environ=env, resolver=resolver, api_base_url=API)
        async with opened(t):
            with pytest.raises(ImageLinkRefusedError) as info:
                await bounded(t.stream(f"https://{host}:{port}/0.png", headers={}).__aenter__())
    assert "loopback" in info.value.reason
    assert (connections, proxy.seen) == ([], [])
    assert resolver.asked == [host]


@pytest.mark.parametrize("kind", ["API request", "image download"])
async def test_a_proxy_name_that_does_not_resolve_is_a_connection_error_naming_it(
    kind: str,
) -> None:
    """A proxy host name that cannot be resolved: APIConnectionError naming it, nothing sent."""
    env = {"HTTPS_PROXY": "http://proxy.test:3128"}
    resolver = MapResolver({})  # every name fails, as a name no DNS server knows
    async with opened(transport(environ=env, resolver=resolver, api_base_url=API)) as t:
        attempt: Awaitable[object] = (
            t.request("GET", f"{API}/v1/x", headers=headers(), max_body=10)
            if kind == "API request"
            else t.stream("https://images.test/0.png", headers={}).__aenter__()
        )
        with pytest.raises(APIConnectionError) as info:
            await bounded(attempt)
    assert not isinstance(info.value, ImageLinkRefusedError)
    assert info.value.request_sent is False
    assert "could not connect to the proxy proxy.test:3128" in str(info.value)
    assert resolver.asked == ["proxy.test"]


async def test_a_proxy_that_refuses_connections_is_a_connection_error_naming_it() -> None:
    """A proxy whose port refuses connections: APIConnectionError naming it, nothing sent."""
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        env = {"HTTPS_PROXY": f"http://someone:{PASSWORD}@127.0.0.1:{port}"}
        async with opened(transport(environ=env, api_base_url=API)) as t:
            with pytest.raises(APIConnectionError) as info:
                await bounded(t.stream("https://images.test/0.png", headers={}).__aenter__())
    assert info.value.request_sent is False
    assert f"could not connect to the proxy 127.0.0.1:{port}" in str(info.value)
    assert PASSWORD not in str(info.value)
