"""A loopback forward proxy and an HTTPS origin, for the transport and proxy tests.

Every packet stays on 127.0.0.0/8: the proxy resolves the test's host names itself,
and the origin's certificate comes from the test CA (the ``ca`` fixture).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import trustme
from aiohttp import web


class TinyProxy:
    """A forward proxy on 127.0.0.1: absolute-form HTTP requests and CONNECT tunnels.

    It resolves the test's host names itself, from *names* (host -> 127.0.0.x).
    """

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        self.seen: list[str] = []

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ")
        self.seen.append(f"{method} {target}")
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
        else:
            authority = target.split("/", 3)[2]
            host, _, port = authority.rpartition(":")
        up_reader, up_writer = await asyncio.open_connection(self.names[host], int(port))
        if method == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            path = "/" + target.split("/", 3)[3]
            rest = head.split(b"\r\n", 1)[1]
            up_writer.write(f"{method} {path} HTTP/1.1\r\n".encode() + rest)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


@contextlib.asynccontextmanager
async def tls_server(
    ca: trustme.CA,
    *names: str,
    route: tuple[str, Handler] = ("/hello", hello),
) -> AsyncIterator[int]:
    """An HTTPS server on 127.0.0.1 with a certificate for *names*, from the test CA.

    It answers GET *route* (a path pattern and its handler; ``/hello`` by default).
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    app = web.Application()
    app.router.add_get(*route)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()
