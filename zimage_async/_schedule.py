"""Retry and poll schedules as data: every delay is a pure function of its inputs.

:class:`RetryPolicy` says how often and how long to wait before repeating a failed
request; :class:`PollSchedule` says when to look at a running task again. Both take an
injected :class:`random.Random` for jitter, so tests assert exact delays. The
generators at the bottom feed these delays to ``backoff``, which drives the loops in
the I/O layer (the only place that sleeps).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Generator

import attrs

from ._models import Task, TaskStatus

__all__ = ["PollSchedule", "RetryPolicy", "poll_waits", "retry_waits"]


def _positive(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be greater than 0, got {value!r}")


def _non_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{attribute.name} must be 0 or more, got {value!r}")


def _fraction(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0 <= value <= 1:
        raise ValueError(f"{attribute.name} must be between 0 and 1, got {value!r}")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How failed requests are retried: exponential backoff with jitter, capped.

    Only safe requests are retried: task and image reads on 429, 500, 502, 503,
    connection failures, truncated or malformed bodies; the billed create call only when
    the service certainly made no task (429, 503, a 502 from the API itself, or a
    connection that never opened). A wait the server advises (``Retry-After`` or
    ``retry after N seconds``) is honoured as a floor, up to ``max_retry_after``; a
    longer advice is given up on at once and raised, as is any error after
    ``max_attempts`` tries.

    >>> policy = RetryPolicy(wait_initial=0.5, wait_max=8.0, jitter=0.0)
    >>> [policy.delay(n, rng=random.Random(0)) for n in (1, 2, 3, 6)]
    [0.5, 1.0, 2.0, 8.0]
    >>> policy.delay(1, rng=random.Random(0), retry_after=3.0)
    3.0
    """

    #: Tries in all, the first included; 1 disables retries.
    max_attempts: int = attrs.field(default=5)
    #: The first backoff delay, in seconds.
    wait_initial: float = attrs.field(default=0.5, validator=_positive)
    #: The cap on a computed backoff delay, in seconds.
    wait_max: float = attrs.field(default=20.0, validator=_positive)
    #: Growth factor between attempts.
    wait_exp_base: float = attrs.field(default=2.0, validator=_positive)
    #: The share of each delay that is randomised (0: none, 1: "full jitter").
    jitter: float = attrs.field(default=0.5, validator=_fraction)
    #: The longest server-advised wait honoured; a longer one is raised to the caller.
    max_retry_after: float = attrs.field(default=120.0, validator=_non_negative)

    @max_attempts.validator
    def _check_attempts(self, attribute: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"max_attempts must be an integer of 1 or more, got {value!r}")

    def delay(self, attempt: int, *, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait after failed try number *attempt* (1-based).

        The backoff is ``wait_initial * wait_exp_base ** (attempt - 1)`` capped at
        ``wait_max``, of which the ``jitter`` share is drawn uniformly from *rng*; a
        *retry_after* from the server is a floor.
        """
        exponent = min(attempt - 1, 64)
        base = min(self.wait_max, self.wait_initial * self.wait_exp_base**exponent)
        wait = base * (1 - self.jitter) + base * self.jitter * rng.random()
        if retry_after is not None:
            wait = max(wait, retry_after)
        return wait

    def honours(self, retry_after: float | None) -> bool:
        """Whether a server-advised wait is short enough to wait it out and retry."""
        return retry_after is None or retry_after <= self.max_retry_after


@attrs.frozen(kw_only=True)
class PollSchedule:
    """When to poll a running task: informed by its hints, then backing off.

    * The first poll comes after ``first_poll_fraction`` of ``task_info.estimated_time``
      (within ``[wait_min, wait_max]``): early enough to catch a task that runs faster
      than estimated, late enough not to waste requests.
    * At the first look at a running task, the next one comes after half of its
      estimate of the time left. From then on, the rate of progress between the last
      two looks predicts the finish, and the poll lands ``finish_margin`` seconds after it.
    * Without usable hints it backs off exponentially from ``wait_min`` by
      ``wait_exp_base``, capped at ``wait_max``.
    * Each delay is varied by up to ``jitter`` (a fraction) so that many handles
      created together do not poll in lockstep, and never ends past the deadline.

    ``timeout`` is the total seconds a wait may take (``None``: no limit); past it the
    wait raises :class:`~zimage_async.WaitTimeoutError` and the handle stays usable.

    >>> schedule = PollSchedule(jitter=0.0, wait_max=30.0)
    >>> schedule.first_delay(estimated_time=10, rng=random.Random(0))
    5.0
    """

    wait_min: float = attrs.field(default=0.2, validator=_positive)
    wait_max: float = attrs.field(default=5.0, validator=_positive)
    wait_exp_base: float = attrs.field(default=1.6, validator=_positive)
    first_poll_fraction: float = attrs.field(default=0.5, validator=_fraction)
    finish_margin: float = attrs.field(default=0.05, validator=_non_negative)
    jitter: float = attrs.field(default=0.1, validator=_fraction)
    timeout: float | None = attrs.field(default=600.0)

    @timeout.validator
    def _check_timeout(self, attribute: attrs.Attribute[float | None], value: float | None) -> None:
        if value is not None and not value > 0:
            raise ValueError(f"timeout must be greater than 0 or None, got {value!r}")

    def _clamp(self, seconds: float, rng: random.Random) -> float:
        seconds = min(self.wait_max, max(self.wait_min, seconds))
        return seconds * (1 + self.jitter * (2 * rng.random() - 1))

    def first_delay(self, *, estimated_time: float | None, rng: random.Random) -> float:
        """Seconds from submission to the first poll, given the create call's estimate."""
        if estimated_time is None or estimated_time <= 0:
            return self._clamp(self.wait_min, rng)
        return self._clamp(estimated_time * self.first_poll_fraction, rng)

    def next_delay(
        self,
        *,
        attempt: int,
        seconds_left: float | None,
        rng: random.Random,
        remaining: float | None = None,
    ) -> float:
        """Seconds until the next poll after poll number *attempt* (1-based).

        *seconds_left* is the predicted time to completion (from progress or the
        service's estimate), or ``None`` when there is none; *remaining* is the time
        left before the deadline, which no delay exceeds.
        """
        if seconds_left is not None and seconds_left >= 0:
            delay = self._clamp(seconds_left + self.finish_margin, rng)
        else:
            exponent = min(attempt - 1, 64)
            delay = self._clamp(self.wait_min * self.wait_exp_base**exponent, rng)
        if remaining is not None:
            delay = max(0.0, min(delay, remaining))
        return delay


@attrs.define
class _ProgressTracker:
    """Predicts seconds left from successive ``(time, progress)`` observations."""

    first: tuple[float, int] | None = None
    last: tuple[float, int] | None = None

    def observe(self, now: float, task: Task) -> float | None:
        previous = self.last
        self.last = (now, task.progress)
        if self.first is None:
            self.first = self.last
        if task.status is TaskStatus.PENDING:
            return task.estimated_time
        if task.status is not TaskStatus.PROCESSING or not 0 < task.progress < 100:
            return None
        if previous is None or previous[1] <= 0:
            # One look at the work itself: progress only starts after the queue, so a
            # rate measured from submission would predict the end too late. Look again
            # halfway through the service's estimate, then measure.
            estimate = task.estimated_time
            return None if estimate is None else estimate * 0.5
        elapsed = now - previous[0]
        gained = task.progress - previous[1]
        if elapsed <= 0 or gained <= 0:
            return task.estimated_time
        return elapsed * (100 - task.progress) / gained


def poll_waits(
    schedule: PollSchedule,
    *,
    rng: random.Random,
    clock: Callable[[], float],
    started: float,
) -> Generator[float, Task | None, None]:
    """Yield poll delays for ``backoff.on_predicate``, which sends each new snapshot in.

    The snapshots drive the predictions; *clock* (monotonic seconds) and *started* (the
    wait's start on that clock) bound every delay by the schedule's ``timeout``.
    """
    tracker = _ProgressTracker()
    task = yield 0.0  # backoff primes the generator with None
    attempt = 0
    while True:
        attempt += 1
        now = clock()
        remaining = None if schedule.timeout is None else schedule.timeout - (now - started)
        seconds_left = tracker.observe(now, task) if task is not None else None
        if attempt == 1 and task is not None and task.progress == 0:
            delay = schedule.first_delay(estimated_time=task.estimated_time, rng=rng)
            if remaining is not None:
                delay = max(0.0, min(delay, remaining))
        else:
            delay = schedule.next_delay(
                attempt=attempt, seconds_left=seconds_left, rng=rng, remaining=remaining
            )
        task = yield delay


def retry_waits(
    policy: RetryPolicy, *, rng: random.Random
) -> Generator[float, BaseException | None, None]:
    """Yield retry delays for ``backoff.on_exception``, which sends each failure in.

    A failure's ``retry_after`` attribute (set on API errors) is honoured as a floor.
    """
    exc = yield 0.0  # backoff primes the generator with None
    attempt = 0
    while True:
        attempt += 1
        retry_after = getattr(exc, "retry_after", None)
        exc = yield policy.delay(attempt, rng=rng, retry_after=retry_after)
