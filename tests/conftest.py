"""Shared fixtures: an emulator on 127.0.0.1 and a Session with fast schedules."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from zimage_async import PollSchedule, RetryPolicy, Session
from zimage_async.emulator import Emulator

#: Polls and retries fast enough for tests on an emulator whose tasks take 50 ms.
FAST_POLL = PollSchedule(wait_min=0.01, wait_max=0.05, timeout=20.0)
FAST_RETRY = RetryPolicy(wait_initial=0.01, wait_max=0.05, max_attempts=5)


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """An emulator whose tasks finish in about 50 ms."""
    async with Emulator(task_duration=0.05, seed=1) as emu:
        yield emu


@pytest.fixture
async def zs(emulator: Emulator) -> AsyncIterator[Session]:
    """An open Session pointed at the emulator."""
    async with Session(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        poll=FAST_POLL,
        retry=FAST_RETRY,
        seed=1,
    ) as session:
        yield session
