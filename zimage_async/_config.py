"""Checking a Session's settings: each one is refused with its name and rule, up front."""

from __future__ import annotations

import ipaddress
import math
import ssl
from collections.abc import Mapping
from urllib.parse import urlsplit

import aiohttp

from ._exceptions import InvalidRequestError
from ._schedule import PollSchedule, RetryPolicy

__all__ = [
    "check_api_key",
    "check_base_url",
    "check_bytes",
    "check_kind",
    "check_kinds",
    "check_seconds",
    "check_settings",
    "load_ca_bundle",
    "read_key",
]

_NO_KEY = (
    "no API key: pass Session(api_key=...) or set the ZIMAGE_API_KEY environment "
    "variable (keys are issued at https://ai.odkkk.com/apiv1/dashboard/keys). To try "
    "zimage-async without a key, run it against the bundled emulator: "
    "`async with zimage_async.emulator.Emulator() as emu:` then "
    "`Session(base_url=emu.base_url, api_key=emu.api_key)`"
)


def check_api_key(key: object) -> str:
    """Return the key without the whitespace around it; refuse a missing or garbled one.

    Whitespace around the key (a line end kept from a file) is dropped; whitespace or
    control characters inside it are refused, without quoting the key.
    """
    if key is not None and not isinstance(key, str):
        raise InvalidRequestError("api_key", "a str", f"got {type(key).__name__}")
    if not key or not key.strip():
        raise InvalidRequestError("api_key", "a non-empty API key", _NO_KEY)
    key = key.strip()
    if any(c.isspace() for c in key) or not key.isprintable():
        raise InvalidRequestError(
            "api_key",
            "a single token without spaces or control characters",
            "it has a space or a control character inside",
        )
    return key


def read_key(api_key: object, environ: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """Return the checked key (*api_key*, else ``ZIMAGE_API_KEY``) and the rest of *environ*.

    The environment is returned without that variable, so that its holder keeps no plain
    copy of the key.
    """
    key = check_api_key(api_key if api_key is not None else environ.get("ZIMAGE_API_KEY"))
    return key, {name: value for name, value in environ.items() if name != "ZIMAGE_API_KEY"}


def check_kinds(*, poll: object, retry: object, http_session: object) -> None:
    """Refuse a Session's policy objects and borrowed session of another kind."""
    check_kind("poll", poll, (PollSchedule, type(None)), "a PollSchedule, or None")
    check_kind("retry", retry, (RetryPolicy, type(None)), "a RetryPolicy, or None")
    rule = "an aiohttp.ClientSession, or None"
    check_kind("http_session", http_session, (aiohttp.ClientSession, type(None)), rule)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_seconds(name: str, value: float) -> float:
    """Return *value* if it is a finite number of seconds above 0."""
    if not (_is_number(value) and math.isfinite(value) and value > 0):
        raise InvalidRequestError(name, "a finite number of seconds above 0", f"got {value!r}")
    return value


def check_kind(name: str, value: object, kind: type | tuple[type, ...], rule: str) -> None:
    """Refuse *value* unless it is an instance of *kind* (*rule* says so in words)."""
    if not isinstance(value, kind):
        raise InvalidRequestError(name, rule, f"got {type(value).__name__}")


def load_ca_bundle(name: str, path: str) -> ssl.SSLContext:
    """Return a TLS context trusting the certificate authorities of the PEM file *path*.

    *name* is where the path came from (``ca_bundle`` or ``SSL_CERT_FILE``): a file
    that is missing, unreadable or not PEM is refused under that name.
    """
    try:
        return ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InvalidRequestError(
            name,
            "a readable PEM file of certificate authorities",
            f"{path!r} cannot be loaded ({reason})",
        ) from None


def check_bytes(name: str, value: int | None, *, optional: bool = False) -> int | None:
    """Return *value* if it is a whole number of bytes above 0 (or None when optional)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not (isinstance(value, int) and value > 0):
        raise InvalidRequestError(name, "a whole number of bytes above 0", f"got {value!r}")
    return value


def check_settings(
    *,
    seconds: Mapping[str, float],
    max_image_bytes: int,
    max_task_bytes: int | None,
    user_agent: str,
    max_connections: int,
    callback_poll_factor: float,
) -> None:
    """Check a Session's numeric and text settings; *seconds* maps names to durations."""
    for name, value in seconds.items():
        check_seconds(name, value)
    check_bytes("max_image_bytes", max_image_bytes)
    check_bytes("max_task_bytes", max_task_bytes, optional=True)
    rule = "a non-empty header value without control characters"
    check_kind("user_agent", user_agent, str, rule)
    if not user_agent.strip() or not user_agent.isprintable():
        raise InvalidRequestError("user_agent", rule, "it is not")
    if not (isinstance(max_connections, int) and not isinstance(max_connections, bool)):
        raise InvalidRequestError("max_connections", "a whole number", f"got {max_connections!r}")
    if max_connections < 1:
        raise InvalidRequestError("max_connections", "1 or more", f"got {max_connections!r}")
    factor = callback_poll_factor
    if not (_is_number(factor) and math.isfinite(factor) and factor >= 1):
        raise InvalidRequestError(
            "callback_poll_factor", "a finite number of 1 or more", f"got {factor!r}"
        )


def check_base_url(url: str) -> str:
    """Return the base URL without a trailing slash; refuse what would leak the key.

    Refused too: what no request can go to (a port out of range or not a number,
    whitespace anywhere), so that no create fails locally after it was counted as sent.
    """
    rule = "an absolute http(s) URL such as https://ai.odkkk.com/apiv1"
    if not isinstance(url, str):
        raise InvalidRequestError("base_url", rule, f"got {type(url).__name__}")
    if any(c.isspace() for c in url) or not url.isprintable():
        raise InvalidRequestError("base_url", f"{rule}, without spaces", f"{url[:60]!r} has some")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        if host and "[" in parts.netloc:
            ipaddress.IPv6Address(host)  # only an IPv6 address goes in brackets
    except ValueError:  # an IPv6 bracket left open, or a name in brackets
        host = None
    if not host or parts.scheme not in ("https", "http"):
        raise InvalidRequestError("base_url", rule, f"{url[:60]!r} is not one")
    try:
        port = parts.port  # a ValueError when out of range or not a number
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise InvalidRequestError(
            "base_url", f"{rule}, with a port from 1 to 65535 if any", f"{url[:60]!r} has another"
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise InvalidRequestError(
            "base_url",
            "no credentials, query or fragment in the base URL",
            "it has some",
        )
    if parts.scheme == "http":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise InvalidRequestError(
                "base_url",
                "https, except for loopback hosts such as the emulator (the API key "
                "would travel in clear text)",
                f"plain http to {host!r} is refused",
            )
    return url.rstrip("/")
