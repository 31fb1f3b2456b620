"""Applying the fault plan to live requests: drawing, recording and building the replies."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random

from aiohttp import web

from ._clock import Clock
from ._envelopes import (
    ApiError,
    insufficient_quota,
    internal_error,
    permission_denied,
    rate_limited,
    service_unavailable,
    typeless_error,
    upstream_error,
)
from ._faults import Endpoint, FaultLog, FaultPlan, FaultRecord, FaultRule, FaultState
from ._http import error_response, json_response
from ._nulls import null_shape_applies, with_nulls
from ._numbers import shown
from ._proxy_pages import proxy_error_page, proxy_reason

__all__ = [
    "FaultInjector",
    "altered_body",
    "error_reply",
    "malformed_reply",
    "task_reply",
    "with_unknown_fields",
]

_ERRORS = {
    "http_500": internal_error,
    "http_502": upstream_error,
    "http_503": service_unavailable,
}


def with_unknown_fields(body: dict[str, object]) -> dict[str, object]:
    """Return *body* with extra fields a client must ignore, top-level and nested."""
    extended = dict(body)
    extended["x_emulator_trace"] = {"region": "emu-1", "hops": [1, 2], "nested": {"a": None}}
    extended["priority"] = 5
    task_info = body.get("task_info")
    if isinstance(task_info, dict):
        extended["task_info"] = {**task_info, "queue_position": 3, "worker": {"id": "w-7"}}
    error = body.get("error")
    if isinstance(error, dict):
        extended["error"] = {**error, "details": {"retryable": None}}
    return extended


def _checked_plan(plan: FaultPlan | None) -> FaultPlan:
    """Return *plan* (an empty plan for None); raise ValueError if it is not a FaultPlan."""
    if plan is None:
        return FaultPlan()
    if not isinstance(plan, FaultPlan):
        raise ValueError(
            "faults must be a FaultPlan or None, such as FaultPlan.script('create', "
            f"['http_500']) or FaultPlan.random(rule); got {shown(plan)}."
        )
    return plan


class FaultInjector:
    """Holds the plan in use, draws faults for requests and records each injected fault."""

    def __init__(self, *, plan: FaultPlan | None, rng: random.Random, clock: Clock) -> None:
        self._state = FaultState(_checked_plan(plan))
        self._rng = rng
        self._clock = clock
        self._closing = asyncio.Event()
        self.log = FaultLog()

    @property
    def plan(self) -> FaultPlan:
        """The plan in use."""
        return self._state.plan

    @plan.setter
    def plan(self, plan: FaultPlan | None) -> None:
        self._state = FaultState(_checked_plan(plan))

    def draw(self, endpoint: Endpoint, *, status: str | None = None) -> FaultRule | None:
        """Return the fault for this request (recording it), or None.

        *status* is that of the task body about to be sent, if any: ``unknown_status`` is
        not eligible for a finished task, nor ``null_fields`` for a body its shape does not
        change.
        """

        def eligible(rule: FaultRule) -> bool:
            if rule.kind == "unknown_status":
                return status not in ("completed", "failed", "cancelled")
            if rule.kind == "null_fields":
                return null_shape_applies(rule.null_shape, status)
            return True

        rule = self._state.draw(endpoint, self._rng, eligible)
        if rule is not None:
            self.log.add(FaultRecord(kind=rule.kind, endpoint=endpoint, at=self._clock.now()))
        return rule

    async def wait(self, rule: FaultRule) -> bool:
        """Wait a ``slow`` rule's delay; return False if cut short by shutdown."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._closing.wait(), rule.delay_seconds)
        return not self._closing.is_set()

    def close(self) -> None:
        """Cut every ``slow`` wait short."""
        self._closing.set()

    @property
    def closing(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closing.is_set()


def error_reply(rule: FaultRule) -> web.Response | None:
    """Return the HTTP error reply for an ``http_*`` rule, or None for other kinds.

    A ``*_after_create`` kind answers as the kind it is named after (the task is made
    before, by the caller).
    """
    kind = rule.kind.removesuffix("_after_create")
    if kind == "http_503" and rule.retry_after_seconds is not None:
        hint = f"retry after {rule.retry_after_seconds} seconds"
        return error_response(service_unavailable(suggestion=hint))
    if kind == "http_429":
        seconds = 60 if rule.retry_after_seconds is None else rule.retry_after_seconds
        in_suggestion = rule.retry_after_in in ("suggestion", "both")
        in_header = rule.retry_after_in in ("header", "both")
        error: ApiError = rate_limited(
            suggestion=f"retry after {seconds} seconds" if in_suggestion else None
        )
        return error_response(error, headers={"Retry-After": str(seconds)} if in_header else None)
    if kind == "html_5xx":
        status = rule.gateway_status
        return web.Response(
            status=status,
            text=proxy_error_page(status),
            content_type="text/html",
            headers={"Server": "cloudflare" if status >= 520 else "nginx"},
        )
    if kind == "typeless_5xx":
        status = rule.gateway_status
        return error_response(typeless_error(status, proxy_reason(status)))
    if kind == "http_402":
        return error_response(insufficient_quota(rule.error_code or "insufficient_quota"))
    if kind == "http_403":
        return error_response(permission_denied(rule.error_code))
    factory = _ERRORS.get(kind)
    return error_response(factory()) if factory is not None else None


def malformed_reply(
    body: dict[str, object], *, headers: dict[str, str] | None = None
) -> web.Response:
    """Return a 200 whose JSON body is cut in half."""
    text = json.dumps(body, separators=(",", ":")).encode()
    return web.Response(
        status=200,
        body=text[: len(text) // 2],
        content_type="application/json",
        headers=headers,
    )


def altered_body(body: dict[str, object], rule: FaultRule | None) -> dict[str, object]:
    """Return a task body altered by a body-level fault (or unchanged)."""
    if rule is None:
        return body
    if rule.kind == "unknown_fields":
        return with_unknown_fields(body)
    if rule.kind == "unknown_status":
        return {**body, "status": rule.status_value}
    if rule.kind == "null_fields":
        return with_nulls(body, rule.null_shape)
    return body


def task_reply(
    body: dict[str, object], rule: FaultRule | None, *, headers: dict[str, str] | None = None
) -> web.Response:
    """Return a task reply, altered by a body-level fault (or unchanged)."""
    if rule is not None and rule.kind == "malformed_json":
        return malformed_reply(body, headers=headers)
    return json_response(altered_body(body, rule), headers=headers)
