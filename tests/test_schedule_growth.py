"""A growth factor so large that its powers overflow a float: the delays stop at their cap.

``PollSchedule(wait_exp_base=1e200)`` and ``RetryPolicy(wait_exp_base=1e200)`` are
accepted (the rule is a finite number above 0), but ``1e200 ** 2`` overflows: a wait
used to end in a bare ``OverflowError`` at its third poll or retry, on a task already
billed. A delay whose growth overflows is the cap, as any other too long one. The
gateway is a small aiohttp server on 127.0.0.1: its task reads answer ``pending`` (no
estimate) or 503 a few times, then ``completed``.
"""

from __future__ import annotations

import random

import pytest
from aiohttp import web

from zimage_async import InvalidRequestError, PollSchedule, RetryPolicy

from .conftest import FAST_POLL, FAST_RETRY, _png, loopback_session, serving

HUGE = 1e200  # its square overflows a float
TASK_ID = "task-unified-1796285667-grow0001"


@pytest.mark.parametrize("base", [HUGE, 10**200], ids=["float", "int"])
def test_poll_delays_whose_growth_overflows_are_the_cap(base: float) -> None:
    """The 64th poll's delay with a base of 1e200 (or an int as large) is wait_max."""
    schedule = PollSchedule(wait_min=0.01, wait_max=0.05, wait_exp_base=base, jitter=0.0)
    rng = random.Random(1)
    delays = [schedule.next_delay(attempt=n, seconds_left=None, rng=rng) for n in (1, 2, 3, 64, 99)]
    assert delays == [0.01, 0.05, 0.05, 0.05, 0.05]


@pytest.mark.parametrize("base", [HUGE, 10**200], ids=["float", "int"])
def test_retry_delays_whose_growth_overflows_are_the_cap(base: float) -> None:
    """The retry delays with a base of 1e200 (or an int as large) stop at wait_max."""
    policy = RetryPolicy(wait_initial=0.01, wait_max=0.05, wait_exp_base=base, jitter=0.0)
    rng = random.Random(1)
    assert [policy.delay(n, rng=rng) for n in (1, 2, 3, 64, 99)] == [0.01, 0.05, 0.05, 0.05, 0.05]


class SlowGateway:
    """Creates one task; its reads answer *early* (``pending`` or ``503``) *times*, then done."""

    def __init__(self, early: str, times: int) -> None:
        self.early, self.times, self.reads = early, times, 0
        self.base = ""
        self.app = web.Application()
        self.app.router.add_post("/apiv1/v1/images/generations", self.create)
        self.app.router.add_get("/apiv1/v1/tasks/{id}", self.read)
        self.app.router.add_get("/img/0.png", self.image)

    async def create(self, request: web.Request) -> web.Response:
        return web.json_response({"id": TASK_ID, "status": "pending", "progress": 0})

    async def read(self, request: web.Request) -> web.Response:
        self.reads += 1
        if self.reads <= self.times:
            if self.early == "503":
                return web.Response(status=503, text="busy")
            return web.json_response({"id": TASK_ID, "status": "pending", "progress": 0})
        done = {"id": TASK_ID, "status": "completed", "progress": 100}
        return web.json_response(done | {"results": [f"{self.base}/img/0.png"]})

    async def image(self, request: web.Request) -> web.Response:
        return web.Response(body=_png((64, 64)), content_type="image/png")


async def test_a_wait_with_a_huge_poll_growth_ends_with_the_image() -> None:
    """Polled 6 times pending without an estimate: each delay is wait_max, no OverflowError."""
    gateway = SlowGateway("pending", times=6)
    poll = PollSchedule(wait_min=0.01, wait_max=0.05, wait_exp_base=HUGE, timeout=20.0)
    async with serving(gateway.app) as gateway.base:
        zs = loopback_session(gateway.base, poll=poll, retry=FAST_RETRY)
        async with zs:
            result = await (await zs.submit("a cat"))
    assert len(result.images) == 1
    assert gateway.reads == 7


async def test_a_read_retried_with_a_huge_retry_growth_ends_with_the_image() -> None:
    """A read answered 503 three times is retried at wait_max, no OverflowError."""
    gateway = SlowGateway("503", times=3)
    retry = RetryPolicy(wait_initial=0.01, wait_max=0.05, wait_exp_base=HUGE, max_attempts=5)
    async with serving(gateway.app) as gateway.base:
        zs = loopback_session(gateway.base, poll=FAST_POLL, retry=retry)
        async with zs:
            result = await (await zs.submit("a cat"))
    assert len(result.images) == 1
    assert gateway.reads == 4


@pytest.mark.parametrize("policy", [PollSchedule, RetryPolicy])
@pytest.mark.parametrize("base", [0.5, 0.999])
def test_a_growth_factor_below_one_is_refused(policy: type, base: float) -> None:
    """Below 1 the delays would shrink after each try: hammering a struggling service."""
    with pytest.raises(InvalidRequestError) as caught:
        policy(wait_exp_base=base)
    assert caught.value.field == "wait_exp_base"
    assert "1 or more" in caught.value.rule


@pytest.mark.parametrize("policy", [PollSchedule, RetryPolicy])
def test_a_growth_factor_of_one_keeps_the_delay(policy: type) -> None:
    """1 is taken: the same delay each time."""
    assert policy(wait_exp_base=1).wait_exp_base == 1
