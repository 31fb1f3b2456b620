"""The fault kinds: what each does, the endpoints it can hit, and how each group answers.

Fault kinds and the endpoints they apply to (``create``, ``task``, ``image``):

==========================  ==================  ===============================================
kind                        endpoints           effect
==========================  ==================  ===============================================
``http_429``                all                 429 ``rate_limit_error``; ``Retry-After`` header
                                                and/or ``fallback_suggestion: "retry after N
                                                seconds"`` (``retry_after_in``)
``http_429_after_create``   create              the task IS created and billed, then the 429
``http_500``                all                 documented 500 envelope; on create, no task
``http_500_after_create``   create              the task IS created and billed, then a 500
``http_502``                all                 documented 502 envelope; on create, no task
``http_502_after_create``   create              the task IS created and billed, then the 502
``http_503``                all                 documented 503 envelope; on create, no task
``http_503_after_create``   create              the task IS created and billed, then the 503
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
``html_5xx``                all                 a proxy's HTML page (``text/html``, no JSON
                                                envelope) with status ``http_status``
                                                (default 502; 500-504 look like nginx,
                                                520-524 like Cloudflare); on create, no task
``html_5xx_after_create``   create              the task IS created and billed, then the
                                                proxy's HTML page
``typeless_5xx``            create, task        a JSON envelope without ``type``
                                                (``{"error": {"code", "message"}}``), status
                                                ``http_status`` (default 500); on create, no
                                                task
``typeless_5xx_after_create`` create            the task IS created and billed, then the
                                                envelope without ``type``
``http_402``                create              402 ``insufficient_quota_error`` with the
                                                gateway code ``error_code`` (default
                                                ``insufficient_quota``; e.g.
                                                ``quota_not_enough``, ``key_disabled``: the
                                                family's key refusals come as 402 too); a
                                                pre-charge refusal: no task, nothing billed
``http_403``                create, task        403 ``permission_error``: the documented one
                                                (code 403), or with the gateway code
                                                ``error_code``; on create, no task
``null_fields``             create, task,       optional fields sent as ``null``, in the shape
                            callback            ``null_shape`` (see ``_nulls``; default
                                                ``absent``); waits for a body the shape applies
                                                to; on create the task IS created and billed
``truncate_close``          image               no ``Content-Length``: ``body_framing``
                                                ``"close"`` (default; the body ends when the
                                                connection closes) or ``"chunked"``; a part of
                                                the bytes (``truncate_fraction``), then a clean
                                                close
``trailing_garbage``        image               ``garbage_bytes`` junk bytes after the image's
                                                end, counted in ``Content-Length``
==========================  ==================  ===============================================

``unknown_fields`` and ``null_fields`` also apply to the ``callback`` endpoint: the body of
one callback delivery (all its attempts) is drawn once, when the task ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

__all__ = [
    "AFTER_CREATE_FAULTS",
    "BILLED_CREATE_FAULTS",
    "FAULT_ENDPOINTS",
    "GATEWAY_STATUS_DEFAULTS",
    "REPLACING_FAULTS",
    "SCRIPTABLE_ENDPOINTS",
    "Endpoint",
    "FaultKind",
    "RetryAfterIn",
    "RuleEndpoint",
]

FaultKind = Literal[
    "http_429",
    "http_429_after_create",
    "http_500",
    "http_500_after_create",
    "http_502",
    "http_502_after_create",
    "http_503",
    "http_503_after_create",
    "reset",
    "reset_after_create",
    "truncate",
    "malformed_json",
    "slow",
    "unknown_fields",
    "unknown_status",
    "redirect",
    "html_5xx",
    "html_5xx_after_create",
    "typeless_5xx",
    "typeless_5xx_after_create",
    "http_402",
    "http_403",
    "null_fields",
    "truncate_close",
    "trailing_garbage",
]
Endpoint = Literal["create", "task", "image", "callback"]
RuleEndpoint = Literal["create", "task", "image", "callback", "any"]
RetryAfterIn = Literal["header", "suggestion", "both"]

_ALL: frozenset[str] = frozenset({"create", "task", "image"})
SCRIPTABLE_ENDPOINTS: frozenset[str] = _ALL | {"callback"}
FAULT_ENDPOINTS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "http_429": _ALL,
        "http_429_after_create": frozenset({"create"}),
        "http_500": _ALL,
        "http_500_after_create": frozenset({"create"}),
        "http_502": _ALL,
        "http_502_after_create": frozenset({"create"}),
        "http_503": _ALL,
        "http_503_after_create": frozenset({"create"}),
        "reset": _ALL,
        "reset_after_create": frozenset({"create"}),
        "truncate": frozenset({"image"}),
        "malformed_json": frozenset({"create", "task"}),
        "slow": _ALL,
        "unknown_fields": frozenset({"create", "task", "callback"}),
        "unknown_status": frozenset({"task"}),
        "redirect": frozenset({"image"}),
        "html_5xx": _ALL,
        "html_5xx_after_create": frozenset({"create"}),
        "typeless_5xx": frozenset({"create", "task"}),
        "typeless_5xx_after_create": frozenset({"create"}),
        "http_402": frozenset({"create"}),
        "http_403": frozenset({"create", "task"}),
        "null_fields": frozenset({"create", "task", "callback"}),
        "truncate_close": frozenset({"image"}),
        "trailing_garbage": frozenset({"image"}),
    }
)
"""The endpoints each fault kind can hit."""

AFTER_CREATE_FAULTS: frozenset[str] = frozenset(
    {
        "http_429_after_create",
        "http_500_after_create",
        "http_502_after_create",
        "http_503_after_create",
        "reset_after_create",
        "html_5xx_after_create",
        "typeless_5xx_after_create",
    }
)
"""Fault kinds that create (and bill) a task, then answer something else than the task."""

BILLED_CREATE_FAULTS: frozenset[str] = AFTER_CREATE_FAULTS | {
    "malformed_json",
    "slow",
    "unknown_fields",
    "null_fields",
}
"""Fault kinds that still create (and bill) a task when they hit the create call."""

REPLACING_FAULTS: frozenset[str] = frozenset(
    {
        "http_429",
        "http_500",
        "http_502",
        "http_503",
        "http_402",
        "http_403",
        "html_5xx",
        "typeless_5xx",
        "reset",
    }
)
"""Fault kinds answered instead of the reply (on create: before any task is made)."""

#: The HTTP status of an ``html_5xx*`` or ``typeless_5xx*`` reply when the rule names none.
GATEWAY_STATUS_DEFAULTS = MappingProxyType(
    {
        "html_5xx": 502,
        "html_5xx_after_create": 502,
        "typeless_5xx": 500,
        "typeless_5xx_after_create": 500,
    }
)
