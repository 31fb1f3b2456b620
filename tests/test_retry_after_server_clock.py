"""A ``Retry-After`` date is read on the server's own clock: its answer's ``Date``.

``Retry-After: <HTTP date>`` means "retry at that time of the server's clock". It used to
be compared with this machine's clock, so a server whose clock is an hour ahead turned
"retry in 1 s" into a 3,601 s wait (the read refused as over ``max_retry_after``, and
new creates held), and one an hour behind into no wait at all. When the same answer
carries a ``Date``, the wait is the difference of the two; without one (or with one that
does not parse), this machine's clock is used as before. The gateway is a small aiohttp
server on 127.0.0.1 whose clock is off by ``skew`` seconds: its first task read, or its
first image GET, answers 429/503 with "retry 1 s from now" in its own time.
"""

from __future__ import annotations

import email.utils
import time

import pytest
from aiohttp import web

from zimage_async._parsing import parse_retry_after

from .conftest import _png, loopback_session, serving

TASK_ID = "task-unified-1796285667-skew0001"
ADVICE = 1.0  # seconds the server asks for, on its own clock


def _http_date(unix: float) -> str:
    return email.utils.formatdate(unix, usegmt=True)


def test_a_date_is_read_against_the_answers_own_date() -> None:
    """Retry-After 2 s past the answer's Date: 2 s, whatever this machine's clock says."""
    server_now = time.time() + 3600  # an hour ahead
    wait = parse_retry_after(
        _http_date(server_now + 2), None, now=time.time(), date=_http_date(server_now)
    )
    assert wait == pytest.approx(2.0, abs=1.0)


def test_without_a_date_this_machines_clock_is_used() -> None:
    """No Date, or one that does not parse: the Retry-After date against *now*."""
    now = time.time()
    for date in (None, "yesterday", ""):
        wait = parse_retry_after(_http_date(now + 30), None, now=now, date=date)
        assert wait == pytest.approx(30.0, abs=1.0)


class SkewedGateway:
    """One task; the first read (or image GET) asks to retry 1 s later on a skewed clock."""

    def __init__(self, skew: float, busy: str) -> None:
        self.skew, self.busy = skew, busy
        self.base = ""
        self.times: dict[str, list[float]] = {"read": [], "image": []}
        self.app = web.Application()
        self.app.router.add_post("/apiv1/v1/images/generations", self.create)
        self.app.router.add_get("/apiv1/v1/tasks/{id}", self.read)
        self.app.router.add_get("/img/0.png", self.image)

    def _busy(self, status: int) -> web.Response:
        now = time.time() + self.skew
        headers = {"Date": _http_date(now), "Retry-After": _http_date(now + ADVICE)}
        body = {"error": {"type": "rate_limit_error", "message": "slow down"}}
        return web.json_response(body, status=status, headers=headers)

    async def create(self, request: web.Request) -> web.Response:
        return web.json_response({"id": TASK_ID, "status": "processing", "progress": 50})

    async def read(self, request: web.Request) -> web.Response:
        self.times["read"].append(time.monotonic())
        if self.busy == "read" and len(self.times["read"]) == 1:
            return self._busy(429)
        done = {"id": TASK_ID, "status": "completed", "progress": 100}
        return web.json_response(done | {"results": [f"{self.base}/img/0.png"]})

    async def image(self, request: web.Request) -> web.Response:
        self.times["image"].append(time.monotonic())
        if self.busy == "image" and len(self.times["image"]) == 1:
            return self._busy(503)
        return web.Response(body=_png((64, 64)), content_type="image/png")


@pytest.mark.parametrize("busy", ["read", "image"])
@pytest.mark.parametrize("skew", [3600.0, -3600.0], ids=["ahead", "behind"])
async def test_a_skewed_servers_retry_after_date_is_its_own_one_second(
    skew: float, busy: str
) -> None:
    """Ahead: not refused as an hour's wait; behind: not retried at once. About 1 s each."""
    gateway = SkewedGateway(skew, busy)
    async with serving(gateway.app) as gateway.base:
        zs = loopback_session(gateway.base)
        async with zs:
            result = await (await zs.submit("a cat"))
    assert len(result.images) == 1
    first, second = gateway.times[busy][:2]
    # Both dates are whole seconds, one apart: the wait asked for is exactly 1 s.
    assert second - first >= 0.9 * ADVICE, "retried before the server's time"
    assert second - first < 30, "waited by this machine's clock"
