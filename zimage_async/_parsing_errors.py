"""Reading the API's error answers: the error envelope and the wait the server advises.

Pure, no I/O. :func:`parse_error` builds the :class:`~zimage_async.APIError` subclass
for an HTTP error status; :func:`parse_retry_after` reads the ``Retry-After`` header and
the envelope's ``retry after N seconds`` suggestion. :func:`read_json` is the JSON
reading every answer shares, error or not.
"""

from __future__ import annotations

import datetime
import email.utils
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ._exceptions import APIError, api_error_class
from ._links import redact_url

__all__ = ["MAX_ADVISED_WAIT", "parse_error", "parse_retry_after", "read_json"]


def _long_integer(literal: str) -> int | float:
    """Read an integer literal; one too long for ``int()`` reads as a float (infinite)."""
    try:
        return int(literal)
    except ValueError:  # past the interpreter's limit on digits (4,300 by default)
        return float(literal)


def read_json(body: bytes) -> Any:
    """Decode a JSON *body* as the standard library reads bytes, or raise.

    Raises :class:`ValueError` (a :class:`json.JSONDecodeError`, a
    :class:`UnicodeDecodeError`) or :class:`RecursionError` for a body that is not JSON.
    One difference: an integer too long for ``int()`` (Python refuses more than 4,300
    digits, with a plain :class:`ValueError`) reads as a float, infinite as the literal
    ``1e5000`` is, instead of failing the whole answer: each field holding one is judged
    as any infinite number is. Only such an answer is decoded twice.

    >>> read_json(b'{"code": 1%s}' % (b"0" * 5000))
    {'code': inf}
    """
    try:
        try:  # UTF-8, as nearly every answer is: no encoding to detect
            return json.loads(body.decode())
        except (UnicodeDecodeError, json.JSONDecodeError):
            return json.loads(body)  # a BOM, UTF-16 or UTF-32: the standard library's reading
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise
    except ValueError:  # an integer literal past int()'s limit on digits
        try:
            return json.loads(body.decode(), parse_int=_long_integer)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return json.loads(body, parse_int=_long_integer)


#: A ``Retry-After`` in seconds: digits (RFC 9110's delay-seconds), a fraction let in.
_DELAY_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_SUGGESTION_WAIT = re.compile(
    r"retry\s+after\s+(\d+(?:\.\d+)?(?:e[+-]?\d+)?)\s*"
    r"(ms|milliseconds?|s|secs?|seconds?|m|mins?|minutes?)?\b",
    re.IGNORECASE,
)
#: The longest wait read from advice (about 3,000 years): larger values, and ones too
#: large for a float, read as this, so a wait is always a finite number.
MAX_ADVISED_WAIT = 1e11


def parse_retry_after(
    header: str | None,
    suggestion: str | None,
    *,
    now: float | None = None,
    date: str | None = None,
) -> float | None:
    """Return the seconds to wait that the server advised, or ``None`` if it gave no hint.

    Reads the ``Retry-After`` header (seconds, or an HTTP date: a time of the server's
    clock, so compared with the same answer's ``Date`` header, *date*, when that parses,
    else with *now*, a Unix time of this machine's clock) and the envelope's
    ``fallback_suggestion`` (``"retry after 60 seconds"``, ``"retry after 1e9 seconds"``);
    when both are present the longer wait wins. The header's seconds are digits (RFC 9110;
    a fraction let in), anything else that is no date is no advice; a suggestion's number
    is read as written, exponent included. A wait is at most :data:`MAX_ADVISED_WAIT`.

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
        if _DELAY_SECONDS.fullmatch(text):  # digits (a fraction let in), not float()'s forms
            waits.append(float(text))
        else:
            when = _http_time(text)
            base = _http_time(date) if date else None
            if base is None:  # no Date to read it against: this machine's clock
                base = now
            if when is not None and base is not None:
                waits.append(max(0.0, when - base))
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


def _http_time(text: str) -> float | None:
    """Return the Unix time of an HTTP date, or None if *text* is none."""
    try:
        when = email.utils.parsedate_to_datetime(text.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": in UTC, says RFC 5322; not local time
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()


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
        decoded = read_json(body)
    except (ValueError, RecursionError):  # not JSON: no envelope
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
        text("message") or _no_envelope(status, headers.get("Location")),
        status=status,
        code=code,
        type=text("type"),
        param=text("param"),
        fallback_suggestion=suggestion,
        retry_after=parse_retry_after(
            headers.get("Retry-After"), suggestion, now=now, date=headers.get("Date")
        ),
        method=method,
        path=path,
    )


def _no_envelope(status: int, location: str | None) -> str:
    """Say what an answer without the error envelope is: a redirect says so, and why not."""
    if not 300 <= status < 400:
        return f"HTTP {status} with no error envelope"
    where = (location or "").strip()
    if where:  # named without its query (a signed link's signature) or user info
        where = redact_url(where) if "://" in where else urlsplit(where).path
    to = f" to {where}" if where else ""
    return (
        f"HTTP {status}: a redirect{to}, which is not followed (the API key is only sent"
        " to the address of base_url): check base_url"
    )
