"""Reading the API's error answers: the error envelope and the wait the server advises.

Pure, no I/O. :func:`parse_error` builds the :class:`~zimage_async.APIError` subclass
for an HTTP error status; :func:`parse_retry_after` reads the ``Retry-After`` header and
the envelope's ``retry after N seconds`` suggestion.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from ._exceptions import APIError, api_error_class

__all__ = ["MAX_ADVISED_WAIT", "parse_error", "parse_retry_after"]


_SUGGESTION_WAIT = re.compile(
    r"retry\s+after\s+(\d+(?:\.\d+)?(?:e[+-]?\d+)?)\s*"
    r"(ms|milliseconds?|s|secs?|seconds?|m|mins?|minutes?)?\b",
    re.IGNORECASE,
)
#: The longest wait read from advice (about 3,000 years): larger values, and ones too
#: large for a float, read as this, so a wait is always a finite number.
MAX_ADVISED_WAIT = 1e11


def parse_retry_after(
    header: str | None, suggestion: str | None, *, now: float | None = None
) -> float | None:
    """Return the seconds to wait that the server advised, or ``None`` if it gave no hint.

    Reads the ``Retry-After`` header (seconds, or an HTTP date compared with *now*, a Unix
    time) and the envelope's ``fallback_suggestion`` (``"retry after 60 seconds"``,
    ``"retry after 1e9 seconds"``); when both are present the longer wait wins. A wait
    is read as the number written, exponent included, up to :data:`MAX_ADVISED_WAIT`.

    >>> parse_retry_after("5", "retry after 60 seconds")
    60.0
    >>> parse_retry_after(None, "retry after 1e9 seconds")
    1000000000.0
    >>> parse_retry_after(None, "try again later") is None
    True
    """
    waits: list[float] = []
    if header:
        text = header.strip()
        try:
            seconds = float(text)
        except ValueError:
            when = None
            try:
                when = email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                when = None
            if when is not None and now is not None:
                waits.append(max(0.0, when.timestamp() - now))
        else:
            if not math.isnan(seconds) and seconds >= 0:
                waits.append(seconds)
    if suggestion:
        match = _SUGGESTION_WAIT.search(suggestion)
        if match:
            amount = float(match.group(1))
            unit = (match.group(2) or "s").lower()
            if unit == "ms" or unit.startswith("milli"):
                amount /= 1000
            elif unit.startswith("m"):
                amount *= 60
            waits.append(amount)
    return min(max(waits), MAX_ADVISED_WAIT) if waits else None


def parse_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str = "",
    path: str = "",
    now: float | None = None,
) -> APIError:
    """Build the :class:`APIError` subclass for an error answer.

    Reads the documented envelope ``{"error": {"code", "message", "type", "param",
    "fallback_suggestion"}}``; a body that is not the envelope (an HTML page from a
    proxy, say) still gives the right class, with a generic message and ``type=None``.
    """
    envelope: Mapping[str, Any] = {}
    try:
        decoded = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        decoded = None
    if isinstance(decoded, dict) and isinstance(decoded.get("error"), dict):
        envelope = decoded["error"]

    def text(key: str) -> str | None:
        value = envelope.get(key)
        return value if isinstance(value, str) else None

    code = envelope.get("code")
    if isinstance(code, bool) or not isinstance(code, (int, str)):
        code = None
    suggestion = text("fallback_suggestion")
    cls = api_error_class(status)
    return cls(
        text("message") or f"HTTP {status} with no error envelope",
        status=status,
        code=code,
        type=text("type"),
        param=text("param"),
        fallback_suggestion=suggestion,
        retry_after=parse_retry_after(headers.get("Retry-After"), suggestion, now=now),
        method=method,
        path=path,
    )
