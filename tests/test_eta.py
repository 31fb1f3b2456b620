"""The predicted finish (handle.eta) and the warning for a task that stopped moving."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

import attrs
import pytest

from zimage_async import PollSchedule, Session, Task, TaskInfo, TaskStatus, WaitTimeoutError
from zimage_async._schedule import PollState
from zimage_async.emulator import Emulator, ManualClock

from .conftest import FAST_POLL, FAST_RETRY


def _state() -> PollState:
    return PollState(PollSchedule(jitter=0.0), rng=random.Random(0), deadline=None)


def _task(status: str, progress: int = 0, estimate: float | None = None) -> Task:
    info = None if estimate is None else TaskInfo(estimated_time=estimate)
    return Task(id="task-unified-1-a", raw_status=status, progress=progress, task_info=info)


def test_pending_task_finishes_after_the_service_estimate() -> None:
    """A pending task with an estimate of 10 s, seen at 5, is predicted to finish at 15."""
    state = _state()
    state.after(_task("pending", estimate=10), 5.0)
    assert state.predicted_finish == 15.0


def test_first_look_at_the_work_scales_the_estimate_by_progress_left() -> None:
    """At 50 % with 8 s estimated, the finish is predicted 4 s later."""
    state = _state()
    state.after(_task("pending", estimate=8), 0.0)
    state.after(_task("processing", 50, estimate=8), 2.0)
    assert state.predicted_finish == 6.0


def test_progress_rate_predicts_the_finish() -> None:
    """From 20 % at 0 s to 60 % at 4 s (10 %/s), the finish is predicted at 8 s."""
    state = _state()
    state.after(_task("processing", 20, estimate=9), 0.0)
    state.after(_task("processing", 60, estimate=9), 4.0)
    assert state.predicted_finish == 8.0


def test_no_prediction_without_hints_or_after_the_end() -> None:
    """Without an estimate, and once the task has ended, there is no predicted finish."""
    state = _state()
    state.after(_task("pending"), 0.0)
    assert state.predicted_finish is None
    state.after(_task("processing", 40, estimate=5), 1.0)
    state.after(_task("completed", 100), 2.0)
    assert state.predicted_finish is None


def test_overdue_task_has_no_prediction() -> None:
    """A task still at the same progress past its predicted finish has no prediction."""
    state = _state()
    state.after(_task("processing", 99, estimate=1), 0.0)
    state.after(_task("processing", 99, estimate=1), 5.0)
    assert state.predicted_finish is None


@pytest.mark.parametrize(
    ("seen_at", "stalled"),
    [
        pytest.param(30.0, False, id="three-times"),
        pytest.param(30.5, True, id="beyond"),
    ],
)
def test_stalled_after_three_times_the_estimate(seen_at: float, stalled: bool) -> None:
    """Progress frozen for more than 3x the service's 10 s estimate is stalled."""
    state = _state()
    state.after(_task("processing", 40, estimate=10), 0.0)
    state.after(_task("processing", 40, estimate=10), 20.0)
    assert state.stalled(seen_at) is stalled


def test_movement_resets_the_stall_clock() -> None:
    """Any change of progress starts the count again."""
    state = _state()
    state.after(_task("processing", 40, estimate=10), 0.0)
    state.after(_task("processing", 41, estimate=10), 25.0)
    assert not state.stalled(50.0)


def test_never_stalled_without_an_estimate() -> None:
    """Without the service's estimate nothing counts as stalled."""
    state = _state()
    state.after(_task("processing", 40), 0.0)
    assert not state.stalled(1e9)


async def test_eta_is_known_while_running_and_none_at_the_end() -> None:
    """A running task gets a Unix-time ETA after its create; the ended one has none."""
    async with (
        Emulator(task_duration=1.0, seed=2) as emu,
        Session(
            api_key=emu.api_key, base_url=emu.base_url, poll=FAST_POLL, retry=FAST_RETRY
        ) as session,
    ):
        started = time.time()
        handle = await session.submit("a slow fox")
        before: float | None = handle.eta
        assert before is None  # no look scheduled yet
        etas = [handle.eta async for _ in handle.updates()]
        assert any(eta is not None and eta > started for eta in etas)
        after: float | None = handle.eta
        assert handle.is_done
        assert after is None


async def test_stalled_task_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    """A task that does not move for stall_factor x its estimate gets one WARNING per handle."""
    async with (
        Emulator(task_duration=0.3, seed=2, clock=ManualClock(start=time.time())) as emu,
        Session(
            api_key=emu.api_key,
            base_url=emu.base_url,
            poll=attrs.evolve(FAST_POLL, stall_factor=0.1),
            retry=FAST_RETRY,
        ) as session,
    ):
        handle = await session.submit("a fox that never moves")
        with caplog.at_level(logging.WARNING, logger="zimage_async"):
            with contextlib.suppress(WaitTimeoutError):
                await handle.wait(timeout=1.0)
            with contextlib.suppress(WaitTimeoutError):
                await handle.wait(timeout=0.5)
    stalls = [r for r in caplog.records if "has not moved" in r.getMessage()]
    assert len(stalls) == 1
    assert handle.id in stalls[0].getMessage()


async def test_the_first_look_is_timed_from_submission_not_from_the_wait() -> None:
    """A handle awaited after its first poll was due looks at once, not a first delay later.

    The first look is due one estimate (at least 1 s) after submission; the wait starts
    after that, with 0.5 s to go: only a look at once finds the task completed in time.
    """
    schedule = PollSchedule(wait_min=0.01, wait_max=30.0, jitter=0.0, first_poll_fraction=1.0)
    async with (
        Emulator(task_duration=0.1, seed=2) as emu,
        Session(api_key=emu.api_key, base_url=emu.base_url, poll=schedule, retry=FAST_RETRY) as zs,
    ):
        handle = await zs.submit("a fox submitted early, awaited late")
        assert handle.task is not None and handle.task.estimated_time is not None
        await asyncio.sleep(handle.task.estimated_time + 0.2)
        task = await handle.wait(timeout=0.5)
        assert task.status is TaskStatus.COMPLETED
        assert emu.request_counts["task"] == 1


async def test_no_stall_is_reported_before_a_look_shows_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Time spent before a wait begins is no stall: the look that finds the task done says so."""
    async with (
        Emulator(task_duration=0.1, seed=2) as emu,
        Session(
            api_key=emu.api_key,
            base_url=emu.base_url,
            poll=attrs.evolve(FAST_POLL, stall_factor=0.1),
            retry=FAST_RETRY,
        ) as zs,
    ):
        handle = await zs.submit("a fox awaited late")
        await asyncio.sleep(0.5)  # over 0.1 x the estimate (at least 1 s): "still" since then
        with caplog.at_level(logging.WARNING, logger="zimage_async"):
            task = await handle.wait(timeout=10)
    assert task.status is TaskStatus.COMPLETED
    assert not [r for r in caplog.records if "has not moved" in r.getMessage()]
