"""Connection slots: the cap, the order of the queue, and cancellation in line."""

from __future__ import annotations

import asyncio

import pytest

from zimage_async._slots import Slots


async def _hold(slots: Slots, name: str, log: list[str], until: asyncio.Event) -> None:
    waiter = slots.take()
    if waiter is not None:
        await slots.wait(waiter)
    log.append(name)
    try:
        await until.wait()
    finally:
        slots.release()


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_no_more_than_the_cap_hold_a_slot_and_the_rest_are_served_in_order() -> None:
    """Two slots, five takers: two hold at once, the others get theirs in the order asked."""
    slots = Slots(2)
    log: list[str] = []
    gates = {name: asyncio.Event() for name in "abcde"}
    tasks = [asyncio.ensure_future(_hold(slots, n, log, gates[n])) for n in "abcde"]
    await _settle()
    assert log == ["a", "b"]
    for name, then in (("b", ["a", "b", "c"]), ("a", ["a", "b", "c", "d"])):
        gates[name].set()
        await _settle()
        assert log == then
    for gate in gates.values():
        gate.set()
    await asyncio.gather(*tasks)
    assert log == ["a", "b", "c", "d", "e"]
    assert slots.free == 2


async def test_a_taker_cancelled_in_line_gives_up_its_place() -> None:
    """Cancelled while queued: the next in line gets the slot, and none is lost."""
    slots = Slots(1)
    log: list[str] = []
    gates = {name: asyncio.Event() for name in "abc"}
    first = asyncio.ensure_future(_hold(slots, "a", log, gates["a"]))
    await _settle()
    quitter = asyncio.ensure_future(_hold(slots, "b", log, gates["b"]))
    last = asyncio.ensure_future(_hold(slots, "c", log, gates["c"]))
    await _settle()
    quitter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await quitter
    gates["a"].set()
    await _settle()
    assert log == ["a", "c"]
    gates["c"].set()
    await asyncio.gather(first, last)
    assert slots.free == 1


async def test_a_slot_handed_to_a_taker_cancelled_before_it_runs_is_passed_on() -> None:
    """The slot reaches a waiter in the same turn as its cancel: it goes to the next one."""
    slots = Slots(1)
    assert slots.take() is None
    late = slots.take()
    assert late is not None
    unlucky = asyncio.ensure_future(slots.wait(late))
    after = slots.take()
    assert after is not None
    await _settle()
    slots.release()  # hands the slot to the unlucky waiter ...
    unlucky.cancel()  # ... which is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await unlucky
    assert after.done() and not after.cancelled()  # passed on to the next in line
    slots.release()
    assert slots.free == 1
