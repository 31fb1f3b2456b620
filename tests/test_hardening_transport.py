"""Hardening of the transport: limits, live connections for creates, borrowed sessions, proxies.

Every packet goes to 127.0.0.0/8: test host names resolve there through MapResolver, or
through the test's own proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import aiohttp.abc
import pytest
import trustme
from aiohttp import web

from zimage_async import (
    APITimeoutError,
    GenerationRequest,
    ImageDownloadError,
    RateLimitError,
    RetryPolicy,
    SubmissionUncertainError,
)
from zimage_async._api import APIClient
from zimage_async._download import DownloadInfo, ImageLimits, stream_image
from zimage_async._secret import Secret
from zimage_async._transport import RedactedHeaders, Transport

from ._proxies import TinyProxy, hello, tls_server
from .conftest import KEY, OddHost, _png, loopback_session, serving

ONE_TRY = RetryPolicy(max_attempts=1)
FAST = RetryPolicy(wait_initial=0.01, wait_max=0.02, max_attempts=3)


class MapResolver(aiohttp.abc.AbstractResolver):
    """Resolves the test's own host names to loopback addresses; any other name fails."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        self.asked.append(host)
        if host not in self.names:
            raise OSError(f"{host} is not a test host name")
        return [
            {
                "hostname": host,
                "host": self.names[host],
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        return None


def transport(**options: Any) -> Transport:
    settings: dict[str, Any] = {
        "http_session": None,
        "max_connections": 10,
        "timeout": 5.0,
        "connect_timeout": 5.0,
        "read_timeout": 5.0,
    }
    return Transport(**(settings | options))


@contextlib.asynccontextmanager
async def opened(t: Transport) -> AsyncIterator[Transport]:
    t.open()
    try:
        yield t
    finally:
        await t.close()


def _api(t: Transport, port: int, retry: RetryPolicy = ONE_TRY) -> APIClient:
    return APIClient(
        t,
        base_url=f"http://127.0.0.1:{port}",
        api_key=Secret(KEY),
        retry=retry,
        rng=random.Random(0),
    )


def headers() -> RedactedHeaders:
    return RedactedHeaders({"Authorization": f"Bearer {KEY}", "Accept": "application/json"})


@contextlib.asynccontextmanager
async def raw_server(
    answer: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[int]:
    """A raw TCP server on 127.0.0.1 running *answer* per connection; yields its port.

    On exit, unfinished handlers are cancelled and every connection is closed.
    """
    handlers: set[asyncio.Task[None]] = set()
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await answer(reader, writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        for writer in writers:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        await server.wait_closed()


def trickler(prefix: bytes, length: int) -> Callable[..., Awaitable[None]]:
    """A server that sends *prefix*, then a body of *length* bytes one byte at a time."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (length, prefix))
        with contextlib.suppress(ConnectionError):
            for _ in range(length - len(prefix)):
                writer.write(b" ")  # the scenario itself: a host that trickles
                await writer.drain()
                await asyncio.sleep(0.02)
            writer.close()

    return answer


# -- 3. every exchange has a total limit ---------------------------------------------------


async def test_trickling_answer_hits_the_total_limit() -> None:
    """An API answer trickling one byte at a time is cut off by the total limit."""
    async with raw_server(trickler(b"{", 200)) as port, opened(transport(total_timeout=0.3)) as t:
        with pytest.raises(APITimeoutError) as info:
            await t.request(
                "GET", f"http://127.0.0.1:{port}/v1/tasks/x", headers=headers(), max_body=1000
            )
    assert "0.3" in str(info.value) and "total" in str(info.value)


async def test_trickling_create_is_uncertain_after_the_total_limit() -> None:
    """A billed create whose answer trickles is cut off by the total limit, as uncertain."""
    async with raw_server(trickler(b"{", 200)) as port, opened(transport(total_timeout=0.3)) as t:
        api = _api(t, port)
        with pytest.raises(SubmissionUncertainError) as info:
            await api.create(GenerationRequest(prompt="a cat"))
    assert isinstance(info.value.cause, APITimeoutError)


async def _read_image(
    t: Transport, port: int, total: float, between: Callable[[], Awaitable[None]]
) -> None:
    """Stream the image at *port* with a per-image *total*, running *between* after each chunk."""
    async for _ in stream_image(
        t,
        f"http://127.0.0.1:{port}/img/0.png",
        task_id="task-unified-1-abcdefgh",
        index=0,
        expires_at=None,
        retry=FAST,
        rng=random.Random(0),
        limits=ImageLimits(total_timeout=total),
        info=DownloadInfo(),
    ):
        await between()


async def _nothing() -> None:
    return None


async def test_trickling_image_hits_the_per_image_total() -> None:
    """An image that trickles in is cut off by the per-image total, and not retried."""
    png = _png()
    hits = 0

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal hits
        hits += 1
        await trickler(png[:64], len(png))(reader, writer)

    async with raw_server(answer) as port:
        api = f"http://127.0.0.1:{port}"  # a loopback API, so loopback images are allowed
        async with opened(transport(api_base_url=api)) as t:
            with pytest.raises(ImageDownloadError) as info:
                await _read_image(t, port, 0.3, _nothing)
    assert "0.3" in str(info.value)
    assert hits == 1


async def test_an_image_host_silent_before_its_headers_hits_the_per_image_total() -> None:
    """A host that takes the request and never answers is cut off at the per-image total.

    The stall limit is 60 s here: the test's own 20 s bound would end it first if the
    total did not cover the wait for the headers.
    """

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(60)  # cancelled when the server closes

    async with raw_server(silent) as port:
        api = f"http://127.0.0.1:{port}"
        async with opened(transport(api_base_url=api, read_timeout=60.0)) as t:
            with pytest.raises(ImageDownloadError) as info:
                await asyncio.wait_for(_read_image(t, port, 0.3, _nothing), 20)
    assert "0.3 s total limit" in str(info.value)


async def test_a_slow_reader_of_an_image_is_not_cancelled_in_its_own_code() -> None:
    """The per-image total cuts off waits for the host, never the caller's code between chunks.

    The caller sleeps past the total after the first chunk; its sleep ends normally, and
    the next wait for the host ends the download with the total-limit error.
    """
    png = _png()

    async def late(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(png), png[:64]))
        await writer.drain()
        await asyncio.sleep(0.8)
        writer.write(png[64:])
        await writer.drain()

    slept = []

    async def slow() -> None:
        await asyncio.sleep(0.5)
        slept.append(True)

    async with raw_server(late) as port:
        api = f"http://127.0.0.1:{port}"
        async with opened(transport(api_base_url=api)) as t:
            with pytest.raises(ImageDownloadError) as info:
                await _read_image(t, port, 0.3, slow)
    assert slept == [True]
    assert "0.3 s total limit" in str(info.value)


# -- 4. a create never goes out on a connection the server may have closed ----------------


class ClosesIdleConnections:
    """Answers creates, but closes a connection left idle for *idle* seconds or more.

    It closes it the worst way: when the next request on it arrives, without answering,
    which is what a client sees when the server's idle timer fires just as a request is
    written to a pooled connection. A client that reused such a connection for a create
    would end "uncertain".
    """

    def __init__(self, idle: float) -> None:
        self.idle = idle
        self.connections = 0
        self.answered = 0
        self.dropped = 0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        loop = asyncio.get_running_loop()
        answered_at: float | None = None
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            if answered_at is not None and loop.time() - answered_at >= self.idle:
                self.dropped += 1
                break
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                ),
                0,
            )
            await reader.readexactly(length)
            self.answered += 1
            target = head.split(b" ", 2)[1]
            asked = target.rpartition(b"/")[2] if b"/v1/tasks/" in target else None
            task_id = asked or b"task-unified-1-abcd%04d" % self.answered  # a read: the one asked
            body = b'{"id": "%s", "status": "pending"}' % task_id
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
            answered_at = loop.time()
        writer.close()


async def test_creates_reuse_only_connections_the_server_keeps_open() -> None:
    """Creates share a connection in quick succession, never after a long idle spell.

    The server drops a connection idle for 0.4 s when the next request arrives; the
    transport reuses a connection within 0.2 s of its last use (its ``keepalive``, as
    :data:`API_KEEPALIVE` is to real servers' idle timeouts). Creates 0.6 s apart must
    each open a new connection and all succeed; back-to-back ones share connections.
    """
    server = ClosesIdleConnections(idle=0.4)
    async with raw_server(server) as port, opened(transport(keepalive=0.2)) as t:
        api = _api(t, port)
        tasks = []
        for burst in range(3):
            if burst:
                await asyncio.sleep(0.6)  # longer than the server keeps an idle connection
            tasks += [await api.create(GenerationRequest(prompt=f"cat {i}")) for i in range(4)]
    assert len({task.id for task in tasks}) == 12
    assert server.answered == 12
    assert server.dropped == 0
    assert server.connections == 3  # one per burst: reused within it, never across


async def test_the_idle_server_does_drop_a_create_on_a_long_idle_connection() -> None:
    """The server above is a real trap: with reuse allowed for 15 s, the create is lost."""
    server = ClosesIdleConnections(idle=0.2)
    async with raw_server(server) as port, opened(transport(keepalive=15.0)) as t:
        api = _api(t, port)
        await api.create(GenerationRequest(prompt="cat 0"))
        await asyncio.sleep(0.3)
        with pytest.raises(SubmissionUncertainError):
            await api.create(GenerationRequest(prompt="cat 1"))
    assert server.dropped == 1


async def test_task_reads_reuse_a_connection_idle_longer_than_the_creates_keep_alive() -> None:
    """Only creates are held to the short keep-alive: task reads keep their connection.

    A poll every few seconds must not open a new connection each time (a TCP handshake
    and a close on both sides, per poll). The transport's create keep-alive is 0.2 s;
    three reads 0.4 s apart go over one connection.
    """
    server = ClosesIdleConnections(idle=30.0)
    async with raw_server(server) as port, opened(transport(keepalive=0.2)) as t:
        api = _api(t, port)
        for i in range(3):
            if i:
                await asyncio.sleep(0.4)
            await api.get_task("task-unified-1-abcd0001")
    assert server.answered == 3
    assert server.connections == 1


async def test_reads_in_a_busy_spell_share_the_creates_connections() -> None:
    """A read right after a create goes over the create's connection: no second pool to open.

    Reads only move to a pool of their own once the creates' pool has been quiet for
    its keep-alive; in a busy spell, a batch would otherwise open twice the connections.
    """
    server = ClosesIdleConnections(idle=30.0)
    async with raw_server(server) as port, opened(transport(keepalive=5.0)) as t:
        api = _api(t, port)
        task = await api.create(GenerationRequest(prompt="a cat"))
        await api.get_task(task.id)
    assert server.answered == 2
    assert server.connections == 1


async def test_a_read_on_a_connection_the_server_dropped_while_idle_is_repeated() -> None:
    """A kept read connection the server drops as the read arrives costs nothing: it is sent again.

    The server drops connections idle for 0.2 s when the next request arrives; the read
    after 0.3 s idle meets that, and still returns the task (a GET is safe to repeat).
    """
    server = ClosesIdleConnections(idle=0.2)
    async with raw_server(server) as port, opened(transport(keepalive=0.1)) as t:
        api = _api(t, port, retry=FAST)
        first = await api.get_task("task-unified-1-abcd0001")
        await asyncio.sleep(0.3)
        second = await api.get_task("task-unified-1-abcd0001")
    assert first.id and second.id
    assert server.dropped == 1
    assert server.answered == 2


async def test_creates_a_second_apart_against_a_one_second_keep_alive() -> None:
    """Creates about 1 s apart to a server with a 1 s keep-alive are never uncertain."""
    posts = 0
    connections: set[object] = set()

    async def create(request: web.Request) -> web.Response:
        nonlocal posts
        posts += 1
        connections.add(request.transport)
        return web.json_response({"id": f"task-unified-1-abcd{posts:04d}", "status": "pending"})

    app = web.Application()
    app.router.add_post("/apiv1/v1/images/generations", create)
    runner = web.AppRunner(app, keepalive_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        outcomes: list[object] = []
        async with loopback_session(base, retry=ONE_TRY) as session:
            for i in range(8):
                if i:
                    await asyncio.sleep(1.0)  # the scenario: idle as long as the keep-alive
                try:
                    outcomes.append(await session.submit(f"cat {i}"))
                except SubmissionUncertainError as exc:
                    outcomes.append(exc)
    finally:
        await runner.cleanup()
    assert not [o for o in outcomes if isinstance(o, SubmissionUncertainError)]
    assert posts == 8


# -- 8. borrowed sessions, event loops ----------------------------------------------------


async def test_borrowed_session_raising_for_status_still_reads_a_429(
    odd_host: OddHost,
) -> None:
    """A borrowed session with raise_for_status=True: a 429 on create is read as the API's.

    Its outcome is unknown (the gateway may answer so after making the task), so with
    one try the create is uncertain, the RateLimitError its cause.
    """

    async def limited(request: web.Request) -> web.Response:
        return web.json_response(
            {"error": {"code": 429, "type": "rate_limit_error", "message": "slow down"}},
            status=429,
            headers={"Retry-After": "0"},
        )

    app = web.Application()
    app.router.add_post("/apiv1/v1/images/generations", limited)
    async with (
        serving(app) as base,
        aiohttp.ClientSession(raise_for_status=True) as borrowed,
        loopback_session(base, retry=ONE_TRY, http_session=borrowed) as session,
    ):
        with pytest.raises(SubmissionUncertainError) as caught:
            await session.submit("a cat")
    assert isinstance(caught.value.__cause__, RateLimitError)


async def test_borrowed_session_default_authorization_never_reaches_images(
    odd_host: OddHost,
) -> None:
    """A borrowed session's default Authorization header is not sent to the image host."""
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as borrowed,
        loopback_session(f"{odd_host.base}", http_session=borrowed) as session,
    ):
        await session.generate("ok")
    assert odd_host.image_headers
    assert all("Authorization" not in h for h in odd_host.image_headers)


async def test_session_used_from_another_event_loop_names_the_problem(
    odd_host: OddHost,
) -> None:
    """A session used from another thread's event loop fails with a clear RuntimeError."""
    failures: list[BaseException] = []
    async with loopback_session(odd_host.base) as session:

        def elsewhere() -> None:
            try:
                asyncio.run(session.get_task("task-unified-1-abcdefgh"))
            except BaseException as exc:
                failures.append(exc)

        thread = threading.Thread(target=elsewhere)
        thread.start()
        await asyncio.to_thread(thread.join)
    (failure,) = failures
    assert isinstance(failure, RuntimeError)
    assert "another event loop" in str(failure)


# -- 8. proxies and CA bundles ------------------------------------------------------------


@pytest.mark.parametrize("slots", [10, 1])
async def test_http_proxy_from_the_environment_forwards_plain_requests(slots: int) -> None:
    """HTTP_PROXY is honoured: a plain http request to a named host goes via the proxy.

    Also with one connection slot, held by the request itself (none left free).
    """
    app = web.Application()
    app.router.add_get("/hello", hello)
    async with serving(app) as origin:
        port = int(origin.rpartition(":")[2])
        proxy = TinyProxy({"api.test": "127.0.0.1"})
        async with raw_server(proxy) as proxy_port:
            env = {"HTTP_PROXY": f"http://127.0.0.1:{proxy_port}"}
            resolver = MapResolver({})
            async with opened(
                transport(environ=env, resolver=resolver, max_connections=slots)
            ) as t:
                reply = await t.request(
                    "GET", f"http://api.test:{port}/hello", headers=headers(), max_body=100
                )
    assert reply.body == b"hello"
    assert proxy.seen == [f"GET http://api.test:{port}/hello"]
    assert resolver.asked == []  # the proxy resolved the name, not the SDK


async def test_https_proxy_tunnels_with_a_custom_ca_bundle(ca: trustme.CA, ca_file: str) -> None:
    """HTTPS_PROXY is honoured with CONNECT, and ca_bundle verifies the origin's certificate."""
    async with tls_server(ca, "api.test") as port:
        proxy = TinyProxy({"api.test": "127.0.0.1"})
        async with raw_server(proxy) as proxy_port:
            env = {"HTTPS_PROXY": f"http://127.0.0.1:{proxy_port}"}
            async with opened(
                transport(environ=env, ca_bundle=ca_file, resolver=MapResolver({}))
            ) as t:
                reply = await t.request(
                    "GET", f"https://api.test:{port}/hello", headers=headers(), max_body=100
                )
    assert reply.body == b"hello"
    assert proxy.seen == [f"CONNECT api.test:{port}"]


async def test_ssl_cert_file_is_honoured(ca: trustme.CA, ca_file: str) -> None:
    """SSL_CERT_FILE in the environment names the CA bundle that verifies servers."""
    async with tls_server(ca, "api.test") as port:
        resolver = MapResolver({"api.test": "127.0.0.1"})
        env = {"SSL_CERT_FILE": ca_file}
        async with opened(transport(environ=env, resolver=resolver)) as t:
            reply = await t.request(
                "GET", f"https://api.test:{port}/hello", headers=headers(), max_body=100
            )
    assert reply.body == b"hello"


async def test_proxy_opt_out_connects_directly(ca: trustme.CA, ca_file: str) -> None:
    """With trust_env=False the proxy variables are ignored."""
    async with tls_server(ca, "api.test") as port:
        resolver = MapResolver({"api.test": "127.0.0.1"})
        env = {"HTTPS_PROXY": "http://127.0.0.1:9"}  # would be refused if it were used
        async with opened(
            transport(environ=env, trust_env=False, ca_bundle=ca_file, resolver=resolver)
        ) as t:
            reply = await t.request(
                "GET", f"https://api.test:{port}/hello", headers=headers(), max_body=100
            )
    assert reply.body == b"hello"
