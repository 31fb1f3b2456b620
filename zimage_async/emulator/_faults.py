"""The fault plan: which requests get which injected failure, decided reproducibly.

A :class:`FaultPlan` holds *rules* (each matching request gets the fault with probability
``rate``, drawn from the emulator's seeded random generator) and *scripts* (the next
matching requests get these faults, in order; ``"ok"`` lets one through). Scripts are
consulted before rules. Faults only hit requests the emulator would otherwise answer
successfully: an unauthenticated or invalid request gets its 401/400/404, never a fault,
and does not use up a script step.

The fault kinds, what each does and the endpoints it can hit, are listed in
:mod:`zimage_async.emulator._fault_kinds`; this module re-exports them.

Example::

    plan = FaultPlan.script("create", ["http_429", "ok", "http_500"]) + FaultPlan(
        rules=(FaultRule(kind="http_503", endpoint="task", rate=0.1),)
    )
"""

from __future__ import annotations

import collections
import random
from collections.abc import Callable, Iterable
from typing import get_args

import attrs

from ._addresses import is_loopback_name
from ._fault_kinds import (
    AFTER_CREATE_FAULTS,
    BILLED_CREATE_FAULTS,
    FAULT_ENDPOINTS,
    GATEWAY_STATUS_DEFAULTS,
    REPLACING_FAULTS,
    SCRIPTABLE_ENDPOINTS,
    Endpoint,
    FaultKind,
    RetryAfterIn,
    RuleEndpoint,
)
from ._framing import BodyFraming
from ._nulls import NULL_SHAPES, NullShape, null_shape_applies
from ._numbers import finite_number, is_int, shown

__all__ = [
    "AFTER_CREATE_FAULTS",
    "BILLED_CREATE_FAULTS",
    "REPLACING_FAULTS",
    "BodyFraming",
    "Endpoint",
    "FaultKind",
    "FaultLog",
    "FaultPlan",
    "FaultRecord",
    "FaultRule",
    "FaultScript",
    "FaultState",
]


#: The statuses ``unknown_status`` must not stand in for: the task would look ended.
_ENDED = frozenset({"completed", "failed", "cancelled"})

# 2**31 - 1: the largest delta-seconds value RFC 9111 asks a cache to take as given.
_MAX_RETRY_AFTER_SECONDS = 2_147_483_647


def _check_kind(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or value not in FAULT_ENDPOINTS:
        kinds = ", ".join(sorted(FAULT_ENDPOINTS))
        raise ValueError(f"Unknown fault kind {shown(value)}; use one of: {kinds}.")


def _check_fraction(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    number = finite_number(value)
    if number is None or not 0.0 <= number <= 1.0:
        raise ValueError(f"{attribute.name} must be a number from 0 to 1, got {shown(value)}.")


def _check_non_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    number = finite_number(value)
    if number is None or number < 0:
        raise ValueError(
            f"{attribute.name} must be a finite number of at least 0, got {shown(value)}."
        )


@attrs.frozen(kw_only=True)
class FaultRule:
    """One kind of fault, where it applies, how often, and its options.

    ``rate`` is the probability (0..1) that a matching request gets it when the rule is in
    :attr:`FaultPlan.rules`; in a script it is ignored. ``delay_seconds`` (real seconds) is
    for ``slow``; ``retry_after_seconds`` (whole seconds from 0 to 2**31 - 1; default: the
    documented 60 for 429, 30 for 503) and ``retry_after_in`` for ``http_429*``,
    ``retry_after_seconds`` for ``http_503*``;
    ``status_value`` for ``unknown_status``; ``truncate_fraction`` for ``truncate``;
    ``redirect_host`` for ``redirect``; ``http_status`` (500-599) for ``html_5xx*`` and
    ``typeless_5xx*`` (default: 502 for HTML, 500 for typeless); ``error_code`` (the
    envelope's gateway code) for ``http_402`` and ``http_403``; ``null_shape`` for
    ``null_fields``; ``body_framing`` and ``truncate_fraction`` for ``truncate_close``;
    ``garbage_bytes`` for ``trailing_garbage``.

    Example::

        FaultRule(kind="html_5xx", http_status=522)
        FaultRule(kind="http_402", error_code="quota_not_enough")
        FaultRule(kind="null_fields", null_shape="error_string")
    """

    kind: FaultKind = attrs.field(validator=_check_kind)
    endpoint: RuleEndpoint = attrs.field(default="any")
    rate: float = attrs.field(default=1.0, validator=_check_fraction)
    delay_seconds: float = attrs.field(default=2.0, validator=_check_non_negative)
    retry_after_seconds: int | None = attrs.field(default=None)
    retry_after_in: RetryAfterIn = attrs.field(default="both")
    status_value: str = attrs.field(default="queued")
    truncate_fraction: float = attrs.field(default=0.5, validator=_check_fraction)
    redirect_host: str | None = attrs.field(default=None)
    http_status: int | None = attrs.field(default=None)
    error_code: str | None = None
    null_shape: NullShape = attrs.field(default="absent")
    body_framing: BodyFraming = attrs.field(default="close")
    garbage_bytes: int = attrs.field(default=32)

    @property
    def gateway_status(self) -> int:
        """The HTTP status of an ``html_5xx*`` or ``typeless_5xx*`` reply."""
        if self.http_status is not None:
            return self.http_status
        return GATEWAY_STATUS_DEFAULTS.get(self.kind, 500)

    @http_status.validator
    def _check_http_status(self, attribute: attrs.Attribute[int | None], value: int | None) -> None:
        if value is not None and not (isinstance(value, int) and 500 <= value <= 599):
            raise ValueError(f"http_status must be a 5xx status from 500 to 599, got {value!r}.")

    @retry_after_seconds.validator
    def _check_retry_after(self, attribute: attrs.Attribute[int | None], value: int | None) -> None:
        if value is None or (
            isinstance(value, int)
            and not isinstance(value, bool)
            and 0 <= value <= _MAX_RETRY_AFTER_SECONDS
        ):
            return
        raise ValueError(
            "retry_after_seconds must be whole seconds from 0 to "
            f"{_MAX_RETRY_AFTER_SECONDS} (2**31 - 1), got {value!r}."
        )

    @null_shape.validator
    def _check_null_shape(self, attribute: attrs.Attribute[str], value: str) -> None:
        if not isinstance(value, str) or value not in NULL_SHAPES:
            shapes = ", ".join(sorted(NULL_SHAPES))
            raise ValueError(f"Unknown null_shape {shown(value)}; use one of: {shapes}.")

    @body_framing.validator
    def _check_body_framing(self, attribute: attrs.Attribute[str], value: str) -> None:
        if value not in ("close", "chunked"):
            raise ValueError(f"body_framing must be 'close' or 'chunked', got {value!r}.")

    @garbage_bytes.validator
    def _check_garbage_bytes(self, attribute: attrs.Attribute[int], value: int) -> None:
        if not (is_int(value) and 1 <= value <= 1_048_576):
            raise ValueError(f"garbage_bytes must be an int from 1 to 1048576, got {shown(value)}.")

    @endpoint.validator
    def _check_endpoint(self, attribute: attrs.Attribute[str], value: str) -> None:
        if value not in get_args(RuleEndpoint):
            raise ValueError(
                f"endpoint must be 'create', 'task', 'image', 'callback' or 'any', got {value!r}."
            )
        if value != "any" and value not in FAULT_ENDPOINTS[self.kind]:
            allowed = ", ".join(sorted(FAULT_ENDPOINTS[self.kind]))
            raise ValueError(f"The fault {self.kind!r} applies to {allowed}, not {value!r}.")
        if self.never_applies_to(value):
            raise _never_on_create(self)

    @retry_after_in.validator
    def _check_retry_after_in(self, attribute: attrs.Attribute[str], value: str) -> None:
        if value not in get_args(RetryAfterIn):
            raise ValueError(f"retry_after_in must be header, suggestion or both, not {value!r}.")

    @redirect_host.validator
    def _check_redirect_host(
        self, attribute: attrs.Attribute[str | None], value: str | None
    ) -> None:
        if value is None or (isinstance(value, str) and is_loopback_name(value)):
            return
        raise ValueError(
            "redirect_host must name this machine (localhost, or a loopback address such as"
            " 127.0.0.1 or ::1), so that the redirect reaches the same listener; got "
            f"{shown(value)}."
        )

    @status_value.validator
    def _check_status_value(self, attribute: attrs.Attribute[str], value: str) -> None:
        if not isinstance(value, str) or not value.strip() or value in _ENDED:
            raise ValueError(
                "status_value must be a status text other than completed, failed or cancelled "
                f"(unknown_status is for unfinished tasks), got {shown(value)}."
            )

    def never_applies_to(self, endpoint: str) -> bool:
        """Tell whether this fault can never change an answer of *endpoint* (its body's shape)."""
        return (
            endpoint == "create"
            and self.kind == "null_fields"
            and not null_shape_applies(self.null_shape, "pending")
        )

    def applies_to(self, endpoint: str) -> bool:
        """Tell whether this rule can hit a request to *endpoint*."""
        return endpoint in FAULT_ENDPOINTS[self.kind] and self.endpoint in ("any", endpoint)


def _step(endpoint: Endpoint, step: str | FaultRule | None) -> FaultRule | None:
    if step is None or step == "ok":
        return None
    if isinstance(step, str):
        return FaultRule(kind=step, endpoint=endpoint)  # type: ignore[arg-type]
    if not step.applies_to(endpoint):
        raise ValueError(f"The fault {step.kind!r} cannot hit the {endpoint!r} endpoint.")
    if step.never_applies_to(endpoint):
        raise _never_on_create(step)
    return step


def _never_on_create(rule: FaultRule) -> ValueError:
    return ValueError(
        f"null_shape={rule.null_shape!r} changes only a failed or cancelled task, and a "
        "create's answer is always pending: it can never apply to the 'create' endpoint "
        "(use it on 'task')."
    )


@attrs.frozen(kw_only=True)
class FaultScript:
    """Faults for the next requests to one endpoint, in order (None lets one through)."""

    #: The endpoint whose next requests the steps apply to.
    endpoint: Endpoint
    #: One step per request, in order: the fault to inject, or None for a normal answer.
    steps: tuple[FaultRule | None, ...]


@attrs.frozen(kw_only=True)
class FaultPlan:
    """Rules and scripts deciding which requests get injected faults; see the module doc."""

    rules: tuple[FaultRule, ...] = ()
    scripts: tuple[FaultScript, ...] = ()

    @classmethod
    def script(cls, endpoint: Endpoint, steps: Iterable[str | FaultRule | None]) -> FaultPlan:
        """Return a plan whose next requests to *endpoint* get *steps* in order.

        A step is a fault kind, a :class:`FaultRule` for options, or ``"ok"``.
        """
        if endpoint not in SCRIPTABLE_ENDPOINTS:
            raise ValueError(
                f"A script needs the endpoint create, task, image or callback: {endpoint!r}."
            )
        script = FaultScript(endpoint=endpoint, steps=tuple(_step(endpoint, s) for s in steps))
        return cls(scripts=(script,))

    @classmethod
    def random(cls, *rules: FaultRule) -> FaultPlan:
        """Return a plan of rate-based *rules* (the first rule that fires wins)."""
        return cls(rules=rules)

    def __add__(self, other: FaultPlan) -> FaultPlan:
        return FaultPlan(rules=self.rules + other.rules, scripts=self.scripts + other.scripts)


@attrs.frozen(kw_only=True)
class FaultRecord:
    """One injected fault: its kind, the endpoint it hit, and the clock time."""

    kind: str
    endpoint: str
    at: float


class FaultState:
    """A plan in use: remembers how far each script has got."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._positions = [0] * len(plan.scripts)

    def draw(
        self, endpoint: Endpoint, rng: random.Random, eligible: Callable[[FaultRule], bool]
    ) -> FaultRule | None:
        """Return the fault for the next request to *endpoint*, or None for no fault.

        A script step that is not *eligible* for this request waits for the next one; the
        other scripts and the rules go on meanwhile.
        """
        for number, script in enumerate(self.plan.scripts):
            position = self._positions[number]
            if script.endpoint != endpoint or position >= len(script.steps):
                continue
            step = script.steps[position]
            if step is not None and not eligible(step):  # it waits: the others go on
                continue
            self._positions[number] = position + 1
            return step
        for rule in self.plan.rules:
            if rule.applies_to(endpoint) and eligible(rule) and rng.random() < rule.rate:
                return rule
        return None


class FaultLog:
    """Every fault injected so far."""

    def __init__(self) -> None:
        self._records: list[FaultRecord] = []
        self._counts: collections.Counter[str] = collections.Counter()

    def add(self, record: FaultRecord) -> None:
        """Record one injected fault."""
        self._records.append(record)
        self._counts[record.kind] += 1

    @property
    def records(self) -> tuple[FaultRecord, ...]:
        """All injected faults, oldest first."""
        return tuple(self._records)

    def counts(self) -> dict[str, int]:
        """Return the number of injected faults by kind."""
        return dict(self._counts)
