"""What every handle of one session shares: the API client, the policies, the clocks."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs

from ._deadlines import Deadlines
from ._exceptions import InvalidRequestError, WaitTimeoutError
from ._imagelimits import ImageLimits
from ._quoting import int_text, wrong_type
from ._schedule import PollSchedule, RetryPolicy
from ._secret import Secret

if TYPE_CHECKING:
    from ._api import APIClient
    from ._hints import HintSource
    from ._telemetry import TaskSpan
    from ._transport import Transport

__all__ = ["DEFAULT", "Allowance", "Runtime", "check_wait_timeout", "restated", "wait_limit"]


class _Default:
    """Marks "use the session's poll schedule timeout"."""

    def __repr__(self) -> str:
        return "<session default>"


#: Pass as ``timeout`` to use the session's :attr:`PollSchedule.timeout`.
DEFAULT: Any = _Default()


_TIMEOUT_RULE = (
    "a finite number of seconds above 0, or None for no limit (left out: the session's "
    "poll schedule)"
)


def check_wait_timeout(timeout: float | None) -> float | None:
    """Return a wait's *timeout*: :data:`DEFAULT`, None, or seconds above 0 as a float.

    Raises :class:`InvalidRequestError` (a :class:`ValueError`) naming ``timeout`` for
    anything else: not a number, a bool, not above 0, NaN, infinity (None is no limit, as
    for :attr:`PollSchedule.timeout`), more than a float holds.

    >>> check_wait_timeout(5)
    5.0
    """
    if timeout is DEFAULT or timeout is None:
        return timeout
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise InvalidRequestError("timeout", _TIMEOUT_RULE, wrong_type(timeout))
    try:
        seconds = float(timeout)
    except OverflowError:
        raise InvalidRequestError(
            "timeout", _TIMEOUT_RULE, f"{int_text(int(timeout))} is more than a float holds"
        ) from None
    if not math.inf > seconds > 0:
        raise InvalidRequestError("timeout", _TIMEOUT_RULE, f"got {timeout!r}")
    return seconds


def wait_limit(timeout: float | None, poll: PollSchedule) -> float | None:
    """Return the seconds a wait may take: *timeout*, or *poll*'s for :data:`DEFAULT`.

    Raises :class:`InvalidRequestError` for a *timeout* :func:`check_wait_timeout`
    refuses (``None`` waits without limit).
    """
    timeout = check_wait_timeout(timeout)
    return poll.timeout if timeout is DEFAULT else timeout


class Allowance:
    """One limit of seconds shared by waits made one after another: each gets what is left.

    A batch item's wait for its task, then for its images, share the item's ``timeout``.

    >>> allowed = Allowance(None)
    >>> allowed.left() is None
    True
    """

    __slots__ = ("_end", "limit")

    def __init__(self, limit: float | None) -> None:
        self.limit = limit
        self._end = None if limit is None else time.monotonic() + limit

    def left(self) -> float | None:
        """Return the seconds left (None: no limit); a spent one gives a wait no time."""
        return None if self._end is None else max(self._end - time.monotonic(), _NO_TIME)


def restated(error: WaitTimeoutError, limit: float | None) -> WaitTimeoutError:
    """Return *error*, raised by one of an allowance's waits, as a timeout of its *limit*."""
    return WaitTimeoutError(
        task_id=error.task_id or "?",
        timeout=limit or 0.0,
        last_status=error.last_status,
        stage=error.stage,
    )


#: The timeout a wait gets when its share of an allowance is spent: it times out at once.
_NO_TIME = 1e-6


@attrs.frozen(kw_only=True)
class Runtime:
    """What every handle of one session shares: the API client, the policies, the clock."""

    api: APIClient
    transport: Transport
    poll: PollSchedule
    retry: RetryPolicy
    limits: ImageLimits
    link_ttl: float
    rng: random.Random
    check_open: Callable[[], None]
    #: The session's callback receiver, if it has one: callbacks wake waits.
    hints: HintSource | None = None
    #: How much longer poll delays are while a callback is expected.
    callback_poll_factor: float = 1.0
    #: Monotonic seconds: the event loop's clock (deadlines are set on it).
    clock: Callable[[], float] = time.monotonic
    #: Unix time, for link lifetimes.
    now: Callable[[], float] = time.time
    #: Sleeps between polls.
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    #: Unknown statuses already warned about (once per session and status).
    warned_statuses: set[str] = attrs.field(factory=set)
    #: The deadlines of the waits in progress: one timer for every waiting handle.
    deadlines: Deadlines = attrs.field(factory=Deadlines)
    #: What image hosts are never sent (the API key): masked should one echo it.
    secrets: tuple[Secret, ...] = attrs.field(default=(), repr=False)
    #: The task spans still open, ended when the session closes (empty while no
    #: span is recorded): each leaves it when it ends.
    open_spans: set[TaskSpan] = attrs.field(factory=set)
