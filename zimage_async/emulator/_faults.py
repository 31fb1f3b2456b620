"""The fault plan: which requests get which injected failure, decided reproducibly.

A :class:`FaultPlan` holds *rules* (each matching request gets the fault with probability
``rate``, drawn from the emulator's seeded random generator) and *scripts* (the next
matching requests get these faults, in order; ``"ok"`` lets one through). Scripts are
consulted before rules. Faults only hit requests the emulator would otherwise answer
successfully: an unauthenticated or invalid request gets its 401/400/404, never a fault,
and does not use up a script step.

Fault kinds and the endpoints they apply to (``create``, ``task``, ``image``):

==========================  ==================  ===============================================
kind                        endpoints           effect
==========================  ==================  ===============================================
``http_429``                all                 429 ``rate_limit_error``; ``Retry-After`` header
                                                and/or ``fallback_suggestion: "retry after N
                                                seconds"`` (``retry_after_in``)
``http_500``                all                 documented 500 envelope; on create, no task
``http_500_after_create``   create              the task IS created and billed, then a 500
``http_502``                all                 documented 502 envelope; on create, no task
``http_503``                all                 documented 503 envelope; on create, no task
``reset``                   all                 connection aborted, no reply; on create, no task
``reset_after_create``      create              task created and billed, then the connection
                                                is aborted
``truncate``                image               full ``Content-Length``, a part of the bytes
                                                (``truncate_fraction``), then the connection
                                                is closed
``malformed_json``          create, task        200 whose JSON is cut in half; on create the
                                                task IS created and billed
``slow``                    all                 the reply waits ``delay_seconds`` real seconds
                                                (cut short on shutdown); on create the task is
                                                created after the wait
``unknown_fields``          create, task        extra fields, top-level and nested, in the task
``unknown_status``          task                ``status`` is ``status_value`` (e.g.
                                                ``"queued"``); only for unfinished tasks
``redirect``                image               302 to the same file, on ``redirect_host`` if
                                                set (a host name that reaches the same
                                                listener, e.g. ``localhost``)
==========================  ==================  ===============================================

Example::

    plan = FaultPlan.script("create", ["http_429", "ok", "http_500"]) + FaultPlan(
        rules=(FaultRule(kind="http_503", endpoint="task", rate=0.1),)
    )
"""

from __future__ import annotations

import collections
import math
import random
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Literal, get_args

import attrs

__all__ = [
    "BILLED_CREATE_FAULTS",
    "Endpoint",
    "FaultKind",
    "FaultLog",
    "FaultPlan",
    "FaultRecord",
    "FaultRule",
    "FaultScript",
    "FaultState",
]

FaultKind = Literal[
    "http_429",
    "http_500",
    "http_500_after_create",
    "http_502",
    "http_503",
    "reset",
    "reset_after_create",
    "truncate",
    "malformed_json",
    "slow",
    "unknown_fields",
    "unknown_status",
    "redirect",
]
Endpoint = Literal["create", "task", "image"]
RuleEndpoint = Literal["create", "task", "image", "any"]
RetryAfterIn = Literal["header", "suggestion", "both"]

_ALL: frozenset[str] = frozenset({"create", "task", "image"})
FAULT_ENDPOINTS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "http_429": _ALL,
        "http_500": _ALL,
        "http_500_after_create": frozenset({"create"}),
        "http_502": _ALL,
        "http_503": _ALL,
        "reset": _ALL,
        "reset_after_create": frozenset({"create"}),
        "truncate": frozenset({"image"}),
        "malformed_json": frozenset({"create", "task"}),
        "slow": _ALL,
        "unknown_fields": frozenset({"create", "task"}),
        "unknown_status": frozenset({"task"}),
        "redirect": frozenset({"image"}),
    }
)
"""The endpoints each fault kind can hit."""

BILLED_CREATE_FAULTS: frozenset[str] = frozenset(
    {"http_500_after_create", "reset_after_create", "malformed_json", "slow", "unknown_fields"}
)
"""Fault kinds that still create (and bill) a task when they hit the create call."""


def _check_kind(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in FAULT_ENDPOINTS:
        kinds = ", ".join(sorted(FAULT_ENDPOINTS))
        raise ValueError(f"Unknown fault kind {value!r}; use one of: {kinds}.")


def _check_fraction(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{attribute.name} must be from 0 to 1, got {value!r}.")


def _check_non_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{attribute.name} must be a finite number of at least 0, got {value!r}.")


@attrs.frozen(kw_only=True)
class FaultRule:
    """One kind of fault, where it applies, how often, and its options.

    ``rate`` is the probability (0..1) that a matching request gets it when the rule is in
    :attr:`FaultPlan.rules`; in a script it is ignored. ``delay_seconds`` (real seconds) is
    for ``slow``; ``retry_after_seconds`` (default: the documented 60 for 429, 30 for 503)
    and ``retry_after_in`` for ``http_429``, ``retry_after_seconds`` for ``http_503``;
    ``status_value`` for ``unknown_status``; ``truncate_fraction`` for ``truncate``;
    ``redirect_host`` for ``redirect``.
    """

    kind: FaultKind = attrs.field(validator=_check_kind)
    endpoint: RuleEndpoint = attrs.field(default="any")
    rate: float = attrs.field(default=1.0, validator=_check_fraction)
    delay_seconds: float = attrs.field(default=2.0, validator=_check_non_negative)
    retry_after_seconds: int | None = None
    retry_after_in: RetryAfterIn = attrs.field(default="both")
    status_value: str = "queued"
    truncate_fraction: float = attrs.field(default=0.5, validator=_check_fraction)
    redirect_host: str | None = None

    @endpoint.validator
    def _check_endpoint(self, attribute: attrs.Attribute[str], value: str) -> None:
        if value not in get_args(RuleEndpoint):
            raise ValueError(f"endpoint must be 'create', 'task', 'image' or 'any', got {value!r}.")
        if value != "any" and value not in FAULT_ENDPOINTS[self.kind]:
            allowed = ", ".join(sorted(FAULT_ENDPOINTS[self.kind]))
            raise ValueError(f"The fault {self.kind!r} applies to {allowed}, not {value!r}.")

    @retry_after_in.validator
    def _check_retry_after_in(self, attribute: attrs.Attribute[str], value: str) -> None:
        if value not in get_args(RetryAfterIn):
            raise ValueError(f"retry_after_in must be header, suggestion or both, not {value!r}.")

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
    return step


@attrs.frozen(kw_only=True)
class FaultScript:
    """Faults for the next requests to one endpoint, in order (None lets one through)."""

    endpoint: Endpoint
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
        if endpoint not in _ALL:
            raise ValueError(f"A script needs the endpoint create, task or image: {endpoint!r}.")
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

        A script step that is not *eligible* for this request waits for the next one.
        """
        for number, script in enumerate(self.plan.scripts):
            position = self._positions[number]
            if script.endpoint != endpoint or position >= len(script.steps):
                continue
            step = script.steps[position]
            if step is not None and not eligible(step):
                return None
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
