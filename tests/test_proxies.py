"""Proxies met through real HTTP on 127.0.0.1: a proxy named by host name, a proxy that refuses.

The API is said to be ``https://api.example.com`` (never resolved nor contacted: every
request goes to the test's proxy on 127.0.0.1), so the strict link policy applies, as
for the real service. Host names resolve through MapResolver only (nothing asks DNS).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import socket
from collections.abc import Awaitable
from typing import TypeVar

import pytest
import trustme

from zimage_async import (
    APIConnectionError,
    ImageDownloadError,
    ImageLinkRefusedError,
    RetryPolicy,
    Session,
)
from zimage_async._download import DownloadInfo, ImageLimits, stream_image
from zimage_async._transport import Transport

from ._proxies import TinyProxy, tls_server
from .conftest import KEY
from .test_hardening_transport import MapResolver, headers, opened, raw_server, transport

T = TypeVar("T")

API = "https://api.example.com/apiv1"  # not loopback: the strict link policy
PASSWORD = "pr0xy-s3cret-pw"  # the test proxy's password, never to be shown
THREE = RetryPolicy(wait_initial=0.01, wait_max=0.02, max_attempts=3)


async def bounded(wait: Awaitable[T]) -> T:
    """Await *wait*, failing the test after 30 s instead of hanging."""
    return await asyncio.wait_for(wait, 30)


class Refuser:
    """A proxy on 127.0.0.1 that answers every request itself with *status* (no tunnel)."""

    def __init__(self, status: int, reason: str) -> None:
        self.answer = f"HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\n\r\n".encode()
        self.seen: list[str] = []
        self.credentials: list[str] = []

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        line, *fields = head.split("\r\n")
        self.seen.append(line)
        for field in fields:
            name, _, value = field.partition(":")
            if name.strip().lower() == "proxy-authorization":
                self.credentials.append(value.strip())
        writer.write(self.answer)
        await writer.drain()
        writer.close()


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


# -- a proxy that refuses the CONNECT ----------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"), [(407, "Proxy Authentication Required"), (403, "Forbidden")]
)
async def test_a_create_refused_by_the_proxy_was_not_sent_and_hides_the_proxy_password(
    status: int, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A proxy refusing the CONNECT of a create: not uncertain, retried, the password unshown."""
    caplog.set_level(logging.DEBUG, logger="zimage_async")
    proxy = Refuser(status, reason)
    async with raw_server(proxy) as proxy_port:
        env = {"HTTPS_PROXY": f"http://someone:{PASSWORD}@127.0.0.1:{proxy_port}"}
        async with Session(api_key=KEY, base_url=API, environ=env, retry=THREE) as zs:
            with pytest.raises(APIConnectionError) as info:
                await bounded(zs.submit("a cat"))
    error = info.value
    assert type(error) is APIConnectionError  # not SubmissionUncertainError: nothing left
    assert error.request_sent is False
    assert f"the proxy refused the tunnel ({status} {reason})" in str(error)
    assert proxy.seen == ["CONNECT api.example.com:443 HTTP/1.1"] * 3  # the retry policy's
    encoded = base64.b64encode(f"someone:{PASSWORD}".encode()).decode()
    assert proxy.credentials == [f"Basic {encoded}"] * 3  # the password was in play
    shown = [str(error), repr(error), caplog.text, repr(error.__cause__), repr(error.__context__)]
    assert not [text for text in shown if PASSWORD in text or encoded in text]


async def test_a_task_read_refused_by_the_proxy_is_a_connection_error() -> None:
    """A task read whose CONNECT the proxy refuses: APIConnectionError, retried by the policy."""
    proxy = Refuser(403, "Forbidden")
    async with raw_server(proxy) as proxy_port:
        env = {"HTTPS_PROXY": f"http://127.0.0.1:{proxy_port}"}
        async with Session(api_key=KEY, base_url=API, environ=env, retry=THREE) as zs:
            with pytest.raises(APIConnectionError) as info:
                await bounded(zs.get_task("task-unified-1-abcdefgh"))
    assert info.value.request_sent is False
    assert "the proxy refused the tunnel (403 Forbidden)" in str(info.value)
    assert len(proxy.seen) == 3


async def _download(t: Transport, link: str) -> None:
    async for _ in stream_image(
        t,
        link,
        task_id="task-unified-1-abcdefgh",
        index=0,
        expires_at=None,
        retry=THREE,
        rng=random.Random(0),
        limits=ImageLimits(total_timeout=20),
        info=DownloadInfo(),
    ):
        pass


async def test_an_image_download_refused_by_the_proxy_gives_up_after_the_retry_policy() -> None:
    """An image download whose CONNECT the proxy refuses: ImageDownloadError after the attempts."""
    proxy = Refuser(407, "Proxy Authentication Required")
    async with raw_server(proxy) as proxy_port:
        env = {"HTTPS_PROXY": f"http://someone:{PASSWORD}@127.0.0.1:{proxy_port}"}
        async with opened(transport(environ=env, api_base_url=API)) as t:
            with pytest.raises(ImageDownloadError) as info:
                await bounded(_download(t, "https://images.example.com/0.png?sig=abc"))
    assert not isinstance(info.value, ImageLinkRefusedError)
    assert "gave up after 3 attempts" in str(info.value)
    assert "the proxy refused the tunnel (407 Proxy Authentication Required)" in str(info.value)
    assert PASSWORD not in str(info.value)
    assert proxy.seen == ["CONNECT images.example.com:443 HTTP/1.1"] * 3


async def test_a_proxy_reason_phrase_echoing_its_credentials_is_not_shown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A proxy's own reason phrase may quote its Proxy-Authorization: the standard one shows."""
    caplog.set_level(logging.DEBUG, logger="zimage_async")
    encoded = base64.b64encode(f"someone:{PASSWORD}".encode()).decode()
    proxy = Refuser(407, f"denied for Basic {encoded}")
    async with raw_server(proxy) as proxy_port:
        env = {"HTTPS_PROXY": f"http://someone:{PASSWORD}@127.0.0.1:{proxy_port}"}
        async with Session(api_key=KEY, base_url=API, environ=env, retry=THREE) as zs:
            with pytest.raises(APIConnectionError) as info:
                await bounded(zs.submit("a cat"))
    assert "the proxy refused the tunnel (407 Proxy Authentication Required)" in str(info.value)
    shown = [str(info.value), repr(info.value), caplog.text]
    assert not [text for text in shown if PASSWORD in text or encoded in text]
