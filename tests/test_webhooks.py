"""The callback receiver: zero trust in the body, fast replies, handles woken by callbacks.

Everything runs over real HTTP on 127.0.0.1: the emulator delivers its callbacks to a
small aiohttp app of the test's own, in which the receiver is mounted as a route.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from zimage_async import (
    CallbackReceiver,
    InvalidRequestError,
    Session,
    TaskStatus,
)
from zimage_async._hints import HintBoard, read_hint
from zimage_async._polling import _hinted_naps
from zimage_async._validation import validate_receiver_url
from zimage_async.emulator import Emulator, ManualClock

from .conftest import FAST_POLL, FAST_RETRY, serving

#: While a callback is expected, polls come this many times later: with FAST_POLL's
#: delays of 10-50 ms that is 10-50 s, so within a test only a callback can finish a task.
CALLBACK_ONLY = 1000.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Hooks:
    """The test's own web app, with the receiver at ``/hooks/zimage``.

    ``fail_before`` answers that many deliveries with 500 before the receiver sees them;
    ``fail_after`` lets the receiver take that many, then answers 500 anyway (a reply
    lost on the way back, so the provider delivers again).
    """

    def __init__(self, receiver: CallbackReceiver) -> None:
        self.receiver = receiver
        self.url = ""
        self.fail_before = 0
        self.fail_after = 0
        self.statuses: list[int] = []
        self.delivered = asyncio.Event()
        self.app = web.Application(middlewares=[self.middleware])
        self.app.router.add_post("/hooks/zimage", receiver.receive)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.fail_before > 0:
            self.fail_before -= 1
            reply: web.StreamResponse = web.Response(status=500, text="down")
        else:
            reply = await handler(request)
            if self.fail_after > 0:
                self.fail_after -= 1
                reply = web.Response(status=500, text="reply lost")
        self.statuses.append(reply.status)
        if 200 <= reply.status < 300:
            self.delivered.set()
        return reply


@pytest.fixture
async def cb_emulator() -> AsyncIterator[Emulator]:
    """An emulator that may call back to loopback, retrying after 10, 20 and 40 ms."""
    async with Emulator(
        task_duration=0.05,
        seed=1,
        callback_mode="permissive",
        callback_retry_delays=(0.01, 0.02, 0.04),
    ) as emu:
        yield emu


@pytest.fixture
async def hooks() -> AsyncIterator[Hooks]:
    """The test's web app with a receiver mounted, listening on 127.0.0.1."""
    hooks = Hooks(CallbackReceiver())
    async with serving(hooks.app) as base:
        hooks.url = f"{base}/hooks/zimage"
        yield hooks


def _session(
    emulator: Emulator, hooks: Hooks, *, factor: float = CALLBACK_ONLY, **options: object
) -> Session:
    return Session(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        poll=FAST_POLL,
        retry=FAST_RETRY,
        seed=1,
        callbacks=hooks.receiver,
        callback_url=hooks.url,
        callback_poll_factor=factor,
        **options,  # type: ignore[arg-type]
    )


async def _post(url: str, body: bytes) -> int:
    async with aiohttp.ClientSession() as client, client.post(url, data=body) as reply:
        await reply.read()
        return reply.status


# -- the pure parts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(b'{"id": "task-unified-1-a"}', "task-unified-1-a", id="minimal"),
        pytest.param(b'{"id": "task-unified-1-a", "status": 7}', "task-unified-1-a", id="odd"),
        pytest.param(b'{"id": "task-unified-1-a/../x"}', None, id="path-in-id"),
        pytest.param(b'{"id": 5}', None, id="number-id"),
        pytest.param(b'["task-unified-1-a"]', None, id="not-an-object"),
        pytest.param(b"{", None, id="cut-short"),
        pytest.param(b"[" * 100_000, None, id="deep-nesting"),
        pytest.param(b"\xff\xfe", None, id="not-utf8"),
    ],
)
def test_read_hint(body: bytes, expected: str | None) -> None:
    """Only a JSON object's valid task id is taken from a callback body."""
    assert read_hint(body) == expected


@given(st.binary(max_size=300))
def test_read_hint_never_raises(body: bytes) -> None:
    """Any bytes at all give an id or None, never an exception."""
    hint = read_hint(body)
    assert hint is None or hint.startswith("task-unified-")


@given(
    st.from_regex(r"task-unified-[A-Za-z0-9_-]{1,40}", fullmatch=True),
    st.dictionaries(st.sampled_from(["status", "results", "progress", "error"]), st.integers()),
)
def test_read_hint_takes_only_the_id(task_id: str, noise: dict[str, int]) -> None:
    """Whatever else a body holds, the hint is its id."""
    assert read_hint(json.dumps({**noise, "id": task_id}).encode()) == task_id


def test_hint_board_keeps_hints_for_hint_ttl() -> None:
    """A hint nobody waits on is kept for hint_ttl seconds, then forgotten."""
    now = SimpleNamespace(value=0.0)
    board = HintBoard(hint_ttl=5.0, clock=lambda: now.value)
    assert board.post("task-unified-1-a") is False
    now.value = 4.9
    assert board.recent("task-unified-1-a")
    now.value = 5.0
    assert not board.recent("task-unified-1-a")


def test_a_flood_of_forged_hints_does_not_evict_a_genuine_one() -> None:
    """Ten times max_hints forged ids later, the genuine early hint is still kept."""
    board = HintBoard(max_hints=64)
    board.post("task-unified-1-genuine")
    for n in range(640):
        board.post(f"task-unified-1-forged{n}")
    assert board.recent("task-unified-1-genuine")


def test_hints_within_capacity_are_told_apart() -> None:
    """Within max_hints ids, an id never posted does not look hinted."""
    board = HintBoard(max_hints=256)
    for n in range(256):
        board.post(f"task-unified-1-posted{n}")
    looked = [board.recent(f"task-unified-1-other{n}") for n in range(1000)]
    assert sum(looked) <= 10  # the table's false-positive rate here is about 0.2 %


async def test_hint_board_wakes_a_watch_opened_after_the_hint() -> None:
    """A watch opened after a kept hint starts out woken, and the hint is consumed."""
    board = HintBoard()
    board.post("task-unified-1-a")
    with board.watch("task-unified-1-a") as watch:
        assert await watch.wait(0) is True
        assert await watch.wait(0) is False
    assert board.watched == 0


@pytest.mark.parametrize(
    ("url", "base_url", "accepted"),
    [
        pytest.param("http://127.0.0.1:81/h", "http://127.0.0.1:80/apiv1", True, id="emulator"),
        pytest.param("http://localhost/h", "http://[::1]:80/apiv1", True, id="localhost"),
        pytest.param("https://example.com/h", "https://ai.odkkk.com/apiv1", True, id="public"),
        pytest.param("http://127.0.0.1/h", "https://ai.odkkk.com/apiv1", False, id="prod-loop"),
        pytest.param("http://example.com/h", "http://127.0.0.1/apiv1", False, id="plain-http"),
        pytest.param("http://127.0.0.1@evil.example/", "http://127.0.0.1/", False, id="userinfo"),
        pytest.param("http://127.0.0.1:99999/", "http://127.0.0.1/", False, id="bad-port"),
        pytest.param("ftp://127.0.0.1/", "http://127.0.0.1/", False, id="ftp"),
    ],
)
def test_receiver_url_allows_loopback_only_for_a_loopback_api(
    url: str, base_url: str, accepted: bool
) -> None:
    """A loopback callback URL is accepted only while the API itself is on loopback."""
    if accepted:
        assert validate_receiver_url(url, base_url=base_url) == url
    else:
        with pytest.raises(InvalidRequestError, match="callback_url"):
            validate_receiver_url(url, base_url=base_url)


@pytest.mark.parametrize("factor", [pytest.param(0.5, id="below-1"), pytest.param(-1, id="neg")])
def test_callback_poll_factor_must_not_shorten_polls(factor: float) -> None:
    """A callback_poll_factor below 1 is refused: it would poll more, not less."""
    with pytest.raises(InvalidRequestError, match="callback_poll_factor"):
        Session(api_key="k", base_url="https://api.example", callback_poll_factor=factor)


def test_callback_url_needs_a_receiver() -> None:
    """Session(callback_url=...) without callbacks= is refused: nothing would hear it."""
    with pytest.raises(InvalidRequestError, match="callbacks="):
        Session(api_key="k", base_url="https://api.example", callback_url="https://h.example/")


# -- the receiver over HTTP -------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param(b'{"id": "task-unified-1-nobody"}', 202, id="unknown-id"),
        pytest.param(b'{"id": "nope"}', 400, id="invalid-id"),
        pytest.param(b"not json", 400, id="malformed"),
        pytest.param(b" " * 70_000, 413, id="oversized"),
    ],
)
async def test_receiver_replies(body: bytes, status: int) -> None:
    """Well-formed hints get 202 whether known or not; the rest a 4xx; none is acted on."""
    receiver = CallbackReceiver()
    async with receiver.serve() as url:
        assert await _post(url, body) == status
    assert (receiver.accepted, receiver.refused) == ((1, 0) if status == 202 else (0, 1))


async def test_receiver_refuses_a_chunked_body_over_the_limit() -> None:
    """A body without Content-Length is still cut off at max_body_bytes."""
    receiver = CallbackReceiver(max_body_bytes=100)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b'{"id": "task-unified-1-a"}'

    async with (
        receiver.serve() as url,
        aiohttp.ClientSession() as client,
        client.post(url, data=chunks()) as reply,
    ):
        assert reply.status == 413


async def test_receiver_mounts_as_a_sub_application() -> None:
    """receiver.app() serves POST / wherever it is mounted."""
    receiver = CallbackReceiver()
    outer = web.Application()
    outer.add_subapp("/hooks/zimage", receiver.app())
    async with serving(outer) as base:
        assert await _post(f"{base}/hooks/zimage/", b'{"id": "task-unified-1-a"}') == 202
    assert receiver.accepted == 1


# -- handles finished by callbacks ------------------------------------------------------


async def test_callback_finishes_the_handle_with_one_task_fetch(
    cb_emulator: Emulator, hooks: Hooks
) -> None:
    """The callback wakes the handle, which fetches the task once and downloads it."""
    async with _session(cb_emulator, hooks) as zs:
        handle = await zs.submit("a callback cat")
        result = await handle.result(timeout=20)
    assert result.task.status is TaskStatus.COMPLETED
    assert cb_emulator.ledger[0].request_body["callback_url"] == hooks.url
    assert cb_emulator.request_counts["task"] == 1
    assert [a.delivered for a in cb_emulator.callback_attempts] == [True]
    assert hooks.receiver.watched == 0  # the handle stopped watching


async def test_callback_driven_handle_fetches_less_than_a_polling_one(
    hooks: Hooks,
) -> None:
    """On a 0.5 s task, a callback-driven handle makes 1 task GET; a polling one many."""
    async with Emulator(task_duration=0.5, seed=2, callback_mode="permissive") as emu:
        async with Session(
            api_key=emu.api_key, base_url=emu.base_url, poll=FAST_POLL, retry=FAST_RETRY
        ) as polling:
            await polling.generate("polled")
        polled = emu.request_counts["task"]
        async with _session(emu, hooks) as zs:
            await zs.generate("called back", timeout=20)
        called_back = emu.request_counts["task"] - polled
    print(f"task GETs: polling {polled}, callback {called_back}")
    assert called_back == 1
    assert polled > called_back


async def test_a_batch_reads_no_more_than_await_with_callbacks(hooks: Hooks) -> None:
    """With a callback receiver, a batch item makes as few task GETs as ``await handle``."""
    async with Emulator(task_duration=0.5, seed=2, callback_mode="permissive") as emu:
        async with _session(emu, hooks) as zs:
            await zs.generate("awaited", timeout=20)
            awaited = emu.request_counts["task"]
            async with zs.generate_many(["batched"], timeout=20) as batch:
                items = [item async for item in batch]
        batched = emu.request_counts["task"] - awaited
    assert items[0].ok
    assert awaited == 1
    assert batched == awaited


async def test_updates_wake_on_a_callback(cb_emulator: Emulator, hooks: Hooks) -> None:
    """``updates()`` uses the same wakeable loop: one task GET for a called-back task."""
    async with _session(cb_emulator, hooks) as zs:
        handle = await zs.submit("watched")
        async with contextlib.aclosing(handle.updates(timeout=20)) as updates:
            seen = [task.status async for task in updates]
    assert seen[-1] is TaskStatus.COMPLETED
    assert cb_emulator.request_counts["task"] == 1


async def test_duplicate_deliveries_change_nothing(cb_emulator: Emulator, hooks: Hooks) -> None:
    """Deliveries repeated because replies were lost, and replays, cost no extra fetch."""
    hooks.fail_after = 2  # the receiver takes them, but the provider sees 500 twice
    async with _session(cb_emulator, hooks) as zs:
        handle = await zs.submit("said three times")
        first = await handle.result(timeout=20)
        await cb_emulator.wait_for_callbacks()
        body = json.dumps(cb_emulator.task(handle.id)).encode()
        assert await _post(hooks.url, body) == 202  # and a replay, for good measure
        again = await handle.result(timeout=20)
    assert again is first
    assert hooks.statuses == [500, 500, 202, 202]
    assert hooks.receiver.accepted == 4
    assert cb_emulator.request_counts["task"] == 1


async def test_receiver_answering_500_gets_the_callback_again(
    cb_emulator: Emulator, hooks: Hooks
) -> None:
    """A 500 from the receiver's app makes the emulator retry; the retry finishes the task."""
    hooks.fail_before = 1
    async with _session(cb_emulator, hooks) as zs:
        result = await zs.generate("retried", timeout=20)
    assert result.task.status is TaskStatus.COMPLETED
    assert [a.status for a in cb_emulator.callback_attempts] == [500, 202]
    assert cb_emulator.request_counts["task"] == 1


async def test_lost_callback_falls_back_to_slow_polling(
    cb_emulator: Emulator, hooks: Hooks
) -> None:
    """A callback that never arrives still ends in a result, through stretched polling."""
    hooks.fail_before = 4  # every attempt fails: the callback is lost
    async with _session(cb_emulator, hooks, factor=10.0) as zs:
        result = await zs.generate("lost in the post", timeout=20)
        await cb_emulator.wait_for_callbacks()
    assert result.task.status is TaskStatus.COMPLETED
    assert hooks.receiver.accepted == 0
    assert [a.delivered for a in cb_emulator.callback_attempts] == [False] * 4
    assert cb_emulator.request_counts["task"] >= 1


async def test_callback_before_submit_returned_is_not_lost(
    cb_emulator: Emulator, hooks: Hooks
) -> None:
    """A callback that lands before the create call's answer is read still wakes the handle."""

    async def hold_the_answer(
        session: aiohttp.ClientSession, context: SimpleNamespace, params: object
    ) -> None:
        if getattr(params, "method", "") == "POST":
            await hooks.delivered.wait()  # the callback has been received

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(hold_the_answer)
    async with (
        aiohttp.ClientSession(trace_configs=[trace]) as http,
        _session(cb_emulator, hooks, http_session=http) as zs,
    ):
        handle = await zs.submit("a blink [[duration:0]]")
        assert hooks.receiver.accepted == 1  # before submit returned
        result = await handle.result(timeout=20)
    assert result.task.status is TaskStatus.COMPLETED
    assert cb_emulator.request_counts["task"] == 1


class _Seen(logging.Handler):
    """Sets an event when the handle logs that it fetched a task (after a hint)."""

    def __init__(self, task_id: str) -> None:
        super().__init__(logging.DEBUG)
        self.task_id = task_id
        self.fetched = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        if record.msg.startswith("task %s is") and args[:1] == (self.task_id,):
            self.fetched.set()


async def test_forged_completion_is_ignored(hooks: Hooks) -> None:
    """A forged 'completed' body only makes the handle look; the API's answer decides."""
    clock = ManualClock(start=time.time())  # real time: the image links carry an expiry
    async with (
        Emulator(clock=clock, task_duration=5.0, seed=3, callback_mode="permissive") as emu,
        _session(emu, hooks) as zs,
    ):
        handle = await zs.submit("not done yet")
        waiter = asyncio.create_task(handle.result(timeout=20))
        seen = _Seen(handle.id)
        logger = logging.getLogger("zimage_async")
        logger.addHandler(seen)
        old_level = logger.level
        logger.setLevel(logging.DEBUG)
        try:
            forged = {
                "id": handle.id,
                "status": "completed",
                "progress": 100,
                "results": ["http://127.0.0.1:9/evil.png"],
            }
            assert await _post(hooks.url, json.dumps(forged).encode()) == 202
            await seen.fetched.wait()
        finally:
            logger.removeHandler(seen)
            logger.setLevel(old_level)
        assert not handle.is_done
        assert handle.status in (TaskStatus.PENDING, TaskStatus.PROCESSING)
        assert emu.request_counts["task"] == 1
        clock.advance(5.0)  # now it really completes, and the real callback comes
        result = await waiter
        origin = emu.image_base_url
    assert result.task.results[0].startswith(origin)
    assert emu.request_counts["task"] == 2
    assert [a.delivered for a in emu.callback_attempts] == [True]


def test_webhook_example_runs_offline() -> None:
    """examples/webhook_server.py serves three images, each finished by its callback."""
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZIMAGE_")}
    env["PYTHONPATH"] = f"{root}{os.pathsep}{env.get('PYTHONPATH', '')}"
    result = subprocess.run(  # noqa: S603 - a fixed argument list
        [sys.executable, "-W", "error", str(root / "examples" / "webhook_server.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "3 images, 3 task fetches, 3 callbacks received" in result.stdout


# -- cancellation while a hint arrives ---------------------------------------------------


async def test_a_watch_cancelled_as_a_hint_arrives_stays_cancelled() -> None:
    """A cancel in the same loop turn as the hint that wakes the watch is not swallowed."""
    board = HintBoard()
    with board.watch("task-unified-1-a") as watch:
        waiting = asyncio.ensure_future(watch.wait(30))
        await asyncio.sleep(0)  # the watch waits

        def hint_and_cancel() -> None:
            board.post("task-unified-1-a")
            waiting.cancel()

        asyncio.get_running_loop().call_soon(hint_and_cancel)
        done, _ = await asyncio.wait({waiting}, timeout=5)
    assert done == {waiting}
    assert waiting.cancelled()


async def test_a_wait_cancelled_as_a_callback_hint_arrives_stays_cancelled(
    cb_emulator: Emulator, hooks: Hooks
) -> None:
    """``handle.wait()`` cancelled in the turn a hint wakes its nap ends cancelled, at once."""
    async with _session(cb_emulator, hooks) as zs:
        handle = await zs.submit("a long nap [[duration:30]]")
        waiting = asyncio.ensure_future(handle.wait(timeout=20))
        for _ in range(200):  # until the wait naps, watching for hints (at most 2 s)
            if hooks.receiver.watched:
                break
            await asyncio.sleep(0.01)
        assert hooks.receiver.watched == 1

        def hint_and_cancel() -> None:
            hooks.receiver._board.post(handle.id)
            waiting.cancel()

        asyncio.get_running_loop().call_soon(hint_and_cancel)
        done, _ = await asyncio.wait({waiting}, timeout=5)
        assert done == {waiting}
        assert waiting.cancelled()
        assert hooks.receiver.watched == 0


async def test_a_hint_never_makes_a_nap_longer_than_the_schedule_asked() -> None:
    """After a hint, the spacing between looks (``wait_min``) is kept, within the nap.

    A nap shorter than the spacing (the last one before a deadline, or a first look due
    soon after submission) still ends when the schedule said, hint or not.
    """
    board = HintBoard()
    now = [100.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    board.post("task-unified-1-a")  # a hint is waiting: the nap wakes at once
    with _hinted_naps(
        board, "task-unified-1-a", sleep=sleep, clock=lambda: now[0], spacing=1.0
    ) as nap:
        await nap(0.05)
    assert sum(slept) <= 0.05


async def test_recovered_handles_poll_at_the_normal_pace(
    cb_emulator: Emulator, hooks: Hooks, tmp_path: Path
) -> None:
    """A task recovered from the journal may have no callback: it is polled as usual.

    It was made by a session without a callback URL, so no callback will come; the
    recovering session's receiver stretched its naps (here a thousandfold) all the same.
    """
    journal = tmp_path / "j.sqlite"
    async with Session(
        api_key=cb_emulator.api_key, base_url=cb_emulator.base_url, journal=journal
    ) as first:
        await first.submit("made without a callback")
    async with _session(cb_emulator, hooks, journal=journal) as zs:
        (handle,) = await zs.recover()
        task = await handle.wait(timeout=10)
    assert task.status is TaskStatus.COMPLETED
    assert hooks.receiver.accepted == 0
