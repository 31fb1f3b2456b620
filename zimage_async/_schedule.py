"""Retry and poll schedules as data: every delay is a pure function of its inputs.

:class:`RetryPolicy` says how often and how long to wait before repeating a failed
request, and :meth:`RetryPolicy.after` is the one retry decision every loop asks;
:class:`PollSchedule` says when to look at a running task again, and :class:`PollState`
applies it to one wait, fed ``(task, now)``. All take an injected :class:`random.Random`
for jitter, so tests assert exact delays; only the I/O layer sleeps. A setting out of
its range raises :class:`~zimage_async.InvalidRequestError` (a :class:`ValueError`)
naming the field and its rule; one of the wrong type is named by its type, never quoted
(it may be a key passed to the wrong field), as for a Session's.
"""

from __future__ import annotations

import math
import random
from typing import Any

import attrs

from ._exceptions import InvalidRequestError
from ._models import Task, TaskStatus
from ._quoting import int_text, number_or_type, short_repr

__all__ = ["PollSchedule", "PollState", "RetryPolicy", "transient_status"]


def _real(attribute: attrs.Attribute[Any], value: object, rule: str) -> float:
    """Return *value* as a float, if it is a number (not a bool) that a float holds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequestError(attribute.name, rule, f"got {number_or_type(value)}")
    try:
        return float(value)
    except OverflowError:
        problem = f"{int_text(int(value))} is more than a float holds"
        raise InvalidRequestError(attribute.name, rule, problem) from None


def _check(attribute: attrs.Attribute[Any], value: object, rule: str, ok: bool) -> None:
    if not ok:
        raise InvalidRequestError(attribute.name, rule, f"got {short_repr(value)}")


def _positive(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    rule = "a finite number above 0"
    _check(attribute, value, rule, math.inf > _real(attribute, value, rule) > 0)


def _growth(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    rule = "a finite number of 1 or more (1: the same delay each time)"
    _check(attribute, value, rule, math.inf > _real(attribute, value, rule) >= 1)


def _non_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    rule = "a finite number, 0 or more"
    _check(attribute, value, rule, math.inf > _real(attribute, value, rule) >= 0)


def _fraction(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    rule = "a number from 0 to 1"
    _check(attribute, value, rule, 0 <= _real(attribute, value, rule) <= 1)


#: The 4xx answers that say "send it again": a read answered so is retried, as a 5xx.
_AGAIN = frozenset({408, 425, 429})


def grown(start: float, factor: float, steps: int, cap: float) -> float:
    """Return ``start * factor ** steps``, at most *cap*; one too large for a float is *cap*."""
    try:
        return min(cap, start * factor ** min(steps, 64))
    except OverflowError:  # a float's power or an int's product past a float's range
        return cap


def transient_status(status: int) -> bool:
    """Whether a read answered *status* may be sent again: 408, 425, 429 and every 5xx.

    >>> [transient_status(s) for s in (404, 408, 429, 503)]
    [False, True, True, True]
    """
    return status in _AGAIN or status >= 500


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How failed requests are retried: exponential backoff with jitter, capped.

    Only safe requests are retried: task and image reads on 408, 425, 429 and 5xx,
    connection failures, truncated or malformed bodies; the billed create call when the
    service certainly made no task (a connection that never opened), and at most once,
    with the same key, after the API's own 429, 502 or 503 (which may come after the
    task was made: see ``docs/protocol.md``). A wait the server advises (``Retry-After`` or
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
    wait_exp_base: float = attrs.field(default=2.0, validator=_growth)
    #: The share of each delay that is randomised (0: none, 1: "full jitter").
    jitter: float = attrs.field(default=0.5, validator=_fraction)
    #: The longest server-advised wait honoured; a longer one is raised to the caller.
    max_retry_after: float = attrs.field(default=120.0, validator=_non_negative)

    @max_attempts.validator
    def _check_attempts(self, attribute: attrs.Attribute[int], value: int) -> None:
        rule = "an integer of 1 or more"
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidRequestError(attribute.name, rule, f"got {number_or_type(value)}")
        _check(attribute, value, rule, value >= 1)

    def delay(self, attempt: int, *, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait after failed try number *attempt* (1-based).

        The backoff is ``wait_initial * wait_exp_base ** (attempt - 1)`` capped at
        ``wait_max``, of which the ``jitter`` share is drawn uniformly from *rng*; a
        *retry_after* from the server is a floor.
        """
        base = grown(self.wait_initial, self.wait_exp_base, attempt - 1, self.wait_max)
        wait = base * (1 - self.jitter) + base * self.jitter * rng.random()
        if retry_after is not None:
            wait = max(wait, retry_after)
        return wait

    def honours(self, retry_after: float | None) -> bool:
        """Whether a server-advised wait is short enough to wait it out and retry."""
        return retry_after is None or retry_after <= self.max_retry_after

    def after(self, attempt: int, floor: float | None, *, rng: random.Random) -> float | None:
        """Decide whether to retry: seconds to wait before try ``attempt + 1``, or None.

        *floor* is a judge's verdict on the failure of try number *attempt*: ``None``
        when it must never be retried, else the least wait the server advised (``0.0``
        for none). None comes back too when the tries are spent, or when the advice is
        longer than ``max_retry_after`` (the failure is then raised at once).

        >>> policy = RetryPolicy(max_attempts=3, jitter=0.0)
        >>> rng = random.Random(0)
        >>> policy.after(1, 0.0, rng=rng), policy.after(1, 4.0, rng=rng)
        (0.5, 4.0)
        >>> policy.after(3, 0.0, rng=random.Random(0)) is None  # tries spent
        True
        >>> policy.after(1, None, rng=random.Random(0)) is None  # never retried
        True
        """
        if floor is None or attempt >= self.max_attempts or not self.honours(floor):
            return None
        return self.delay(attempt, rng=rng, retry_after=floor or None)


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

    A task whose status and progress stand still for ``stall_factor`` times the
    service's estimate is said to be stalled: the handle logs one warning and waits on.

    ``timeout`` is the total seconds a wait may take (``None``: no limit); past it the
    wait raises :class:`~zimage_async.WaitTimeoutError` and the handle stays usable.

    >>> schedule = PollSchedule(jitter=0.0, wait_max=30.0)
    >>> schedule.first_delay(estimated_time=10, rng=random.Random(0))
    5.0
    """

    wait_min: float = attrs.field(default=0.2, validator=_positive)
    wait_max: float = attrs.field(default=5.0, validator=_positive)
    wait_exp_base: float = attrs.field(default=1.6, validator=_growth)
    first_poll_fraction: float = attrs.field(default=0.5, validator=_fraction)
    finish_margin: float = attrs.field(default=0.05, validator=_non_negative)
    jitter: float = attrs.field(default=0.1, validator=_fraction)
    timeout: float | None = attrs.field(default=600.0)
    #: A task is stalled (and a warning logged) when neither its status nor its progress
    #: has changed for this many times the service's estimate.
    stall_factor: float = attrs.field(default=3.0, validator=_positive)

    @wait_max.validator
    def _check_wait_max(self, attribute: attrs.Attribute[float], value: float) -> None:
        rule = "a finite number above 0, at least wait_min (the shortest delay between polls)"
        if value < self.wait_min:
            problem = f"it is {short_repr(value)}, below wait_min ({short_repr(self.wait_min)})"
            raise InvalidRequestError(attribute.name, rule, problem)

    @timeout.validator
    def _check_timeout(self, attribute: attrs.Attribute[float | None], value: float | None) -> None:
        if value is not None:
            rule = "a finite number of seconds above 0, or None for no limit"
            _check(attribute, value, rule, math.inf > _real(attribute, value, rule) > 0)

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
            delay = self._clamp(
                grown(self.wait_min, self.wait_exp_base, attempt - 1, self.wait_max), rng
            )
        if remaining is not None:
            delay = max(0.0, min(delay, remaining))
        return delay


#: Distinct statuses a wait remembers (a gateway inventing new ones moves nothing after).
_STATUSES_KEPT = 8


@attrs.define
class PollState:
    """One wait's poll schedule: fed each snapshot and the time, it says when to look next.

    Pure (no clock, no sleep): *now* and *deadline* are seconds on one monotonic clock
    that the caller owns. :meth:`after` returns the delay before the next look, never past
    the deadline, or ``None`` once the deadline is reached. ``stretch`` multiplies every
    delay (a handle expecting a callback polls that much slower).

    A task that is overdue, still unfinished and without progress after the time that was
    predicted for it (an ``estimated_time`` of 0, progress stuck at 99 %), is polled at
    growing intervals from ``wait_min`` up to ``wait_max``, and any progress resets that.

    >>> from zimage_async import Task
    >>> state = PollState(PollSchedule(jitter=0.0), rng=random.Random(0), deadline=30.0)
    >>> stuck = Task(id="task-unified-1-a", raw_status="pending", task_info=None)
    >>> now, delays = 0.0, []
    >>> for _ in range(9):
    ...     delays.append(round(state.after(stuck, now), 2))
    ...     now += delays[-1]
    >>> delays  # no estimate, no progress: from wait_min up to wait_max
    [0.2, 0.2, 0.32, 0.51, 0.82, 1.31, 2.1, 3.36, 5.0]

    ``predicted_finish`` is the finish the schedule expects (``None`` when it has no
    prediction, or the task is overdue or ended), and :meth:`stalled` says whether
    progress has stood still for several times the service's estimate.
    """

    schedule: PollSchedule
    rng: random.Random = attrs.field(kw_only=True)
    deadline: float | None = attrs.field(kw_only=True)
    stretch: float = attrs.field(default=1.0, kw_only=True)
    looks: int = attrs.field(default=0, init=False)
    overdue: int = attrs.field(default=0, init=False)
    #: When the task is predicted to finish (on the caller's clock), or None if unknown.
    predicted_finish: float | None = attrs.field(default=None, init=False)
    #: When the status or progress last changed (on the caller's clock).
    moved_at: float | None = attrs.field(default=None, init=False)
    #: The service's last estimate of the task's duration, in seconds.
    estimate: float | None = attrs.field(default=None, init=False)
    _promised: float | None = attrs.field(default=None, init=False)
    #: The statuses seen so far, and the highest progress: what counts as moving on.
    _statuses: tuple[str, ...] = attrs.field(default=(), init=False)
    _top: int = attrs.field(default=-1, init=False)
    _last: tuple[float, int] | None = attrs.field(default=None, init=False)  # (time, progress)

    def hinted(self) -> None:
        """Stop stretching the delays: a callback hint came for the task.

        Nothing else will wake the wait: a read that does not show what the callback said
        yet (a gateway answering from a stale replica or cache) is followed by looks at
        the plain schedule, from ``wait_min`` on, not by a nap ``stretch`` times longer.

        >>> state = PollState(PollSchedule(jitter=0.0), rng=random.Random(0), deadline=None,
        ...     stretch=10.0)
        >>> stuck = Task(id="task-unified-1-a", raw_status="processing", task_info=None)
        >>> round(state.after(stuck, 0.0), 2), round(state.after(stuck, 2.0), 2)
        (2.0, 2.0)
        >>> state.hinted()
        >>> round(state.after(stuck, 2.2), 2)
        0.2
        """
        self.stretch = 1.0
        self.overdue = 0
        self._promised = None

    def stalled(self, now: float) -> bool:
        """Whether nothing has moved for more than ``stall_factor`` times the estimate.

        ``False`` while the service gave no estimate, or before the first look.

        >>> from zimage_async import Task, TaskInfo
        >>> state = PollState(PollSchedule(), rng=random.Random(0), deadline=None)
        >>> task = Task(id="task-unified-1-a", raw_status="processing", progress=40,
        ...             task_info=TaskInfo(estimated_time=10))
        >>> _ = state.after(task, 0.0)
        >>> state.stalled(30.0), state.stalled(30.5)
        (False, True)
        """
        if self.moved_at is None or self.estimate is None:
            return False
        return now - self.moved_at > self.schedule.stall_factor * self.estimate

    def _seconds_left(
        self, now: float, status: TaskStatus, progress: int, estimate: float | None
    ) -> float | None:
        """Predict the seconds left from the looks so far (this one included), or None."""
        previous = self._last
        self._last = (now, progress)
        if status is TaskStatus.PENDING:
            return estimate
        if status is not TaskStatus.PROCESSING or not 0 < progress < 100:
            return None
        if previous is None or previous[1] <= 0:
            # One look at the work itself: progress only starts after the queue, so a
            # rate measured from submission would predict the end too late. Look again
            # halfway through the service's estimate, then measure.
            return None if estimate is None else estimate * 0.5
        elapsed = now - previous[0]
        gained = progress - previous[1]
        if elapsed <= 0 or gained <= 0:
            return estimate
        return elapsed * (100 - progress) / gained

    def after(self, task: Task, now: float) -> float | None:
        """Seconds from *now* until the next look at *task*, or None at the deadline."""
        schedule = self.schedule
        self.looks += 1
        progress, estimate = task.progress, task.estimated_time  # each read once per look
        seconds_left = self._seconds_left(now, task.status, progress, estimate)
        finish = None if seconds_left is None else now + seconds_left
        # Moving on is a status or a progress not seen before in this wait: replicas that
        # answer in turn (pending, processing, pending ...; 40 %, 41 %, 40 % ...) do not.
        status = task.raw_status
        new_status = status not in self._statuses and len(self._statuses) < _STATUSES_KEPT
        moved = progress > self._top or new_status
        if progress > self._top:
            self._top = progress
        if new_status:
            self._statuses += (status,)
        if estimate is not None and estimate > 0:
            self.estimate = estimate
        if moved:
            self.overdue = 0
            self.moved_at = now
        elif self._promised is None or now >= self._promised:
            self.overdue += 1
        if self.looks == 1 and progress == 0:
            delay = schedule.first_delay(estimated_time=estimate, rng=self.rng)
            self._promised = now + delay
        elif self.overdue == 0 and seconds_left is not None and seconds_left > 0:
            delay = schedule.next_delay(attempt=self.looks, seconds_left=seconds_left, rng=self.rng)
            self._promised = now + seconds_left
        else:
            # Overdue or without a usable prediction: back off towards wait_max.
            delay = schedule.next_delay(
                attempt=max(1, self.overdue), seconds_left=None, rng=self.rng
            )
            self._promised = None
            finish = None
        self.predicted_finish = None if task.is_terminal else finish
        delay *= self.stretch
        if self.deadline is not None:
            remaining = self.deadline - now
            if remaining <= 0:
                return None
            delay = min(delay, remaining)
        return delay
