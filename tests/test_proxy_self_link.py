"""An image link that names the configured proxy itself, reached directly through NO_PROXY.

The image pool's resolver resolves the proxy's own host and port plainly (the user
chose the proxy; only image hosts are the link policy's to judge). A link naming that
same host and port, which NO_PROXY sends there directly, would have skipped the address
check: a proxy is no image host, so such a link is refused before connecting.
"""

from __future__ import annotations

import asyncio

import pytest

from zimage_async import ImageLinkRefusedError

from .test_hardening_transport import MapResolver, opened, raw_server, transport

API = "https://api.example.com/apiv1"  # not loopback: the strict link policy


@pytest.mark.parametrize(
    ("redirected", "scheme"),
    [(False, "https"), (True, "https"), (True, "http")],
    ids=["link", "redirect-to-https", "redirect-to-http"],
)
async def test_a_link_naming_the_proxy_itself_reached_directly_is_refused(
    scheme: str, redirected: bool
) -> None:
    """Refused before any connection to the proxy, also as a redirect's target."""
    connections: list[str] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append("proxy")
        writer.close()

    async with raw_server(proxy) as proxy_port:
        target = f"{scheme}://proxy.test:{proxy_port}/0.png"

        async def origin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(f"HTTP/1.1 302 Found\r\nLocation: {target}\r\n\r\n".encode())
            await writer.drain()
            writer.close()

        async with raw_server(origin) as origin_port:
            env = {
                "HTTPS_PROXY": f"http://proxy.test:{proxy_port}",
                "HTTP_PROXY": f"http://proxy.test:{proxy_port}",
                "NO_PROXY": "proxy.test,images.test",
            }
            resolver = MapResolver({"proxy.test": "127.0.0.1", "images.test": "127.0.0.1"})
            # A direct link: the strict policy, which would refuse the proxy's loopback
            # address (the check it skipped). A redirect: a loopback gateway's policy,
            # which lets the image host's loopback address through (never contacted).
            api = "http://127.0.0.1:9/apiv1" if redirected else API
            t = transport(environ=env, resolver=resolver, api_base_url=api)
            link = f"http://images.test:{origin_port}/1.png" if redirected else target
            async with opened(t):
                with pytest.raises(ImageLinkRefusedError) as info:
                    await asyncio.wait_for(t.stream(link, headers={}).__aenter__(), 30)
    assert "proxy" in info.value.reason
    assert connections == []


@pytest.mark.parametrize("port", ["99999", "abc", "-1"])
@pytest.mark.parametrize("redirected", [False, True], ids=["link", "redirect"])
async def test_a_link_with_a_bad_port_is_refused_while_a_proxy_is_set(
    port: str, redirected: bool
) -> None:
    """The link policy refuses it first, as without a proxy: no bare ValueError."""

    async def origin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        bad = f"http://images.test:{port}/0.png"
        writer.write(f"HTTP/1.1 302 Found\r\nLocation: {bad}\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    async with raw_server(origin) as origin_port:
        env = {"HTTP_PROXY": "http://proxy.test:3128", "NO_PROXY": "images.test"}
        if not redirected:
            env["HTTPS_PROXY"] = "http://proxy.test:3128"
        resolver = MapResolver({"images.test": "127.0.0.1"})
        api = "http://127.0.0.1:9/apiv1" if redirected else API
        t = transport(environ=env, resolver=resolver, api_base_url=api)
        link = (
            f"http://images.test:{origin_port}/1.png"
            if redirected
            else f"https://images.test:{port}/0.png"
        )
        async with opened(t):
            with pytest.raises(ImageLinkRefusedError):
                await asyncio.wait_for(t.stream(link, headers={}).__aenter__(), 30)
