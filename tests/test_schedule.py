"""Retry and poll schedules: exact delays from injected randomness (no network)."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zimage_async import InvalidRequestError, PollSchedule, RetryPolicy, Task
from zimage_async._parsing import parse_task
from zimage_async._schedule import PollState


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


@pytest.mark.parametrize(
    ("attempt", "floor", "expected"),
    [
        pytest.param(1, 0.0, 0.5, id="backoff"),
        pytest.param(2, 0.0, 1.0, id="grows"),
        pytest.param(1, 9.0, 9.0, id="advice-is-a-floor"),
        pytest.param(1, None, None, id="never-retried"),
        pytest.param(5, 0.0, None, id="tries-spent"),
        pytest.param(1, 121.0, None, id="advice-too-long"),
    ],
)
def test_the_one_retry_decision(attempt: int, floor: float | None, expected: float | None) -> None:
    """RetryPolicy.after gives the delay before the next try, or None to give up."""
    policy = RetryPolicy(jitter=0.0, max_attempts=5, max_retry_after=120.0)
    assert policy.after(attempt, floor, rng=random.Random(0)) == expected


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("wait_initial", 0.0, id="zero-initial"),
        pytest.param("jitter", 1.5, id="jitter-over-one"),
        pytest.param("max_attempts", 0, id="no-attempts"),
        pytest.param("max_retry_after", -1.0, id="negative-retry-after"),
        pytest.param("wait_initial", math.inf, id="infinite-initial"),
        pytest.param("wait_max", math.inf, id="infinite-max"),
        pytest.param("max_retry_after", math.inf, id="infinite-retry-after"),
    ],
)
def test_retry_policy_refuses_bad_settings(field: str, value: float) -> None:
    """Nonsensical retry settings are refused with the field's name."""
    with pytest.raises(ValueError, match=field):
        RetryPolicy(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "field", ["wait_min", "wait_max", "wait_exp_base", "finish_margin", "stall_factor", "timeout"]
)
def test_a_poll_schedule_refuses_an_infinite_setting(field: str) -> None:
    """An infinite wait stalled every wait without a word: refused, naming the field."""
    with pytest.raises(ValueError, match=field):
        PollSchedule(**{field: math.inf})


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
    schedule = PollSchedule(jitter=0.0, finish_margin=0.05, wait_max=10.0)
    state = PollState(schedule, rng=random.Random(0), deadline=None)
    assert state.after(_task("pending", 0, estimated=4), 100.0) == pytest.approx(2.0)
    # The first look at the running task: look again halfway through its estimate.
    assert state.after(_task("processing", 20, estimated=3), 102.0) == pytest.approx(1.55)
    # 10 points in 1 s: 70 points left take 7 s, plus the margin.
    assert state.after(_task("processing", 30), 103.0) == pytest.approx(7.05)


def test_poll_never_passes_the_deadline() -> None:
    """A poll delay is cut to the time left before the wait's deadline; then it ends."""
    schedule = PollSchedule(jitter=0.0, wait_max=10.0)
    state = PollState(schedule, rng=random.Random(0), deadline=5.0)
    assert state.after(_task("pending", 0, estimated=100), 4.0) == pytest.approx(1.0)
    assert state.after(_task("pending", 0, estimated=100), 5.0) is None


@pytest.mark.parametrize(
    ("task", "why"),
    [
        pytest.param(_task("pending", 0, estimated=0), "estimate-exhausted", id="estimate-0"),
        pytest.param(_task("processing", 99, estimated=1), "stuck-at-99", id="stuck-99"),
    ],
)
def test_an_overdue_task_backs_off_to_wait_max(task: Task, why: str) -> None:
    """A task past its estimate, not moving, is polled ever less often, up to wait_max."""
    schedule = PollSchedule(jitter=0.0, wait_min=0.2, wait_max=5.0)
    state = PollState(schedule, rng=random.Random(0), deadline=600.0)
    now, reads = 0.0, 0
    while (delay := state.after(task, now)) is not None:
        now += delay
        reads += 1
    # Five reads a second for ten minutes would be 3,000; backing off to 5 s, about 130.
    assert reads < 150, why
    assert delay is None and now == pytest.approx(600.0)


def test_progress_resets_the_overdue_backoff() -> None:
    """Once an overdue task moves again, polls follow its progress, not the backoff."""
    schedule = PollSchedule(jitter=0.0, wait_min=0.2, wait_max=5.0, finish_margin=0.0)
    state = PollState(schedule, rng=random.Random(0), deadline=None)
    stuck = _task("processing", 50, estimated=0)
    now = 0.0
    for _ in range(8):
        now += state.after(stuck, now) or 0.0
    assert state.overdue > 3
    state.after(_task("processing", 60, estimated=0), now)
    assert state.overdue == 0


def test_a_stretched_state_polls_slower() -> None:
    """While a callback is expected, every delay is stretched by the factor."""
    schedule = PollSchedule(jitter=0.0, wait_max=30.0)
    plain = PollState(schedule, rng=random.Random(0), deadline=None)
    stretched = PollState(schedule, rng=random.Random(0), deadline=None, stretch=10.0)
    task = _task("pending", 0, estimated=4)
    assert stretched.after(task, 0.0) == pytest.approx(10 * (plain.after(task, 0.0) or 0))


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


@pytest.mark.parametrize(
    ("cls", "field", "value"),
    [
        pytest.param(PollSchedule, "jitter", "0.1", id="poll-jitter-text"),
        pytest.param(PollSchedule, "wait_min", 0, id="poll-wait-min-zero"),
        pytest.param(PollSchedule, "first_poll_fraction", 2, id="poll-fraction"),
        pytest.param(PollSchedule, "finish_margin", -1, id="poll-margin"),
        pytest.param(PollSchedule, "timeout", math.inf, id="poll-timeout-infinite"),
        pytest.param(PollSchedule, "stall_factor", 10**400, id="poll-stall-huge"),
        pytest.param(RetryPolicy, "max_attempts", 0, id="retry-no-attempts"),
        pytest.param(RetryPolicy, "max_attempts", True, id="retry-attempts-bool"),
        pytest.param(RetryPolicy, "wait_max", 10**400, id="retry-wait-max-huge"),
        pytest.param(RetryPolicy, "jitter", None, id="retry-jitter-none"),
    ],
)
def test_a_bad_setting_is_an_invalid_request_error_naming_field_and_rule(
    cls: type[PollSchedule | RetryPolicy], field: str, value: object
) -> None:
    """A typed ZImageError with .field and .rule, like every other setting (still a ValueError)."""
    with pytest.raises(InvalidRequestError) as caught:
        cls(**{field: value})  # type: ignore[arg-type]
    assert caught.value.field == field
    assert caught.value.rule
    assert isinstance(caught.value, ValueError)
    assert "got got" not in str(caught.value)
    assert len(str(caught.value)) < 300


@pytest.mark.parametrize(
    "fields",
    [{"wait_min": 5.0, "wait_max": 0.1}, {"wait_min": 10.0}, {"wait_max": 0.1}],
)
def test_a_poll_schedule_whose_shortest_delay_exceeds_its_longest_is_refused(
    fields: dict[str, float],
) -> None:
    """wait_min above wait_max was accepted; every delay then ignored one of them."""
    with pytest.raises(InvalidRequestError) as caught:
        PollSchedule(**fields)
    assert caught.value.field == "wait_max"
    assert "wait_min" in str(caught.value)


def test_a_poll_schedule_may_poll_at_one_fixed_delay() -> None:
    """wait_min equal to wait_max is a fixed schedule, as the benchmarks use."""
    assert PollSchedule(wait_min=0.5, wait_max=0.5).wait_max == 0.5
