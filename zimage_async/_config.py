"""Checking a Session's settings: each one is refused with its name and rule, up front."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

from ._exceptions import InvalidRequestError

__all__ = ["check_api_key", "check_base_url", "check_bytes", "check_seconds", "check_settings"]

_NO_KEY = (
    "no API key: pass Session(api_key=...) or set the ZIMAGE_API_KEY environment "
    "variable (keys are issued at https://ai.odkkk.com/apiv1/dashboard/keys). To try "
    "zimage-async without a key, run it against the bundled emulator: "
    "`async with zimage_async.emulator.Emulator() as emu:` then "
    "`Session(base_url=emu.base_url, api_key=emu.api_key)`"
)


def check_api_key(key: str | None) -> str:
    """Return the key, stripped; refuse a missing one or one with spaces or controls."""
    if not key or not key.strip():
        raise InvalidRequestError("api_key", "a non-empty API key", _NO_KEY)
    if any(c.isspace() for c in key.strip()) or not key.isprintable():
        raise InvalidRequestError(
            "api_key", "a single token without spaces or control characters", "it has some"
        )
    return key.strip()


def check_seconds(name: str, value: float) -> float:
    """Return *value* if it is a number of seconds above 0."""
    if not value > 0:
        raise InvalidRequestError(name, "a number of seconds above 0", f"got {value!r}")
    return value


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
    if not user_agent.strip() or not user_agent.isprintable():
        raise InvalidRequestError(
            "user_agent", "a non-empty header value without control characters", "it is not"
        )
    if max_connections < 1:
        raise InvalidRequestError("max_connections", "1 or more", f"got {max_connections!r}")
    if not callback_poll_factor >= 1:
        raise InvalidRequestError(
            "callback_poll_factor", "a number of 1 or more", f"got {callback_poll_factor!r}"
        )


def check_base_url(url: str) -> str:
    """Return the base URL without a trailing slash; refuse what would leak the key."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidRequestError(
            "base_url",
            "an absolute http(s) URL such as https://ai.odkkk.com/apiv1",
            f"{url[:60]!r} is not one",
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise InvalidRequestError(
            "base_url",
            "no credentials, query or fragment in the base URL",
            "it has some",
        )
    if parts.scheme == "http":
        host = parts.hostname
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
