"""Retry and poll schedules: exact delays from injected randomness (no network)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zimage_async import PollSchedule, RetryPolicy, Task
from zimage_async._parsing import parse_task
from zimage_async._schedule import poll_waits, retry_waits


def _task(status: str, progress: int, estimated: int | None = None) -> Task:
    payload: dict[str, object] = {"id": "task-unified-1-a", "status": status, "progress": progress}
    if estimated is not None:
        payload["task_info"] = {"estimated_time": estimated}
    return parse_task(payload)


def test_retry_delays_grow_exponentially_to_the_cap() -> None:
    """Without jitter the retry delays double from wait_initial up to wait_max."""
    policy = RetryPolicy(wait_initial=0.5, wait_max=4.0, jitter=0.0)
    rng = random.Random(1)
    assert [policy.delay(n, rng=rng) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_retry_after_is_a_floor() -> None:
    """A server-advised wait is never undercut by the backoff."""
    policy = RetryPolicy(wait_initial=0.5, jitter=0.0)
    assert policy.delay(1, rng=random.Random(0), retry_after=7.0) == 7.0


def test_retry_policy_gives_up_on_overlong_advice() -> None:
    """An advised wait longer than max_retry_after is not honoured."""
    policy = RetryPolicy(max_retry_after=30.0)
    assert policy.honours(30.0)
    assert not policy.honours(60.0)
    assert policy.honours(None)


@given(
    attempt=st.integers(min_value=1, max_value=200),
    seed=st.integers(),
    wait_initial=st.floats(min_value=0.01, max_value=5),
    wait_max=st.floats(min_value=0.01, max_value=60),
    jitter=st.floats(min_value=0, max_value=1),
)
def test_retry_delay_within_bounds(
    attempt: int, seed: int, wait_initial: float, wait_max: float, jitter: float
) -> None:
    """Every retry delay lies between (1 - jitter) x base and the cap."""
    policy = RetryPolicy(wait_initial=wait_initial, wait_max=wait_max, jitter=jitter)
    delay = policy.delay(attempt, rng=random.Random(seed))
    base = min(wait_max, wait_initial * 2.0 ** (attempt - 1))
    assert base * (1 - jitter) - 1e-9 <= delay <= base + 1e-9


def test_retry_waits_reads_retry_after_from_the_exception() -> None:
    """The backoff generator honours the retry_after of the failure sent in."""

    class Limited(Exception):
        retry_after = 9.0

    waits = retry_waits(RetryPolicy(jitter=0.0), rng=random.Random(0))
    waits.send(None)
    assert waits.send(Limited()) == 9.0
    assert waits.send(ValueError()) == 1.0  # second attempt: 0.5 * 2


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("wait_initial", 0.0, id="zero-initial"),
        pytest.param("jitter", 1.5, id="jitter-over-one"),
        pytest.param("max_attempts", 0, id="no-attempts"),
        pytest.param("max_retry_after", -1.0, id="negative-retry-after"),
    ],
)
def test_retry_policy_refuses_bad_settings(field: str, value: float) -> None:
    """Nonsensical retry settings are refused with the field's name."""
    with pytest.raises(ValueError, match=field):
        RetryPolicy(**{field: value})  # type: ignore[arg-type]


def test_first_poll_follows_the_estimate() -> None:
    """The first poll waits a fraction of the create call's estimate."""
    schedule = PollSchedule(jitter=0.0, first_poll_fraction=0.8, wait_max=30.0)
    assert schedule.first_delay(estimated_time=10, rng=random.Random(0)) == 8.0


def test_first_poll_without_estimate_uses_wait_min() -> None:
    """With no estimate the first poll comes after wait_min."""
    schedule = PollSchedule(jitter=0.0, wait_min=0.3)
    assert schedule.first_delay(estimated_time=None, rng=random.Random(0)) == 0.3


def test_poll_without_hints_backs_off_to_the_cap() -> None:
    """Without progress or estimates the poll delays grow to wait_max."""
    schedule = PollSchedule(jitter=0.0, wait_min=0.25, wait_exp_base=2.0, wait_max=1.0)
    delays = [
        schedule.next_delay(attempt=n, seconds_left=None, rng=random.Random(0))
        for n in (1, 2, 3, 4)
    ]
    assert delays == [0.25, 0.5, 1.0, 1.0]


def test_poll_aims_at_the_predicted_finish() -> None:
    """Progress seen at two looks predicts the finish; the poll lands just after it."""
    now = [100.0]
    schedule = PollSchedule(jitter=0.0, finish_margin=0.05, wait_max=10.0)
    waits = poll_waits(schedule, rng=random.Random(0), clock=lambda: now[0], started=100.0)
    waits.send(None)
    assert waits.send(_task("pending", 0, estimated=4)) == pytest.approx(2.0)  # 0.5 x 4
    now[0] = 102.0
    # The first look at the running task: look again halfway through its estimate.
    assert waits.send(_task("processing", 20, estimated=3)) == pytest.approx(1.55)
    now[0] = 103.0
    # 10 points in 1 s: 70 points left take 7 s, plus the margin.
    assert waits.send(_task("processing", 30)) == pytest.approx(7.05)


def test_poll_never_passes_the_deadline() -> None:
    """A poll delay is cut to the time left before the wait's timeout."""
    now = [0.0]
    schedule = PollSchedule(jitter=0.0, wait_max=10.0, timeout=5.0)
    waits = poll_waits(schedule, rng=random.Random(0), clock=lambda: now[0], started=0.0)
    waits.send(None)
    now[0] = 4.0
    assert waits.send(_task("pending", 0, estimated=100)) == pytest.approx(1.0)


@given(
    attempt=st.integers(min_value=1, max_value=100),
    seconds_left=st.none() | st.floats(min_value=0, max_value=1e6),
    remaining=st.none() | st.floats(min_value=0, max_value=1e6),
    seed=st.integers(),
)
def test_poll_delay_within_bounds(
    attempt: int, seconds_left: float | None, remaining: float | None, seed: int
) -> None:
    """Every poll delay lies within the jittered [wait_min, wait_max] and the deadline."""
    schedule = PollSchedule()
    delay = schedule.next_delay(
        attempt=attempt, seconds_left=seconds_left, rng=random.Random(seed), remaining=remaining
    )
    assert delay >= 0
    if remaining is not None:
        assert delay <= remaining
    assert delay <= schedule.wait_max * (1 + schedule.jitter)
    if remaining is None or remaining >= schedule.wait_min:
        assert delay >= schedule.wait_min * (1 - schedule.jitter) - 1e-9
