"""Deadlines kept by one timer: the API exchanges' total limit and the waits' deadlines.

Each keeper cuts off only what it bounds, and only with its own cancellation. A server on
127.0.0.1 (a raw one, or the emulator) holds or trickles the answers; each test says
which exchange or wait must end how, and in which order.
"""

from __future__ import annotations

import asyncio
import sys

import pytest

from zimage_async import APITimeoutError, PollSchedule, Session, WaitTimeoutError
from zimage_async._deadlines import Deadlines
from zimage_async.emulator import Emulator

from .conftest import FAST_POLL, FAST_RETRY
from .test_hardening_transport import headers, opened, raw_server, transport, trickler


async def _held(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read the request, then answer nothing until the client goes."""
    await reader.readuntil(b"\r\n\r\n")
    await reader.read()


async def test_a_read_cut_off_by_the_total_limit_leaves_its_task_able_to_go_on() -> None:
    """After the limit cut a read off, the same task is not cancelled and reads again."""
    async with raw_server(_held) as port, opened(transport(total_timeout=0.2)) as t:
        url = f"http://127.0.0.1:{port}/v1/tasks/x"
        for _ in range(2):  # the second read would be cancelled at once if the first leaked
            with pytest.raises(APITimeoutError, match=r"0\.2 s total limit"):
                await t.request("GET", url, headers=headers(), max_body=1000)
        await asyncio.sleep(0)
        task = asyncio.current_task()
        assert task is not None
        if sys.version_info >= (3, 11):
            assert task.cancelling() == 0


async def test_a_cancel_at_the_moment_the_total_limit_passes_stays_a_cancel() -> None:
    """The caller's cancel and the limit's, in the same turn of the loop: a cancel it is."""
    async with raw_server(_held) as port, opened(transport(total_timeout=0.2)) as t:
        url = f"http://127.0.0.1:{port}/v1/tasks/x"
        read = asyncio.ensure_future(t.request("GET", url, headers=headers(), max_body=1000))
        for _ in range(500):  # until the read is in flight (at most 5 s)
            timer = t._limit._timer
            if timer is not None:
                break
            await asyncio.sleep(0.01)
        assert timer is not None
        loop = asyncio.get_running_loop()
        loop.call_at(timer.when(), read.cancel)  # the same instant as the limit's own
        with pytest.raises(asyncio.CancelledError):
            await read
        assert read.cancelled()


async def test_reads_in_flight_are_each_cut_off_at_their_own_limit() -> None:
    """A read started later is still running when an earlier one is cut off, then is cut off."""
    async with raw_server(_held) as port, opened(transport(total_timeout=0.3)) as t:
        url = f"http://127.0.0.1:{port}/v1/tasks/x"
        first = asyncio.ensure_future(t.request("GET", url, headers=headers(), max_body=1000))
        await asyncio.sleep(0.2)
        second = asyncio.ensure_future(t.request("GET", url, headers=headers(), max_body=1000))
        await asyncio.wait([first])
        assert "0.3 s total limit" in str(first.exception())
        assert not second.done()
        await asyncio.wait([second])
        assert "0.3 s total limit" in str(second.exception())  # not the 5 s stall limit


async def test_an_answer_that_ends_in_time_is_not_touched_by_the_limit() -> None:
    """A trickling answer that ends before the limit is returned whole, many times over."""
    async with raw_server(trickler(b"{", 3)) as port, opened(transport(total_timeout=5.0)) as t:
        url = f"http://127.0.0.1:{port}/v1/tasks/x"
        replies = await asyncio.gather(
            *(t.request("GET", url, headers=headers(), max_body=1000) for _ in range(20))
        )
        assert {reply.body for reply in replies} == {b"{  "}
        assert len(t._limit) == 0


async def test_a_nearer_deadline_than_the_armed_one_is_kept() -> None:
    """An exchange due before every other one in flight is cut off first, and alone."""
    limit = Deadlines()
    cut: list[str] = []

    async def exchange(name: str, seconds: float) -> None:
        task = limit.enter(seconds)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError as exc:
            if limit.leave(task, exc):
                cut.append(name)
                return
            raise
        finally:
            limit.leave(task)

    slow = asyncio.ensure_future(exchange("slow", 30.0))
    await asyncio.sleep(0)
    await exchange("quick", 0.05)
    assert cut == ["quick"] and not slow.done()
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    assert cut == ["quick"] and len(limit) == 0
    limit.close()


async def test_one_task_runs_one_exchange_at_a_time() -> None:
    """Entering twice from one task is a bug of the caller, said at once."""
    limit = Deadlines()
    task = limit.enter(1.0)
    with pytest.raises(RuntimeError, match="one block of a Deadlines at a time"):
        limit.enter(1.0)
    assert limit.leave(task) is False
    limit.close()


# -- the waits' deadlines: one keeper per session -------------------------------------------


async def test_waits_in_progress_each_end_at_their_own_deadline() -> None:
    """Three waits on long tasks end in the order of their deadlines, each in its turn."""
    async with (
        Emulator(task_duration=30.0) as emu,
        Session(api_key=emu.api_key, base_url=emu.base_url, poll=FAST_POLL, retry=FAST_RETRY) as zs,
    ):
        handles = [await zs.submit(f"a long one {n}") for n in range(3)]
        waits = [
            asyncio.ensure_future(handle.wait(timeout=limit))
            for handle, limit in zip(handles, (0.9, 0.3, 0.6), strict=True)
        ]
        for turn, expected_open in ((1, {0, 2}), (2, {0}), (0, set())):
            await asyncio.wait([waits[turn]])
            assert isinstance(waits[turn].exception(), WaitTimeoutError)
            assert {n for n, wait in enumerate(waits) if not wait.done()} == expected_open
        assert len(zs._runtime.deadlines) == 0


async def test_a_cancel_at_the_moment_a_wait_times_out_stays_a_cancel() -> None:
    """The caller's cancel and the wait's deadline in one turn of the loop: a cancel it is.

    The schedule's first look would come long after the deadline, so the wait naps until
    the deadline and nothing but the two timers can end it. (With frequent looks, a look
    that returns just before the deadline may end the wait on its own, by the schedule,
    before either timer runs; the caller's cancel then finds the wait already over.)
    The handle stays usable: the next wait, in the test's own task, times out as usual.
    """
    slow = PollSchedule(wait_min=10.0, wait_max=10.0, jitter=0.0, timeout=20.0)
    async with (
        Emulator(task_duration=30.0) as emu,
        Session(api_key=emu.api_key, base_url=emu.base_url, poll=slow, retry=FAST_RETRY) as zs,
    ):
        handle = await zs.submit("a long one")
        wait = asyncio.ensure_future(handle.wait(timeout=0.3))
        keeper = zs._runtime.deadlines
        for _ in range(500):  # until the wait has entered its deadline (at most 5 s)
            timer = keeper._timer
            if timer is not None:
                break
            await asyncio.sleep(0.01)
        assert timer is not None
        asyncio.get_running_loop().call_at(timer.when(), wait.cancel)
        with pytest.raises(asyncio.CancelledError):
            await wait
        assert wait.cancelled()
        with pytest.raises(WaitTimeoutError):
            await handle.wait(timeout=0.2)


async def test_blocks_left_early_do_not_pile_up_in_the_keeper() -> None:
    """A thousand short blocks under a long deadline: the keeper's heap stays small."""
    keeper = Deadlines()

    async def block() -> None:
        task = keeper.enter(600.0)
        try:
            await asyncio.sleep(0)
        finally:
            assert keeper.leave(task) is False

    for _ in range(1000):
        await asyncio.ensure_future(block())
    assert len(keeper) == 0 and len(keeper._heap) <= 65
    keeper.close()


@pytest.mark.parametrize("caller_first", [True, False], ids=["caller-first", "keeper-first"])
async def test_a_cancel_in_the_turn_the_keeper_cuts_the_block_stays_a_cancel(
    caller_first: bool,
) -> None:
    """Whichever of the two cancels comes first in the turn, the block ends cancelled."""
    keeper = Deadlines()
    said: list[bool] = []

    async def block() -> None:
        task = keeper.enter(60.0)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError as exc:
            said.append(keeper.leave(task, exc))
            raise
        finally:
            keeper.leave(task)

    running = asyncio.ensure_future(block())
    await asyncio.sleep(0)  # the block is entered and sleeping

    def both() -> None:
        if caller_first:
            running.cancel()
        keeper._cut_off(running)
        if not caller_first:
            running.cancel()

    asyncio.get_running_loop().call_soon(both)
    done, _ = await asyncio.wait({running}, timeout=5)
    assert done == {running}
    assert running.cancelled()
    assert said == [False]  # not the keeper's cut alone: the caller's cancel
    keeper.close()


async def test_a_block_only_the_keeper_cut_is_told_so() -> None:
    """With no other cancel, leave() says the keeper cut the block (it becomes a timeout)."""
    keeper = Deadlines()
    said: list[bool] = []

    async def block() -> None:
        task = keeper.enter(0.05)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError as exc:
            said.append(keeper.leave(task, exc))
        finally:
            keeper.leave(task)

    await asyncio.wait_for(block(), 5)
    assert said == [True]
    keeper.close()


async def test_two_keepers_cutting_nested_blocks_in_one_turn_leave_it_to_the_outer() -> None:
    """The inner block does not take both cuts for its own: the outer one's deadline wins."""
    outer, inner = Deadlines(), Deadlines()
    said: list[tuple[str, bool]] = []

    async def nested() -> str:
        outer_task = outer.enter(60.0)
        try:
            inner_task = inner.enter(60.0)
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError as exc:
                said.append(("inner", inner.leave(inner_task, exc)))
                raise
            finally:
                inner.leave(inner_task)
        except asyncio.CancelledError as exc:
            said.append(("outer", outer.leave(outer_task, exc)))
            return "outer deadline"
        finally:
            outer.leave(outer_task)
        return "not cut"  # pragma: no cover - the blocks are cut

    running = asyncio.ensure_future(nested())
    await asyncio.sleep(0)

    def both() -> None:
        outer._cut_off(running)
        inner._cut_off(running)

    asyncio.get_running_loop().call_soon(both)
    assert await asyncio.wait_for(running, 5) == "outer deadline"
    assert said == [("inner", False), ("outer", True)]
    outer.close()
    inner.close()
