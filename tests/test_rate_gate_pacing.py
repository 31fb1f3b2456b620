"""After a 429 the session's rate gate paces creates, instead of releasing them in a herd.

A create answered 429 may be sent once more (with its key); a second 429 leaves it
uncertain. So a gather of many submits against a gateway's steady limit must not have
its resends meet that limit again. The loopback gateway here admits a fixed number of
creates in any second (a sliding window) and answers the others with its typed 429 and
``Retry-After: 1``, making no task; the pure tests drive the gate on virtual time.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import random
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from zimage_async import RateLimitError, TaskHandle
from zimage_async._api import RateGate

from .conftest import CompletedHost, _png, loopback_session, serving

#: The gateway family's answer to a create over the rate limit (no task is made).
RATE_LIMITED = {
    "error": {"code": 429, "message": "Rate limit exceeded", "type": "rate_limit_error"}
}


async def _image(request: web.Request) -> web.Response:
    return web.Response(body=_png(), content_type="image/png")


class LimitedHost(CompletedHost):
    """A loopback gateway that admits *limit* creates in any *window* seconds.

    Each create over the limit is answered 429 ``rate_limit_error`` with ``Retry-After:
    1`` and makes no task. ``posts`` counts the POSTs per prompt, ``made`` the tasks.
    """

    def __init__(self, limit: int, *, window: float = 1.0) -> None:
        super().__init__(_image)
        self.limit = limit
        self.window = window
        self.admitted: deque[float] = deque()
        self.posts: Counter[str] = Counter()
        self.made: Counter[str] = Counter()
        self.refused = 0

    async def create(self, request: web.Request) -> web.StreamResponse:
        prompt = (await request.json())["prompt"]
        self.posts[prompt] += 1
        now = time.monotonic()
        while self.admitted and now - self.admitted[0] > self.window:
            self.admitted.popleft()
        if len(self.admitted) >= self.limit:
            self.refused += 1
            return web.json_response(RATE_LIMITED, status=429, headers={"Retry-After": "1"})
        self.admitted.append(now)
        self.made[prompt] += 1
        task_id = f"task-unified-1-{sum(self.made.values())}"
        self.prompts[task_id] = prompt
        return web.json_response({"id": task_id, "status": "pending", "progress": 0})


@pytest.fixture
async def limited() -> AsyncIterator[Callable[[int], Awaitable[LimitedHost]]]:
    """Start LimitedHosts with a given limit per second (each stopped after the test)."""
    async with contextlib.AsyncExitStack() as hosts:

        async def start(limit: int) -> LimitedHost:
            host = LimitedHost(limit)
            host.base = await hosts.enter_async_context(serving(host.app))
            return host

        yield start


async def _submit_all(host: LimitedHost, count: int, *, deadline: float) -> list[object]:
    """Submit *count* prompts at once through one session; return each outcome."""
    prompts = [f"p{i}" for i in range(count)]
    async with loopback_session(host.base) as zs:
        return await asyncio.wait_for(
            asyncio.gather(*(zs.submit(p) for p in prompts), return_exceptions=True),
            deadline,
        )


@pytest.mark.parametrize(
    ("count", "limit"),
    [
        pytest.param(20, 5, id="20-at-5-per-s"),
        pytest.param(60, 20, id="60-at-20-per-s"),
        pytest.param(200, 50, id="200-at-50-per-s"),
    ],
)
async def test_concurrent_submits_against_a_steady_limit_all_get_their_task(
    limited: Callable[[int], Awaitable[LimitedHost]], count: int, limit: int
) -> None:
    """A gather of submits over the gateway's limit ends with a handle for every one.

    No submit ends uncertain: none spends its one resend on a 429 that the limit made
    certain; each prompt is billed exactly once, and sent at most twice.
    """
    host = await limited(limit)
    outcomes = await _submit_all(host, count, deadline=60)
    kinds = Counter(type(outcome).__name__ for outcome in outcomes)
    assert kinds == {"TaskHandle": count}
    assert host.made == {f"p{i}": 1 for i in range(count)}
    assert max(host.posts.values()) <= 2
    assert host.refused > 0  # the limit was met: the herd really was there
    handles = [o for o in outcomes if isinstance(o, TaskHandle)]
    assert len({handle.id for handle in handles}) == count


async def test_a_batch_over_the_limit_finishes_every_item_once(
    limited: Callable[[int], Awaitable[LimitedHost]], tmp_path: Path
) -> None:
    """A batch (whose items wait at the gate before their create) bills each item once."""
    host = await limited(5)
    prompts = [f"b{i}" for i in range(20)]
    async with loopback_session(host.base) as zs:

        async def run() -> Counter[str]:
            async with zs.generate_many(prompts, concurrency=10, output_dir=tmp_path) as batch:
                return Counter(["ok" if it.ok else type(it.error).__name__ async for it in batch])

        outcomes = await asyncio.wait_for(run(), 60)
    assert outcomes == {"ok": 20}
    assert host.made == dict.fromkeys(prompts, 1)
    assert max(host.posts.values()) <= 2


async def test_a_session_without_429_is_never_delayed_by_the_gate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a 429 every create passes the gate at once: it never sleeps there."""
    host = CompletedHost(_image)
    naps: list[float] = []

    async def nap(seconds: float) -> None:
        naps.append(seconds)

    async with serving(host.app) as host.base, loopback_session(host.base) as zs:
        gate = zs._runtime.api.gate
        monkeypatch.setattr(gate, "_sleep", nap)
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(zs.submit(f"q{i}") for i in range(40))), 30
        )
        assert gate.paused_for == 0.0
    assert len(outcomes) == 40
    assert len(host.prompts) == 40
    assert naps == []


# -- the gate alone, on virtual time ---------------------------------------------------


class VirtualTime:
    """A clock and a sleep for the gate: time moves only when every task sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(0.0, seconds), next(self._order), future))
        await future

    async def run(self, *coros: Coroutine[Any, Any, None], steps: int = 10_000) -> None:
        """Run *coros* together, waking sleepers in time order, for *steps* wake-ups at most."""
        tasks = [asyncio.ensure_future(coro) for coro in coros]
        for _ in range(steps):
            for _ in range(10):  # let every woken task run to its next sleep
                await asyncio.sleep(0)
            if all(task.done() for task in tasks):
                break
            assert self._sleepers, "a task waits on something other than the clock"
            wake, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, wake)
            future.set_result(None)
        else:
            pytest.fail(f"not done after {steps} wake-ups")
        for task in tasks:
            task.result()


def _gate(time_: VirtualTime, **options: Any) -> RateGate:
    return RateGate(rng=random.Random(0), clock=time_.clock, sleep=time_.sleep, **options)


def _most_in_any_window(times: list[float], window: float) -> int:
    """The most of *times* within any closed span of *window* seconds."""
    ordered = sorted(times)
    return max(
        (sum(1 for t in ordered if start <= t <= start + window) for start in ordered), default=0
    )


async def _admit_all(time_: VirtualTime, gate: RateGate, count: int) -> list[float]:
    """Let *count* creates (each in its own task) pass the gate; return when each went."""
    times: list[float] = []

    async def create() -> None:
        await gate.wait()
        times.append(time_.now)

    await time_.run(*(create() for _ in range(count)))
    return times


async def test_without_answers_the_gate_probes_once_per_advice() -> None:
    """After a 429 with nothing accepted before it, one create goes per advised interval.

    The waiting creates are not released together when the pause ends: at most one in
    any advised second (the probe), and each still goes in its turn.
    """
    time_ = VirtualTime()
    gate = _gate(time_)
    gate.pause(1.0)
    times = await _admit_all(time_, gate, 4)
    assert len(times) == 4
    assert min(times) >= 1.0  # the pause itself is never cut
    assert _most_in_any_window(times, 1.0) == 1
    assert max(times) < 1.0 + 4 * 1.5  # paced, not stalled


async def test_the_gate_admits_the_learned_rate_per_advised_interval() -> None:
    """Five creates accepted before the 429s: afterwards five go per advised second, no more.

    This is the admission schedule of a herd of fifteen 429s (each to be resent) against a
    limit of five a second: none goes during the pause, none in a second already full.
    """
    time_ = VirtualTime()
    gate = _gate(time_)
    for _ in range(5):
        gate.accepted()
    time_.now = 0.02
    for _ in range(15):
        gate.pause(1.0)
    times = await _admit_all(time_, gate, 15)
    assert len(times) == 15
    assert min(times) >= 1.02
    assert _most_in_any_window(times, 1.0) <= 5
    assert _most_in_any_window(times, 1.5) >= 5  # the learned rate, not the probe's
    assert max(times) < 1.02 + 15 / 5 * 1.5  # all gone within about three seconds


async def test_a_new_429_while_pacing_pauses_again_and_relearns() -> None:
    """A 429 during pacing holds the creates for its advice and paces at the new rate."""
    time_ = VirtualTime()
    gate = _gate(time_)
    for _ in range(4):
        gate.accepted()
    gate.pause(1.0)
    first = await _admit_all(time_, gate, 2)
    assert _most_in_any_window(first, 1.0) <= 4
    # Only one of them was accepted; the other met a 429.
    gate.accepted()
    gate.pause(1.0)
    again = time_.now
    later = await _admit_all(time_, gate, 3)
    assert min(later) >= again + 1.0
    assert _most_in_any_window(later, 1.0) == 1


async def test_after_a_quiet_stretch_the_gate_opens_fully() -> None:
    """With no 429 for a while and nobody waiting, creates pass at once again (fast path)."""
    time_ = VirtualTime()
    gate = _gate(time_)
    gate.pause(1.0)
    await _admit_all(time_, gate, 2)
    time_.now += 60.0
    burst = await _admit_all(time_, gate, 10)
    assert burst == [time_.now] * 10  # all at once: no pacing any more
    with pytest.raises(StopIteration):  # the wait ends on its first step: nothing awaited
        gate.wait().send(None)


async def test_a_batch_wait_before_the_create_takes_one_turn() -> None:
    """A batch's wait before its create and the create's own admission take one turn.

    A resend in the same task takes a turn of its own.
    """
    time_ = VirtualTime()
    gate = _gate(time_)
    gate.pause(1.0)
    went: list[tuple[str, float]] = []

    async def item(name: str) -> None:
        await gate.wait()  # the batch's wait before it begins the create
        await gate.admit()  # the create's first send
        went.append((name, time_.now))

    async def resent() -> None:
        await gate.admit()
        await gate.admit()  # its resend: not let through on the first send's turn
        went.append(("resend", time_.now))

    await time_.run(item("a"))
    await time_.run(resent())
    (_, a), (_, resend) = went
    assert a == pytest.approx(1.0)
    assert resend - a > 2.0  # two more turns of about one second each


async def test_pacing_keeps_the_earlier_pause_and_the_refusal_of_overlong_advice() -> None:
    """An earlier pause is never cut; an overlong advice refuses creates, then opens."""
    time_ = VirtualTime()
    gate = _gate(time_, max_pause=120.0)
    gate.pause(2.0)
    gate.pause(1.0)
    assert gate.paused_for == 2.0
    gate.pause(999_999.0)
    with pytest.raises(RateLimitError):
        await gate.wait()
    time_.now = 121.0
    times = await _admit_all(time_, gate, 3)
    assert times == [121.0] * 3


async def test_a_task_read_429_holds_creates_without_pacing_them() -> None:
    """A 429 on a task read holds creates for its advice, then lets them all go."""
    time_ = VirtualTime()
    gate = _gate(time_)
    gate.pause(1.0, pace=False)
    times = await _admit_all(time_, gate, 5)
    assert min(times) >= 1.0
    assert max(times) <= 1.0 + 0.1 + 1e-9  # the old release, with its little jitter
