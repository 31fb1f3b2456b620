"""The clocks the emulator runs on."""

from __future__ import annotations

import asyncio

import pytest

from zimage_async.emulator import ManualClock, SystemClock


async def test_manual_clock_wakes_sleepers_when_advanced_past_their_deadline() -> None:
    """advance() wakes exactly the sleepers whose deadline has been reached."""
    clock = ManualClock(start=100.0)
    early = asyncio.ensure_future(clock.sleep_until(105.0))
    late = asyncio.ensure_future(clock.sleep_until(110.0))
    await asyncio.sleep(0)
    clock.advance(5.0)
    await asyncio.wait_for(early, timeout=5.0)
    assert not late.done()
    clock.advance(5.0)
    await asyncio.wait_for(late, timeout=5.0)
    assert clock.now() == 110.0


async def test_manual_clock_sleep_until_the_past_returns_at_once() -> None:
    """Sleeping until a time already reached does not wait for advance()."""
    clock = ManualClock(start=50.0)
    await asyncio.wait_for(clock.sleep_until(49.0), timeout=5.0)


def test_manual_clock_refuses_to_go_backwards() -> None:
    """A negative or non-finite advance is a ValueError."""
    clock = ManualClock()
    with pytest.raises(ValueError, match="at least 0"):
        clock.advance(-1.0)
    with pytest.raises(ValueError, match="at least 0"):
        clock.advance(float("inf"))


async def test_system_clock_speed_shortens_real_waits() -> None:
    """At speed 1000 a wait of 5 clock seconds ends well within a real-time bound."""
    clock = SystemClock(speed=1000.0)
    target = clock.now() + 5.0
    await asyncio.wait_for(clock.sleep_until(target), timeout=10.0)
    assert clock.now() >= target


def test_system_clock_starts_at_the_given_time() -> None:
    """SystemClock(start=...) counts from that epoch time."""
    clock = SystemClock(start=1_000.0)
    assert 1_000.0 <= clock.now() < 1_100.0


@pytest.mark.parametrize("speed", [0.0, -1.0, float("nan")])
def test_system_clock_refuses_nonsense_speeds(speed: float) -> None:
    """Speeds must be finite and above zero."""
    with pytest.raises(ValueError, match="speed"):
        SystemClock(speed=speed)
