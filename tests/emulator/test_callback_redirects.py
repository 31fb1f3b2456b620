"""Callback delivery does not follow a receiver's redirect: a 3xx is not delivered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
from aiohttp import web

if TYPE_CHECKING:
    from tests.emulator.conftest import ApiFactory


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, int(runner.addresses[0][1])


class Hosts:
    """A receiver answering every POST with a redirect to a second loopback server."""

    def __init__(self) -> None:
        self.status = 307
        self.redirected: list[str] = []
        self.target_hits: list[tuple[str, str]] = []
        self.url = ""
        self.target_url = ""

    async def redirect(self, request: web.Request) -> web.Response:
        await request.read()
        self.redirected.append(request.path)
        return web.Response(status=self.status, headers={"Location": self.target_url})

    async def target(self, request: web.Request) -> web.Response:
        await request.read()
        self.target_hits.append((request.method, request.path))
        return web.Response(status=200)


@pytest.fixture
async def hosts() -> AsyncIterator[Hosts]:
    hosts = Hosts()
    target_app = web.Application()
    target_app.router.add_route("*", "/{path:.*}", hosts.target)
    receiver_app = web.Application()
    receiver_app.router.add_post("/hook", hosts.redirect)
    target, target_port = await _serve(target_app)
    receiver, receiver_port = await _serve(receiver_app)
    hosts.target_url = f"http://127.0.0.1:{target_port}/elsewhere"
    hosts.url = f"http://127.0.0.1:{receiver_port}/hook"
    try:
        yield hosts
    finally:
        await receiver.cleanup()
        await target.cleanup()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_not_followed_and_counts_as_not_delivered(
    api_factory: ApiFactory, hosts: Hosts, status: int
) -> None:
    """Each attempt records the 3xx, is retried, and nothing reaches the redirect's target."""
    hosts.status = status
    api = await api_factory(callback_retry_delays=(0.0, 0.0))
    await api.create_task(callback_url=hosts.url)
    await asyncio.wait_for(api.emulator.wait_for_callbacks(), timeout=10.0)
    attempts = api.emulator.callback_attempts
    assert [(a.attempt, a.status, a.delivered) for a in attempts] == [
        (1, status, False),
        (2, status, False),
        (3, status, False),
    ]
    assert all(a.url == hosts.url for a in attempts)
    assert hosts.redirected == ["/hook"] * 3
    assert hosts.target_hits == []
