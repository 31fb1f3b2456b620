"""The callback URL rules: https, public hosts only, however an address is spelled.

:func:`validate_callback_url` checks the ``callback_url`` a request sends (the provider
refuses internal addresses, so a refusal here saves a billed task that could never call
back); :func:`validate_receiver_url` checks a callback URL a session is given, which may
be on loopback while the API itself is (the emulator): its receiver's
(``Session(callback_url=...)``) and a task's own (``submit(callback_url=...)``, which
builds its request within :func:`building_for`). A :class:`GenerationRequest` built
anywhere else does not know where it will be sent, and keeps the strict rule. Pure: no
I/O.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import unicodedata
import urllib.parse
from collections.abc import Iterator

from ._addresses import internal_host_reason
from ._exceptions import InvalidRequestError
from ._quoting import describe_char, quote, wrong_type

__all__ = [
    "CALLBACK_URL_MAX_CHARS",
    "building_for",
    "validate_callback_url",
    "validate_receiver_url",
    "validate_request_callback_url",
]

#: The longest callback URL the service accepts.
CALLBACK_URL_MAX_CHARS = 2048

_HOST_ASCII_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._")
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zs", "Zl", "Zp"})
_URL_RULE = (
    f"an absolute https URL of at most {CALLBACK_URL_MAX_CHARS} characters, "
    "without spaces or control characters, or omitted"
)
_URL_SCHEME_RULE = "the callback URL must use https; http and every other scheme are refused"
#: The rule while the API is on loopback (the emulator): loopback hosts may be called too.
_LOOPBACK_URL_RULE = (
    "an absolute https URL to a public host or, while base_url is on loopback (the "
    "emulator), an http or https URL to a loopback host (127.0.0.1, [::1] or localhost); "
    f"at most {CALLBACK_URL_MAX_CHARS} characters, without spaces or control characters"
)
_URL_CREDENTIALS_RULE = (
    "no user name or password before the host, because credentials in the URL hide the "
    "real host (https://api.example.com@10.0.0.1/ goes to 10.0.0.1)"
)
_URL_HOST_RULE = (
    "a public host name or IP address: the service refuses loopback, private, link-local "
    "and other internal addresses, however they are spelled"
)
_URL_HOST_SYNTAX_RULE = (
    "the host is a name, an IPv4 address, or an IPv6 address in brackets (without a zone id), "
    "optionally followed by ':port'"
)
_URL_PORT_RULE = "a port, if given, is a number from 1 to 65535"

#: The base URL of the session building a request in this context (see building_for).
_BUILDING_FOR: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "zimage_async_building_for", default=None
)


def validate_callback_url(value: object) -> str | None:
    """Check a callback URL: absolute, https, and pointing at a public host.

    Refused, before anything is sent: anything but ``https`` (case does not matter); more
    than 2048 characters; whitespace, control or invisible characters anywhere; a missing
    host; credentials before the host (``https://api.example.com@10.0.0.1/`` goes to
    ``10.0.0.1``, so any ``user@`` or ``user:pass@`` is refused); characters a host
    cannot hold (``%``, a backslash...); a port outside 1..65535; and a host that
    :func:`~zimage_async._addresses.internal_host_reason` calls internal, however it is
    spelled (``127.1``, ``2130706433``, ``[::ffff:7f00:1]``, ``LOCALHOST.``...).
    International host names and public IPv4 and IPv6 literals are accepted. The URL is
    returned unchanged.

    A public name that *resolves* to an internal address cannot be detected without a
    DNS lookup, which this pure check does not make; the service applies its own check
    when it calls back. Messages name the host but never quote the whole URL, since its
    query string may carry a secret for the receiver.

    >>> validate_callback_url("https://example.com/hooks/zimage?x=1")
    'https://example.com/hooks/zimage?x=1'
    """
    if value is None:
        return None
    return _check(value, loopback=False)


def validate_receiver_url(value: object, *, base_url: str) -> str:
    """Check a callback URL a session at *base_url* is given (not None).

    The rules of :func:`validate_callback_url`, with one exception for testing: when
    *base_url* is itself on loopback (the emulator), an ``http`` or ``https`` URL to a
    loopback host written plainly (``127.x.x.x``, ``[::1]``, ``localhost``) is accepted,
    since only a server on this machine could call it; its port must still be 1..65535,
    and a refusal names the fault (the port, the syntax) under this rule. The real
    service is never on loopback, so this never loosens a production setup.

    >>> validate_receiver_url("http://127.0.0.1:8080/", base_url="http://127.0.0.1:9000")
    'http://127.0.0.1:8080/'
    >>> validate_receiver_url("http://127.0.0.1:8080/", base_url="https://ai.odkkk.com/apiv1")
    Traceback (most recent call last):
    ...
    zimage_async._exceptions.InvalidRequestError: callback_url: ...
    """
    if value is None:
        raise InvalidRequestError("callback_url", _URL_RULE, "it is None")
    return _check(value, loopback=_is_loopback(urllib.parse.urlsplit(base_url).hostname))


def validate_request_callback_url(value: object) -> str | None:
    """Check ``GenerationRequest.callback_url``: by its session's rule while one builds it.

    Within :func:`building_for` (a session's ``submit``), the rule of
    :func:`validate_receiver_url` for that session's base URL; anywhere else the strict
    rule of :func:`validate_callback_url`.
    """
    base_url = _BUILDING_FOR.get()
    if value is None or base_url is None:
        return validate_callback_url(value)
    return validate_receiver_url(value, base_url=base_url)


@contextlib.contextmanager
def building_for(base_url: str) -> Iterator[None]:
    """Let the requests built in the block take callback URLs by a session's rule.

    For the session at *base_url* building a request from ``submit``'s fields: on a
    loopback API, a task's own loopback callback URL is accepted as the session's is.
    A context variable, so that other tasks building requests meanwhile are unaffected.
    """
    token = _BUILDING_FOR.set(base_url)
    try:
        yield
    finally:
        _BUILDING_FOR.reset(token)


def _check(value: object, *, loopback: bool) -> str:
    """Check callback URL *value*; *loopback*: plainly spelled loopback hosts are allowed."""
    rule = _LOOPBACK_URL_RULE if loopback else _URL_RULE
    if not isinstance(value, str):
        raise InvalidRequestError("callback_url", rule, wrong_type(value, quoted=False))
    if len(value) > CALLBACK_URL_MAX_CHARS:
        raise InvalidRequestError(
            "callback_url",
            rule,
            f"it is {len(value)} characters long, over the maximum of {CALLBACK_URL_MAX_CHARS}",
        )
    if not value:
        raise InvalidRequestError("callback_url", rule, "it is empty")
    for position, char in enumerate(value):
        if char.isspace() or unicodedata.category(char) in _INVISIBLE_CATEGORIES:
            raise InvalidRequestError(
                "callback_url",
                rule,
                f"it contains {describe_char(char)} at position {position}",
            )
    try:
        parts = urllib.parse.urlsplit(value)
    except ValueError as exc:  # raised below: urllib's frames hold the URL, query and all
        unparsed = f"it does not parse as a URL ({exc})"
    else:
        unparsed = ""
    if unparsed:
        raise InvalidRequestError("callback_url", rule, unparsed)
    scheme_rule = _LOOPBACK_URL_RULE if loopback else _URL_SCHEME_RULE
    if not parts.scheme:
        raise InvalidRequestError("callback_url", scheme_rule, "it has no scheme")
    scheme = parts.scheme.lower()
    if scheme != "https" and not (loopback and scheme == "http"):
        raise InvalidRequestError(
            "callback_url", scheme_rule, f"its scheme is {quote(parts.scheme)}"
        )
    if not parts.netloc:
        raise InvalidRequestError("callback_url", rule, "it has no host (write https://host/path)")
    if "@" in parts.netloc:
        after = parts.netloc.rpartition("@")[2]
        raise InvalidRequestError(
            "callback_url",
            _URL_CREDENTIALS_RULE,
            f"it carries credentials before '@', and the host it really names is {quote(after)}",
        )
    host = _split_host_port(parts.netloc)
    if loopback and _is_loopback(host[1:-1] if host.startswith("[") else host):
        return value
    reason = internal_host_reason(host)
    if reason is not None:
        raise InvalidRequestError(
            "callback_url",
            rule if loopback else _URL_HOST_RULE,
            f"its host {quote(host)} is {reason}",
        )
    if scheme != "https":  # http, on a loopback API, to a public host
        raise InvalidRequestError(
            "callback_url",
            rule,
            f"its scheme is {quote(parts.scheme)} and its host {quote(host)} is not a "
            "loopback host (a public host needs https)",
        )
    return value


def _is_loopback(host: str | None) -> bool:
    """Whether *host* is ``localhost`` or a loopback IP address, spelled plainly."""
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower() == "localhost"


def _split_host_port(netloc: str) -> str:
    """Return the host of *netloc* (credentials already refused); check host and port."""
    if netloc.startswith("["):
        inner, bracket, port = netloc[1:].partition("]")
        if not bracket:
            raise InvalidRequestError(
                "callback_url", _URL_HOST_SYNTAX_RULE, "its IPv6 host has no closing ']'"
            )
        host = f"[{inner}]"
        if "%" in inner:
            raise InvalidRequestError(
                "callback_url",
                _URL_HOST_SYNTAX_RULE,
                f"its host {quote(host)} has a zone id, which only means something on this machine",
            )
        if port and not port.startswith(":"):
            raise InvalidRequestError(
                "callback_url", _URL_HOST_SYNTAX_RULE, f"{quote(port)} follows the IPv6 host"
            )
        _check_port(port[1:])
        return host
    host, colon, port = netloc.partition(":")
    if colon:
        if ":" in port:
            raise InvalidRequestError(
                "callback_url",
                _URL_HOST_SYNTAX_RULE,
                f"its host {quote(netloc)} has several ':'; write an IPv6 address in "
                "brackets, as in https://[2001:db8::1]/",
            )
        _check_port(port)
    if not host:
        raise InvalidRequestError("callback_url", _URL_RULE, "it has no host")
    for char in unicodedata.normalize("NFKC", host).lower():
        if char.isascii() and char not in _HOST_ASCII_CHARS:
            raise InvalidRequestError(
                "callback_url",
                _URL_HOST_SYNTAX_RULE,
                f"its host {quote(host)} contains {describe_char(char)}, which a host "
                "name cannot hold",
            )
    return host


def _check_port(port: str) -> None:
    """Refuse a port that is not a number from 1 to 65535 (an empty port is the default)."""
    if not port:
        return
    if not (port.isascii() and port.isdigit()) or len(port) > 5 or not 1 <= int(port) <= 65535:
        raise InvalidRequestError(
            "callback_url", _URL_PORT_RULE, f"its port {quote(port)} is not valid"
        )
