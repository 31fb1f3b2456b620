"""Checking a Session's settings: each one is refused with its name and rule, up front.

A refusal never quotes a value that may be a secret: a setting of the wrong type (a key
passed as ``timeout=``) is named by its type, a number out of range shown as it is.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import os
import ssl
from collections.abc import Mapping
from urllib.parse import urlsplit

import aiohttp

from ._callback_url import validate_receiver_url
from ._exceptions import InvalidRequestError
from ._quoting import a_type, describe_char, number_or_type, quote, surrogate_at, text_problem
from ._schedule import PollSchedule, RetryPolicy

__all__ = [
    "DEFAULT_BASE_URL",
    "check_api_key",
    "check_base_url",
    "check_bytes",
    "check_environment",
    "check_kind",
    "check_kinds",
    "check_receiver",
    "check_seconds",
    "check_settings",
    "is_finite",
    "load_ca_bundle",
    "read_base_url",
    "read_key",
]

#: The production API's base URL.
DEFAULT_BASE_URL = "https://ai.odkkk.com/apiv1"

_NO_KEY = (
    "no API key: pass Session(api_key=...) or set the ZIMAGE_API_KEY environment "
    "variable (keys are issued at https://ai.odkkk.com/apiv1/dashboard/keys). To try "
    "zimage-async without a key, run it against the bundled emulator: "
    "`async with zimage_async.emulator.Emulator() as emu:` then "
    "`Session(base_url=emu.base_url, api_key=emu.api_key)`"
)


#: The longest key or User-Agent sent: servers take header lines of about 8 KB.
MAX_HEADER_CHARS = 4096


def _check_header_length(field: str, value: str) -> None:
    if len(value) > MAX_HEADER_CHARS:
        rule = f"at most {MAX_HEADER_CHARS} characters (a request header line's room)"
        raise InvalidRequestError(field, rule, f"it has {len(value)} characters")


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
    _check_header_length("api_key", key)
    return key


def read_key(api_key: object, environ: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """Return the checked key (*api_key*, else ``ZIMAGE_API_KEY``) and the rest of *environ*.

    The environment is returned without that variable, so that its holder keeps no plain
    copy of the key.
    """
    key = check_api_key(api_key if api_key is not None else environ.get("ZIMAGE_API_KEY"))
    return key, {name: value for name, value in environ.items() if name != "ZIMAGE_API_KEY"}


def read_base_url(base_url: object, environ: Mapping[str, str]) -> str:
    """Return the checked base URL: *base_url*, else ``ZIMAGE_BASE_URL``, else the default.

    An empty ``ZIMAGE_BASE_URL`` counts as unset, but an empty *base_url* is refused: a
    value meant for another service must never fall back to production with the key.
    """
    if base_url is None:
        base_url = environ.get("ZIMAGE_BASE_URL") or DEFAULT_BASE_URL
    return check_base_url(base_url)


#: What ``random.Random`` takes as a seed (a bool too, but that is taken for a mistake).
SEED_TYPES = (int, float, str, bytes, bytearray, type(None))
SEED_RULE = "what random.Random takes: an int, a float, a str, bytes, or None"


def check_kinds(
    *, poll: object, retry: object, http_session: object, seed: object, trust_env: object
) -> None:
    """Refuse a Session's policy objects, borrowed session, seed and flag of another kind.

    A borrowed session made with ``auth=`` is refused too: aiohttp will not send its
    Basic credentials along with the API key's ``Authorization`` header, and fails each
    request before sending it, which would read as a create that may have been billed.
    """
    check_kind("poll", poll, (PollSchedule, type(None)), "a PollSchedule, or None")
    check_kind("retry", retry, (RetryPolicy, type(None)), "a RetryPolicy, or None")
    rule = "an aiohttp.ClientSession, or None"
    check_kind("http_session", http_session, (aiohttp.ClientSession, type(None)), rule)
    if getattr(http_session, "auth", None) is not None:  # never shown: it holds a password
        raise InvalidRequestError(
            "http_session",
            "an aiohttp.ClientSession made without auth=, or None (the API key goes in "
            "each request's Authorization header)",
            "it was made with auth=: aiohttp will not send those Basic credentials along "
            "with the API key's Authorization header, and would fail every request before "
            "sending it; make the session without auth=",
        )
    if isinstance(seed, bool) or not isinstance(seed, SEED_TYPES):
        raise InvalidRequestError("seed", SEED_RULE, f"got {a_type(seed)}")
    if isinstance(seed, str) and (at := surrogate_at(seed)) is not None:
        problem = f"it holds a lone surrogate, {describe_char(seed[at])}, at position {at}"
        raise InvalidRequestError("seed", SEED_RULE, problem)
    check_kind("trust_env", trust_env, bool, "True or False")


def check_receiver(callbacks: object, callback_url: object, *, base_url: str) -> str | None:
    """Refuse a *callbacks* that is no CallbackReceiver, or a *callback_url* without one.

    Return *callback_url* checked against *base_url* (see
    :func:`~zimage_async._callback_url.validate_receiver_url`), or None.
    """
    if callbacks is not None:
        from ._webhooks import CallbackReceiver  # needs aiohttp.web: only when one is given

        rule = "a CallbackReceiver that your server runs, or None (its URL goes in callback_url=)"
        check_kind("callbacks", callbacks, CallbackReceiver, rule)
    if callback_url is None:
        return None
    if callbacks is None:
        raise InvalidRequestError(
            "callback_url",
            "the URL of the CallbackReceiver given as callbacks=",
            "no callbacks= receiver was given; without one, pass callback_url to submit()",
        )
    return validate_receiver_url(callback_url, base_url=base_url)


def check_environment(*, environ: object, ca_bundle: object) -> str | None:
    """Refuse an *environ* that is no mapping of names to text; return *ca_bundle* as text.

    Values are never quoted (a variable may hold a key or a proxy's password).
    """
    rule = "a mapping of variable names to values, both str (such as os.environ), or None"
    if isinstance(environ, Mapping):
        for name, value in environ.items():
            if not isinstance(name, str):
                raise InvalidRequestError("environ", rule, f"a variable name is {a_type(name)}")
            if not isinstance(value, str):
                raise InvalidRequestError("environ", rule, f"{quote(name)} is {a_type(value)}")
    elif environ is not None:
        raise InvalidRequestError("environ", rule, f"got {type(environ).__name__}")
    rule = "a path to a PEM file of certificate authorities (str or os.PathLike), or None"
    if ca_bundle is None:
        return None
    path = os.fspath(ca_bundle) if isinstance(ca_bundle, (str, os.PathLike)) else None
    if not isinstance(path, str):
        raise InvalidRequestError("ca_bundle", rule, f"got {a_type(ca_bundle)}")
    if not path:
        raise InvalidRequestError("ca_bundle", rule, "it is empty: leave it out, or pass None")
    return path


def _is_number(value: object) -> bool:
    """Whether *value* is an int or a float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_finite(value: float) -> bool:
    """Whether the number *value* is finite as a float (an int too large for one is not)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def check_seconds(name: str, value: float) -> float:
    """Return *value* if it is a finite number of seconds above 0."""
    if not (_is_number(value) and is_finite(value) and value > 0):
        rule = "a finite number of seconds above 0"
        raise InvalidRequestError(name, rule, f"got {number_or_type(value)}")
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


def ca_bundle_context(
    ca_bundle: str | None, environ: Mapping[str, str], *, trust_env: bool
) -> ssl.SSLContext | None:
    """Return a context trusting the CA bundle named: *ca_bundle*, else ``SSL_CERT_FILE``.

    ``SSL_CERT_FILE`` is read from *environ*, and only with *trust_env*; ``None`` when
    no bundle is named. The file is loaded now: a missing or broken one is refused.
    """
    if ca_bundle:
        return load_ca_bundle("ca_bundle", ca_bundle)
    cert_file = (environ.get("SSL_CERT_FILE") or None) if trust_env else None
    return None if cert_file is None else load_ca_bundle("SSL_CERT_FILE", cert_file)


def default_trust(environ: Mapping[str, str], *, trust_env: bool) -> ssl.SSLContext | bool:
    """Return what verifies servers when no CA bundle is named.

    ``True`` (aiohttp's default context) when the process environment is the one to
    trust: OpenSSL then reads ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` from it by itself.
    Otherwise (*trust_env* off, or an *environ* of the caller's) those variables of the
    process must not count: the system's CAs at OpenSSL's built-in paths.
    """
    return True if trust_env and environ is os.environ else system_trust()


@functools.cache
def system_trust() -> ssl.SSLContext:
    """Return a context trusting the CAs at OpenSSL's built-in paths, whatever the environment.

    ``ssl.create_default_context()`` without arguments would let OpenSSL take
    ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` from the process environment instead. A
    system without either path (Windows, whose CAs are in its own certificate store)
    gets that default context all the same: it loads the system's store, and a context
    with no CA would refuse every server.
    """
    paths = ssl.get_default_verify_paths()
    cafile = paths.openssl_cafile if os.path.isfile(paths.openssl_cafile) else None
    capath = paths.openssl_capath if os.path.isdir(paths.openssl_capath) else None
    if cafile is None and capath is None:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=cafile, capath=capath)


def check_bytes(name: str, value: int | None, *, optional: bool = False) -> int | None:
    """Return *value* if it is a whole number of bytes above 0 (or None when optional)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not (isinstance(value, int) and value > 0):
        rule = "a whole number of bytes above 0"
        raise InvalidRequestError(name, rule, f"got {number_or_type(value)}")
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
    connect, total = seconds["connect_timeout"], seconds["total_timeout"]
    if connect >= total:  # the total limit would end a connection that looks sent then
        raise InvalidRequestError(
            "connect_timeout",
            "shorter than total_timeout, so that a create cut off while still connecting "
            "is known not to have been sent (connect_timeout is 10 s unless set)",
            f"it is {connect:g} s, and total_timeout {total:g} s",
        )
    check_bytes("max_image_bytes", max_image_bytes)
    check_bytes("max_task_bytes", max_task_bytes, optional=True)
    rule = "a non-empty header value without control characters"
    check_kind("user_agent", user_agent, str, rule)
    if not user_agent.strip() or not user_agent.isprintable():
        raise InvalidRequestError("user_agent", rule, text_problem(user_agent))
    _check_header_length("user_agent", user_agent)
    got = f"got {number_or_type(max_connections)}"
    if not (isinstance(max_connections, int) and not isinstance(max_connections, bool)):
        raise InvalidRequestError("max_connections", "a whole number", got)
    if max_connections < 1:
        raise InvalidRequestError("max_connections", "1 or more", got)
    factor = callback_poll_factor
    if not (_is_number(factor) and is_finite(factor) and factor >= 1):
        raise InvalidRequestError(
            "callback_poll_factor", "a finite number of 1 or more", f"got {number_or_type(factor)}"
        )


def check_base_url(url: object) -> str:
    """Return the base URL without a trailing slash; refuse what would leak the key.

    Refused too: what no request can go to (a port out of range or not a number,
    whitespace anywhere), so that no create fails locally after it was counted as sent.
    """
    rule = "an absolute http(s) URL such as https://ai.odkkk.com/apiv1"
    if not isinstance(url, str):
        raise InvalidRequestError("base_url", rule, f"got {type(url).__name__}")
    if not url:
        problem = "it is empty, which is no URL; leave it out or pass None for the default"
        raise InvalidRequestError("base_url", rule, problem)
    shown = quote(_masked(url))  # what a message may show of it: no credentials, no query
    if any(c.isspace() for c in url) or not url.isprintable():
        raise InvalidRequestError("base_url", f"{rule}, without spaces", text_problem(url, shown))
    try:
        parts = urlsplit(url)
        host = parts.hostname
        if host and "[" in parts.netloc:
            ipaddress.IPv6Address(host)  # only an IPv6 address goes in brackets
    except ValueError:  # an IPv6 bracket left open, or a name in brackets
        host = None
    if not host or parts.scheme not in ("https", "http"):
        raise InvalidRequestError("base_url", rule, f"{shown} is not one")
    try:
        port = parts.port  # a ValueError when out of range or not a number
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise InvalidRequestError(
            "base_url", f"{rule}, with a port from 1 to 65535 if any", f"{shown} has another"
        )
    extras = [
        name
        for name, present in (
            ("credentials", "@" in parts.netloc),  # empty ones too: 'http://@host'
            ("a query", "?" in url),  # a bare '?' or '#' would change every call's path
            ("a fragment", "#" in url),
        )
        if present
    ]
    if extras:
        has = ", ".join(extras[:-1]) + " and " + extras[-1] if len(extras) > 1 else extras[0]
        rule = "no credentials, query or fragment in the base URL"
        raise InvalidRequestError("base_url", rule, f"{shown} has {has}")
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


def _masked(url: str) -> str:
    """Return *url* with its user name and password, query and fragment masked.

    Everything up to the last ``@`` is masked, since a malformed password may hold
    ``/``, ``?`` or ``#`` too.

    >>> _masked("https://svc:pw@api.example.com/apiv1?key=k")
    'https://***@api.example.com/apiv1?***'
    """
    start = url.find("//") + 2 if "//" in url else 0
    at = url.rfind("@", start)
    rest = url[at:] if at >= 0 else url[start:]
    cut = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    masked = rest[:cut] + (rest[cut] + "***" if cut < len(rest) else "")
    return url[:start] + ("***" if at >= 0 else "") + masked
