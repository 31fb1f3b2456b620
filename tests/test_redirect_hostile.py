"""An image host's redirect whose ``Location`` cannot be read is refused, not a crash.

``urljoin`` raises ``ValueError`` for a location such as ``https://[::1/0.png``; a bare
``ValueError`` out of a download would end a whole batch as a crash.
"""

from __future__ import annotations

import asyncio

import pytest

from zimage_async import ImageLinkRefusedError

from .test_hardening_transport import MapResolver, opened, raw_server, transport


@pytest.mark.parametrize("location", ["https://[::1/0.png", "//[x/0.png"])
async def test_a_redirect_to_an_unreadable_location_is_refused(location: str) -> None:
    """ImageLinkRefusedError naming the redirect; nothing else is fetched."""
    asked: list[str] = []

    async def origin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        asked.append((await reader.readuntil(b"\r\n\r\n")).split(b"\r\n", 1)[0].decode())
        writer.write(f"HTTP/1.1 302 Found\r\nLocation: {location}\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    async with raw_server(origin) as port:
        resolver = MapResolver({"images.test": "127.0.0.1"})
        t = transport(resolver=resolver, api_base_url="http://127.0.0.1:9/apiv1")
        link = f"http://images.test:{port}/1.png"
        async with opened(t):
            with pytest.raises(ImageLinkRefusedError) as info:
                await asyncio.wait_for(t.stream(link, headers={}).__aenter__(), 30)
    assert "redirect" in info.value.reason
    assert asked == ["GET /1.png HTTP/1.1"]
