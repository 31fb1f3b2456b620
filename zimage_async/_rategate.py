"""The session's rate gate: creates wait out a 429's advice, then go at a learned pace.

A create answered 429 may have made a task, so it is sent once more at most (see
:mod:`._outcome`); a resend that meets the limit again leaves it uncertain. Released
together when the advice runs out, the creates held by a 429 (their resends among them)
would meet the same limit at once. So after a create's 429 the gate paces them: it
learns how many creates the gateway accepted around the 429 (those answered with a task
from one advice before it until the pause ends) and then lets at most that many go per
advised interval, one at least (a probe), spread evenly over the interval with some
slack. Each new 429 pauses again and learns again. Once no 429 has come for
:data:`QUIET_INTERVALS` intervals and no create waits its turn, the gate opens fully.

The decision (:meth:`RateGate._step`) reads the clock it is given and nothing else;
:meth:`RateGate.admit` sleeps as it says. While open, the gate costs a create one
attribute read on the way in, and a clock read and an append when its task is made.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable

from ._exceptions import RateLimitError

__all__ = ["ACCEPTED_MEMORY", "QUIET_INTERVALS", "SLACK", "RateGate"]

#: The most accepted creates remembered, to learn a rate from: the most learned per interval.
ACCEPTED_MEMORY = 1024
#: While pacing, the learned number of creates is spread over the advised interval and
#: this share more: room for the requests' travel and the gateway's own clock.
SLACK = 0.1
#: Advised intervals without a 429, with no create waiting, after which the gate opens.
QUIET_INTERVALS = 3

#: The turn a :meth:`RateGate.wait` took, for the create that follows it in this context:
#: the gate, its pause count then, and when the turn came.
_TURN: contextvars.ContextVar[tuple[RateGate, int, float] | None] = contextvars.ContextVar(
    "zimage_async_rate_turn", default=None
)


class RateGate:
    """Session-wide back-pressure: after a 429, creates wait out the advice, then go paced.

    Every try of a create call passes :meth:`admit` (a resend as a first send); a 429
    calls :meth:`pause`, and each create answered with a task calls :meth:`accepted`.
    After a create's 429 the creates waiting are not released together: they take turns,
    at most as many per advised interval as the gateway accepted around the 429 and at
    least one, until the gateway has been quiet for a while (see the module's notes). A
    429 on a task read (``pace=False``) holds creates for its advice only, then lets them
    go with a little jitter; task reads themselves never pass the gate.

    No pause is longer than *max_pause* (the retry policy's ``max_retry_after``): for a
    longer advice the gate does not make callers sleep; for *max_pause* seconds it raises
    :class:`RateLimitError` to the calls that would have to wait, and then opens again by
    itself, so one absurd ``Retry-After`` cannot freeze a session. An earlier pause is
    never cut short.
    """

    def __init__(
        self,
        *,
        rng: random.Random,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_pause: float = 120.0,
    ):
        self._rng = rng
        self._clock = clock
        self._sleep = sleep
        self._max_pause = max_pause
        #: No pause, refusal or pacing in force: creates pass at once.
        self._open = True
        self._until = 0.0
        self._refusing_until = 0.0
        self._advice_until = 0.0
        self._pauses = 0
        #: When each of the latest creates accepted was answered.
        self._accepted: deque[float] = deque(maxlen=ACCEPTED_MEMORY)
        # Pacing, after a create's 429: none while the interval is 0.
        self._interval = 0.0
        self._last_429 = 0.0
        self._learn_from = 0.0
        self._spacing: float | None = None  # None: learned when the pause ends
        self._rebase = False  # the turns restart when the pause ends
        self._turns = 0  # turns handed out
        self._gone = 0  # one past the latest turn that went
        self._base_turn = 0
        self._base_time = 0.0

    @property
    def paused_for(self) -> float:
        """Seconds until the pause or refusal in force ends (0: none, or pacing only)."""
        return max(0.0, self._until - self._clock(), self._refusing_until - self._clock())

    @property
    def pacing(self) -> bool:
        """Whether creates go by turns, after a create's 429."""
        return self._interval > 0.0

    def accepted(self) -> None:
        """Note a create answered with a task: the gateway's rate is learned from these."""
        self._accepted.append(self._clock())

    def pause(self, seconds: float, *, pace: bool = True) -> None:
        """Hold creates for *seconds* from now (an earlier pause is never cut).

        *pace*: the 429 answered a create, so the creates go by turns afterwards, at the
        rate learned again now; False for a 429 on a task read, which tells nothing of
        the rate of creates.
        """
        now = self._clock()
        self._open = False
        self._pauses += 1
        if seconds > self._max_pause:
            self._refusing_until = max(self._refusing_until, now + self._max_pause)
            self._advice_until = max(self._advice_until, now + seconds)
            return
        self._until = max(self._until, now + seconds)
        if pace:
            self._interval = max(self._interval, seconds)
            self._last_429 = now
            self._learn_from = max(self._learn_from, now - seconds)
            self._spacing = None
        self._rebase = self.pacing

    async def admit(self) -> None:
        """Return when a create may be sent; raise RateLimitError during a refused pause.

        The turn a :meth:`wait` took just before, in this context, is taken instead of
        another.
        """
        if self._open:  # the fast path: no 429 lately
            return
        turn = _TURN.get()
        if turn is not None:
            _TURN.set(None)
            gate, pauses, came = turn
            now = self._clock()
            spacing = self._spacing if self._spacing is not None else 0.0
            if gate is self and pauses == self._pauses and now - came <= spacing:
                return
        ticket: int | None = None
        while True:
            delay, ticket = self._step(self._clock(), ticket)
            if delay <= 0.0:
                return
            await self._sleep(delay)

    async def wait(self) -> None:
        """Wait for the turn of the create this context sends next (as :meth:`admit`).

        For a batch, which waits before it records a create: the create's own
        :meth:`admit` then takes this turn, if no 429 came since and the next turn has
        not come yet.
        """
        if self._open:
            return
        await self.admit()
        if not self._open:
            _TURN.set((self, self._pauses, self._clock()))

    def _refusal(self, now: float) -> RateLimitError:
        advice = self._advice_until - now
        return RateLimitError(
            f"the service asked to wait {advice:.0f} s more, longer than the "
            f"{self._max_pause:g} s this session waits (RetryPolicy.max_retry_after); "
            f"new submissions are refused for {self._refusing_until - now:.0f} s more, "
            "then let through again (task reads are not held)",
            status=429,
            type="rate_limit_error",
            retry_after=advice,
        )

    def _step(self, now: float, ticket: int | None) -> tuple[float, int | None]:
        """Decide for a create holding turn *ticket* (None: none yet) at *now*.

        Return the seconds it naps before asking again (0: it goes now) and its turn;
        raise RateLimitError during a refused pause.
        """
        if now < self._refusing_until:
            raise self._refusal(now)
        if not self.pacing:
            delay = self._until - now
            if delay <= 0.0:
                self._open = True
                return 0.0, None
            return delay + self._rng.random() * min(1.0, delay * 0.1), None
        if now < self._until:  # held: its turn is kept for when the pause ends
            return self._until - now, self._take_turn(now) if ticket is None else ticket
        spacing = self._spacing
        if spacing is None:
            learned = sum(1 for when in self._accepted if when >= self._learn_from)
            spacing = self._spacing = self._interval * (1.0 + SLACK) / max(1, learned)
        if self._rebase:
            self._rebase = False
            self._base_turn, self._base_time = self._gone, max(self._until, now)
        if ticket is None:
            idle = self._base_time + (self._turns - self._base_turn) * spacing <= now
            if idle and now - self._last_429 >= QUIET_INTERVALS * self._interval:
                self._interval, self._spacing, self._open = 0.0, None, True
                self._gone = self._turns  # every turn handed out has gone, or was dropped
                return 0.0, None
            ticket = self._take_turn(now)
        due = max(self._until, self._base_time + (ticket - self._base_turn) * spacing)
        if due <= now:
            self._gone = max(self._gone, ticket + 1)
            return 0.0, ticket
        # A nap of one interval at most: a pace learned again after a 429 is taken up.
        return min(due - now, self._interval), ticket

    def _take_turn(self, now: float) -> int:
        """Hand out the next turn; with nobody before it, the turns start from *now*."""
        ticket = self._turns
        self._turns += 1
        spacing = self._spacing
        late = spacing is not None and self._base_time + (ticket - self._base_turn) * spacing < now
        if late and not self._rebase:
            self._base_turn, self._base_time = ticket, now
        return ticket
