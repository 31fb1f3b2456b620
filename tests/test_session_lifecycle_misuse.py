"""A Session's life misused: a close cut short, a second open, a close from a later loop.

* ``close()`` cancelled part-way (a second Ctrl-C at shutdown, a task group cancelling the
  end of ``async with``, ``asyncio.wait_for(zs.close(), t)``) used to drop its references
  to the pools it had not closed yet: they leaked ("Unclosed client session"), and a
  second ``close()`` found nothing left to close.
* Opening or entering a Session already open was allowed, and the inner ``async with``
  closed the caller's session under it.
* A Session closed from a new event loop after its own loop ended was marked closed, but
  the first loop's sockets stayed open ("unclosed transport").
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trustme

from zimage_async import PollSchedule, RetryPolicy, Session, SessionState
from zimage_async._redaction import RedactedHeaders
from zimage_async._transport import Transport
from zimage_async.emulator import Emulator

from ._proxies import tls_server

QUICK = PollSchedule(wait_min=0.01, wait_max=0.05, jitter=0.0, timeout=20.0)
FAST_RETRY = RetryPolicy(wait_initial=0.01, wait_max=0.05, max_attempts=5)
#: Bounds every wait of these tests: each step takes milliseconds when it works.
BOUND = 10.0
T = TypeVar("T")


def _session(emu: Emulator, **options: Any) -> Session:
    return Session(
        api_key=emu.api_key, base_url=emu.base_url, poll=QUICK, retry=FAST_RETRY, **options
    )


def _resource_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message)[:90] for w in caught if issubclass(w.category, ResourceWarning)]


@contextmanager
def _recording() -> Iterator[list[warnings.WarningMessage]]:
    """Record every warning (ResourceWarnings of objects collected here included)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
        gc.collect()


async def _collected() -> None:
    """Collect the garbage, let the loop run the callbacks that frees, and collect again."""
    gc.collect()
    await asyncio.sleep(0.05)
    gc.collect()


# -- 1. a close() cancelled part-way ------------------------------------------------------


async def _used_session(emu: Emulator) -> Session:
    """An open session with a connection in each of its pools (creates, reads, images)."""
    zs = _session(emu)
    await zs.open()
    await asyncio.wait_for(zs.generate("a cat"), BOUND)
    await asyncio.wait_for(zs.get_task((await zs.submit("a dog")).id), BOUND)
    return zs


async def _cancelled_close(zs: Session, steps: int, *, again_after: int | None = None) -> None:
    """Start ``zs.close()``, cancel it after *steps* loop steps (and *again_after* more)."""
    closing = asyncio.ensure_future(zs.close())
    for _ in range(steps):
        await asyncio.sleep(0)
    assert closing.cancel(), "the close ended before the test could cancel it"
    if again_after is not None:
        for _ in range(again_after):
            await asyncio.sleep(0)
        closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(closing), BOUND)


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 6])
async def test_a_close_cancelled_part_way_still_closes_every_pool(steps: int) -> None:
    """The cancellation reaches the caller, and no pool is left open (no ResourceWarning)."""
    async with Emulator(task_duration=0.05) as emu:
        with _recording() as caught:
            zs = await _used_session(emu)
            await _cancelled_close(zs, steps)
            assert zs.state is SessionState.CLOSED
            del zs
            await _collected()
        assert _resource_warnings(caught) == []


async def test_a_close_cancelled_twice_still_closes_every_pool() -> None:
    """Cancelled, then cancelled again while it goes on closing: every pool still closes."""
    async with Emulator(task_duration=0.05) as emu:
        with _recording() as caught:
            zs = await _used_session(emu)
            await _cancelled_close(zs, 1, again_after=1)
            del zs
            await _collected()
        assert _resource_warnings(caught) == []


@pytest.mark.parametrize("steps", [1, 3])
async def test_closing_again_after_a_cancelled_close_returns_with_nothing_left_open(
    steps: int,
) -> None:
    """The second ``close()``, as a caller retries it, returns at once and leaves no pool open."""
    async with Emulator(task_duration=0.05) as emu:
        with _recording() as caught:
            zs = await _used_session(emu)
            await _cancelled_close(zs, steps)
            await asyncio.wait_for(zs.close(), BOUND)
            assert zs.state is SessionState.CLOSED
            with pytest.raises(RuntimeError, match="closed"):
                await zs.submit("a fox")
            del zs
            await _collected()
        assert _resource_warnings(caught) == []


async def test_a_wait_for_on_close_that_times_out_leaves_a_close_that_finishes() -> None:
    """``wait_for(zs.close(), 0)`` times out before the close began; the next close does all."""
    async with Emulator(task_duration=0.05) as emu:
        with _recording() as caught:
            zs = await _used_session(emu)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(zs.close(), 0)
            await asyncio.wait_for(zs.close(), BOUND)
            assert zs.state is SessionState.CLOSED
            del zs
            await _collected()
        assert _resource_warnings(caught) == []


# -- 2. a second open, or an enter of a session already open -------------------------------


async def test_opening_an_open_session_again_is_refused_and_it_stays_open() -> None:
    """``await zs.open()`` twice: a RuntimeError that says it is already open; it still works."""
    async with Emulator(task_duration=0.05) as emu:
        zs = _session(emu)
        await zs.open()
        try:
            with pytest.raises(RuntimeError, match="already open") as info:
                await zs.open()
            assert "opened once" in str(info.value)
            assert zs.state is SessionState.OPEN
            result = await asyncio.wait_for(zs.generate("a cat"), BOUND)
            assert result.images
        finally:
            await zs.close()


async def test_a_helper_entering_the_callers_open_session_is_refused_and_it_stays_open() -> None:
    """A helper's ``async with zs:`` raises at once; the caller's session stays open and works."""

    async def helper(zs: Session) -> None:
        async with zs:  # "makes sure it is open": the exit would close the caller's session
            await zs.generate("a cat")

    async with Emulator(task_duration=0.05) as emu, _session(emu) as zs:
        with pytest.raises(RuntimeError, match="already open") as info:
            await helper(zs)
        message = str(info.value)
        assert "opened once" in message
        assert "without `async with`" in message  # what to do instead: pass it around
        assert emu.request_counts.get("create", 0) == 0  # the helper's body never ran
        assert zs.state is SessionState.OPEN
        result = await asyncio.wait_for(zs.generate("a dog"), BOUND)
        assert result.images
    assert zs.state.name == "CLOSED"  # closed by its own `async with`


async def test_opening_the_callers_open_session_in_a_helper_is_refused() -> None:
    """``await zs.open()`` on a session an ``async with`` holds: refused, the session kept."""
    async with Emulator(task_duration=0.05) as emu, _session(emu) as zs:
        with pytest.raises(RuntimeError, match="already open"):
            await zs.open()
        assert zs.state is SessionState.OPEN
        assert (await asyncio.wait_for(zs.generate("a cat"), BOUND)).images


async def test_entering_a_session_opened_earlier_with_open_is_refused() -> None:
    """Opened by ``open()`` (its opener closes it), then entered later: refused, kept open."""
    async with Emulator(task_duration=0.05) as emu:
        zs = _session(emu)
        await zs.open()
        try:
            await asyncio.sleep(0)  # any await between: the opener holds it now
            with pytest.raises(RuntimeError, match="already open"):
                async with zs:
                    pass
            assert zs.state is SessionState.OPEN
            assert (await asyncio.wait_for(zs.generate("a cat"), BOUND)).images
        finally:
            await zs.close()


async def test_async_with_await_open_is_one_open_closed_at_the_end() -> None:
    """``async with await zs.open() as zs:`` opens once: the ``async with`` closes it."""
    async with Emulator(task_duration=0.05) as emu:
        zs = _session(emu)
        async with await zs.open() as entered:
            assert entered is zs and zs.state is SessionState.OPEN
            assert (await asyncio.wait_for(zs.generate("a cat"), BOUND)).images
        assert zs.state.name == "CLOSED"


async def test_two_opens_at_once_open_the_session_once(tmp_path: Path) -> None:
    """Two ``open()`` racing while the journal opens: one opens it, the other is refused."""
    async with Emulator(task_duration=0.05) as emu:
        with _recording() as caught:
            zs = _session(emu, journal=tmp_path / "journal.sqlite")
            outcomes = await asyncio.wait_for(
                asyncio.gather(zs.open(), zs.open(), return_exceptions=True), BOUND
            )
            refused = [o for o in outcomes if isinstance(o, BaseException)]
            assert len(refused) == 1 and isinstance(refused[0], RuntimeError), outcomes
            assert "already open" in str(refused[0])
            assert zs.state is SessionState.OPEN
            assert (await asyncio.wait_for(zs.generate("a cat"), BOUND)).images
            await zs.close()
            del zs
            await _collected()
        assert _resource_warnings(caught) == []


# -- 3. closed from another loop, after its own ended --------------------------------------


@contextmanager
def _served_in_a_thread(serving: Callable[[], AbstractAsyncContextManager[T]]) -> Iterator[T]:
    """What ``async with serving()`` gives, served on 127.0.0.1 by a loop of its own in a thread.

    So that it keeps answering between the test's own ``asyncio.run()`` calls.
    """
    started = threading.Event()
    stop: list[asyncio.Event] = []
    held: list[T] = []
    loops: list[asyncio.AbstractEventLoop] = []

    async def serve() -> None:
        async with serving() as served:
            held.append(served)
            stop.append(asyncio.Event())
            loops.append(asyncio.get_running_loop())
            started.set()
            await asyncio.wait_for(stop[0].wait(), 60.0)

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    try:
        assert started.wait(BOUND), "the server did not start"
        yield held[0]
    finally:
        if loops:
            loops[0].call_soon_threadsafe(stop[0].set)
        thread.join(BOUND)


def _open_descriptors() -> int | None:
    fds = Path("/proc/self/fd")
    return len(os.listdir(fds)) if fds.is_dir() else None


def _descriptors_back_to(count: int) -> int | None:
    """The descriptors open once the emulator's thread has closed its ends too (bounded)."""
    for _ in range(200):
        now = _open_descriptors()
        if now == count:
            break
        time.sleep(0.01)
    return now


def test_a_session_closed_after_its_loop_ended_closes_that_loops_sockets() -> None:
    """Opened and used in one ``asyncio.run()``, closed from the next, the server still up.

    The first loop's pooled sockets are closed there and then (that loop cannot run their
    callbacks any more): no "unclosed transport" warning, no descriptor left open.
    """
    with _served_in_a_thread(lambda: Emulator(task_duration=0.05)) as emu, _recording() as caught:
        zs = _session(emu)
        before = _open_descriptors()

        async def used(zs: Session) -> None:
            await zs.open()
            await asyncio.wait_for(zs.generate("a cat"), BOUND)

        asyncio.run(used(zs))
        if before is not None:
            assert (_open_descriptors() or 0) > before  # its pooled connections
        asyncio.run(asyncio.wait_for(zs.close(), BOUND))
        assert zs.state is SessionState.CLOSED
        if before is not None:  # its sockets, and so the emulator's ends of them, closed
            assert _descriptors_back_to(before) == before
        del zs
        gc.collect()
    assert _resource_warnings(caught) == []


def test_tls_connections_of_a_loop_that_ended_are_closed_too(ca: trustme.CA, ca_file: str) -> None:
    """The same over HTTPS: the socket under each TLS connection is closed, none left open."""
    with _served_in_a_thread(lambda: tls_server(ca, "127.0.0.1")) as port, _recording() as caught:
        transport = Transport(
            http_session=None,
            max_connections=2,
            timeout=5,
            connect_timeout=5,
            read_timeout=5,
            ca_bundle=ca_file,
        )
        before = _open_descriptors()

        async def used(transport: Transport) -> None:
            transport.open()
            reply = await transport.request(
                "GET", f"https://127.0.0.1:{port}/hello", headers=RedactedHeaders({}), max_body=100
            )
            assert reply.body == b"hello"

        asyncio.run(used(transport))
        if before is not None:
            assert (_open_descriptors() or 0) > before  # its pooled TLS connection
        asyncio.run(asyncio.wait_for(transport.close(), BOUND))
        if before is not None:
            assert _descriptors_back_to(before) == before
        del transport
        gc.collect()
    assert _resource_warnings(caught) == []
