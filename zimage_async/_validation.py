"""Check request fields against the API's documented rules before anything is sent.

Each ``validate_*`` function takes the value a caller passed, returns it normalised, or
raises :class:`~zimage_async.InvalidRequestError` naming the field, the rule and what is
wrong with the value. Nothing here does I/O: a refusal costs nothing and bills nothing.

Messages never quote a whole value: at most its first 60 characters, and for a prompt or
a callback URL (which may carry a secret token) not even that.
"""

from __future__ import annotations

import ipaddress
import re
import types
import unicodedata
import urllib.parse
from collections.abc import Mapping

from zimage_async._addresses import internal_host_reason
from zimage_async._exceptions import InvalidRequestError

__all__ = [
    "CALLBACK_URL_MAX_CHARS",
    "MODEL",
    "PROMPT_MAX_CHARS",
    "RATIO_PIXELS",
    "SEED_MAX",
    "SEED_MIN",
    "SIZE_RATIOS",
    "SIZE_SIDE_MAX",
    "SIZE_SIDE_MIN",
    "TASK_ID_MAX_CHARS",
    "TASK_ID_PREFIX",
    "expected_dimensions",
    "validate_callback_url",
    "validate_model",
    "validate_nsfw_check",
    "validate_prompt",
    "validate_receiver_url",
    "validate_seed",
    "validate_size",
    "validate_task_id",
]

#: The only model this API serves.
MODEL = "z-image-turbo"
#: The longest prompt the API accepts, in characters (``len(prompt)``).
PROMPT_MAX_CHARS = 2000
#: The aspect ratios ``size`` may name.
SIZE_RATIOS: tuple[str, ...] = ("1:1", "2:3", "3:2", "3:4", "4:3", "9:16", "16:9", "1:2", "2:1")
#: The smallest side of a ``WIDTHxHEIGHT`` size, in pixels.
SIZE_SIDE_MIN = 376
#: The largest side of a ``WIDTHxHEIGHT`` size, in pixels.
SIZE_SIDE_MAX = 1536
#: The smallest seed.
SEED_MIN = 1
#: The largest seed (``2**31 - 1``).
SEED_MAX = 2147483647
#: The longest callback URL the API accepts, in characters.
CALLBACK_URL_MAX_CHARS = 2048
#: What every task id starts with.
TASK_ID_PREFIX = "task-unified-"
#: The longest task id this SDK accepts (the API states no limit; ids are ~35 characters).
TASK_ID_MAX_CHARS = 200

#: The pixel size each ratio gives, as the project's emulator draws it. The public
#: documentation does not state these, so the real service may differ.
RATIO_PIXELS: Mapping[str, tuple[int, int]] = types.MappingProxyType(
    {
        "1:1": (1024, 1024),
        "2:3": (832, 1248),
        "3:2": (1248, 832),
        "3:4": (864, 1152),
        "4:3": (1152, 864),
        "9:16": (720, 1280),
        "16:9": (1280, 720),
        "1:2": (720, 1440),
        "2:1": (1440, 720),
    }
)

_QUOTE_MAX_CHARS = 60

_PROMPT_RULE = f"a string with some non-whitespace text, at most {PROMPT_MAX_CHARS} characters"
_SIZE_RULE = (
    f"one of the ratios {', '.join(SIZE_RATIOS)}, or 'WIDTHxHEIGHT' written in digits with a "
    f"lower-case x and no spaces, each side from {SIZE_SIDE_MIN} to {SIZE_SIDE_MAX} pixels "
    "(e.g. '1024x768'), or omitted for the service's default"
)
_SEED_RULE = f"an integer from {SEED_MIN} to {SEED_MAX}, or omitted for a random seed"
_NSFW_RULE = "True or False, or omitted for the service's default (False)"
_MODEL_RULE = f"the model {MODEL!r}, the only one this API serves"
_TASK_ID_RULE = (
    f"{TASK_ID_PREFIX!r} followed by at least one ASCII letter, digit, '_' or '-', "
    f"at most {TASK_ID_MAX_CHARS} characters in all"
)
_URL_RULE = (
    f"an absolute https URL of at most {CALLBACK_URL_MAX_CHARS} characters, "
    "without spaces or control characters, or omitted"
)
_URL_SCHEME_RULE = "the callback URL must use https; http and every other scheme are refused"
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

_SIZE_PATTERN = re.compile(r"([0-9]+)x([0-9]+)", re.ASCII)
_SIZE_UPPER_X = re.compile(r"([0-9]+)[X\u00d7]([0-9]+)", re.ASCII)
_TASK_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_HOST_ASCII_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._")
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zs", "Zl", "Zp"})


def validate_prompt(value: object) -> str:
    """Check a prompt: a string with some text, at most 2000 characters.

    Characters are counted as Python counts them (``len(prompt)``). The prompt is
    returned unchanged; surrounding whitespace is kept.

    >>> validate_prompt("a cute cat")
    'a cute cat'
    """
    if not isinstance(value, str):
        raise InvalidRequestError("prompt", _PROMPT_RULE, _wrong_type(value))
    if not value:
        raise InvalidRequestError("prompt", _PROMPT_RULE, "it is empty")
    if not value.strip():
        raise InvalidRequestError("prompt", _PROMPT_RULE, "it contains only whitespace")
    if len(value) > PROMPT_MAX_CHARS:
        raise InvalidRequestError(
            "prompt",
            _PROMPT_RULE,
            f"it is {len(value)} characters long, over the maximum of {PROMPT_MAX_CHARS}",
        )
    return value


def validate_size(value: object) -> str | None:
    """Check a size: a ratio from :data:`SIZE_RATIOS`, ``"WIDTHxHEIGHT"``, or ``None``.

    Each side of ``WIDTHxHEIGHT`` is an integer from 376 to 1536, written in ASCII digits
    with a lower-case ``x`` between them. Leading zeros are dropped in the returned
    value (``"0512x0768"`` gives ``"512x768"``); ratios come back unchanged.

    >>> validate_size("16:9")
    '16:9'
    >>> validate_size("1024x768")
    '1024x768'
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequestError("size", _SIZE_RULE, _wrong_type(value))
    if value in SIZE_RATIOS:
        return value
    match = _SIZE_PATTERN.fullmatch(value)
    if match is None:
        raise InvalidRequestError("size", _SIZE_RULE, _size_shape_problem(value))
    width = _check_side(value, "width", match.group(1))
    height = _check_side(value, "height", match.group(2))
    return f"{width}x{height}"


def validate_seed(value: object) -> int | None:
    """Check a seed: an integer from 1 to 2147483647, or ``None`` for a random one.

    ``bool`` is refused although it is an ``int`` subclass; other ``int`` subclasses
    come back as plain ``int``.

    >>> validate_seed(42)
    42
    """
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidRequestError("seed", _SEED_RULE, _wrong_type(value))
    if value < SEED_MIN:
        raise InvalidRequestError(
            "seed", _SEED_RULE, f"{_int_text(value)} is below the minimum of {SEED_MIN}"
        )
    if value > SEED_MAX:
        raise InvalidRequestError(
            "seed", _SEED_RULE, f"{_int_text(value)} is above the maximum of {SEED_MAX}"
        )
    return int(value)


def validate_nsfw_check(value: object) -> bool | None:
    """Check ``nsfw_check``: ``True``, ``False`` or ``None``; ``0`` and ``1`` are refused.

    >>> validate_nsfw_check(True)
    True
    """
    if value is None or isinstance(value, bool):
        return value
    raise InvalidRequestError("nsfw_check", _NSFW_RULE, _wrong_type(value))


def validate_model(value: object) -> str:
    """Check a model name: only ``"z-image-turbo"`` is served.

    >>> validate_model("z-image-turbo")
    'z-image-turbo'
    """
    if not isinstance(value, str):
        raise InvalidRequestError("model", _MODEL_RULE, _wrong_type(value))
    if value != MODEL:
        raise InvalidRequestError(
            "model", _MODEL_RULE, f"{_quote(value)} is not a model this API serves"
        )
    return value


def validate_task_id(value: object) -> str:
    """Check a task id before it goes into a URL path.

    It must start with ``"task-unified-"`` and continue with at least one ASCII letter,
    digit, ``_`` or ``-``; so ``/``, ``?``, ``#``, ``%``, dots and whitespace are refused.
    At most 200 characters.

    >>> validate_task_id("task-unified-1757165031-uyujaw3d")
    'task-unified-1757165031-uyujaw3d'
    """
    if not isinstance(value, str):
        raise InvalidRequestError("task_id", _TASK_ID_RULE, _wrong_type(value))
    if len(value) > TASK_ID_MAX_CHARS:
        raise InvalidRequestError(
            "task_id",
            _TASK_ID_RULE,
            f"it is {len(value)} characters long, over the maximum of {TASK_ID_MAX_CHARS}",
        )
    if not value.startswith(TASK_ID_PREFIX):
        raise InvalidRequestError(
            "task_id", _TASK_ID_RULE, f"{_quote(value)} does not start with {TASK_ID_PREFIX!r}"
        )
    if len(value) == len(TASK_ID_PREFIX):
        raise InvalidRequestError(
            "task_id", _TASK_ID_RULE, f"there is nothing after {TASK_ID_PREFIX!r}"
        )
    for position, char in enumerate(value):
        if char not in _TASK_ID_CHARS:
            raise InvalidRequestError(
                "task_id",
                _TASK_ID_RULE,
                f"{_quote(value)} contains {_describe_char(char)} at position {position}",
            )
    return value


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
    if not isinstance(value, str):
        raise InvalidRequestError("callback_url", _URL_RULE, _wrong_type(value))
    if len(value) > CALLBACK_URL_MAX_CHARS:
        raise InvalidRequestError(
            "callback_url",
            _URL_RULE,
            f"it is {len(value)} characters long, over the maximum of {CALLBACK_URL_MAX_CHARS}",
        )
    if not value:
        raise InvalidRequestError("callback_url", _URL_RULE, "it is empty")
    for position, char in enumerate(value):
        if char.isspace() or unicodedata.category(char) in _INVISIBLE_CATEGORIES:
            raise InvalidRequestError(
                "callback_url",
                _URL_RULE,
                f"it contains {_describe_char(char)} at position {position}",
            )
    try:
        parts = urllib.parse.urlsplit(value)
    except ValueError as exc:
        raise InvalidRequestError(
            "callback_url", _URL_RULE, f"it does not parse as a URL ({exc})"
        ) from exc
    if not parts.scheme:
        raise InvalidRequestError("callback_url", _URL_SCHEME_RULE, "it has no scheme")
    if parts.scheme.lower() != "https":
        raise InvalidRequestError(
            "callback_url", _URL_SCHEME_RULE, f"its scheme is {_quote(parts.scheme)}"
        )
    if not parts.netloc:
        raise InvalidRequestError(
            "callback_url", _URL_RULE, "it has no host (write https://host/path)"
        )
    if "@" in parts.netloc:
        after = parts.netloc.rpartition("@")[2]
        raise InvalidRequestError(
            "callback_url",
            _URL_CREDENTIALS_RULE,
            f"it carries credentials before '@', and the host it really names is {_quote(after)}",
        )
    host = _split_host_port(parts.netloc)
    reason = internal_host_reason(host)
    if reason is not None:
        raise InvalidRequestError(
            "callback_url", _URL_HOST_RULE, f"its host {_quote(host)} is {reason}"
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


def validate_receiver_url(value: object, *, base_url: str) -> str:
    """Check the callback URL a session's receiver serves (``Session(callback_url=...)``).

    The rules of :func:`validate_callback_url`, with one exception for testing: when
    *base_url* is itself on loopback (the emulator), an ``http`` or ``https`` URL to a
    loopback host is accepted, since only a server on this machine could call it. The
    real service is never on loopback, so this never loosens a production setup.

    >>> validate_receiver_url("http://127.0.0.1:8080/", base_url="http://127.0.0.1:9000")
    'http://127.0.0.1:8080/'
    >>> validate_receiver_url("http://127.0.0.1:8080/", base_url="https://ai.odkkk.com/apiv1")
    Traceback (most recent call last):
    ...
    zimage_async._exceptions.InvalidRequestError: callback_url: ...
    """
    if (
        isinstance(value, str)
        and len(value) <= CALLBACK_URL_MAX_CHARS
        and value.isprintable()
        and " " not in value
        and _is_loopback(urllib.parse.urlsplit(base_url).hostname)
    ):
        try:
            parts = urllib.parse.urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError for a port outside 0..65535
        except ValueError:
            pass
        else:
            if (
                parts.scheme.lower() in ("http", "https")
                and "@" not in parts.netloc
                and _is_loopback(parts.hostname)
            ):
                return value
    checked = validate_callback_url(value)
    if checked is None:
        raise InvalidRequestError("callback_url", _URL_RULE, "it is None")
    return checked


def expected_dimensions(size: str | None) -> tuple[int, int] | None:
    """Return the ``(width, height)`` in pixels that a request's *size* should produce.

    ``None`` (no size) gives the ``1:1`` size, a ratio gives its entry in
    :data:`RATIO_PIXELS` (the emulator's table; the real service may differ), and
    ``"WIDTHxHEIGHT"`` gives those numbers. A *size* that :func:`validate_size` would
    refuse gives ``None``: there is nothing to expect.

    >>> expected_dimensions("16:9")
    (1280, 720)
    >>> expected_dimensions("1024x768")
    (1024, 768)
    >>> expected_dimensions("16:10") is None
    True
    """
    try:
        normalised = validate_size(size)
    except InvalidRequestError:
        return None
    if normalised is None:
        return RATIO_PIXELS["1:1"]
    if normalised in RATIO_PIXELS:
        return RATIO_PIXELS[normalised]
    width, _, height = normalised.partition("x")
    return int(width), int(height)


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
                f"its host {_quote(host)} has a zone id, which only means something on "
                "this machine",
            )
        if port and not port.startswith(":"):
            raise InvalidRequestError(
                "callback_url", _URL_HOST_SYNTAX_RULE, f"{_quote(port)} follows the IPv6 host"
            )
        _check_port(port[1:])
        return host
    host, colon, port = netloc.partition(":")
    if colon:
        if ":" in port:
            raise InvalidRequestError(
                "callback_url",
                _URL_HOST_SYNTAX_RULE,
                f"its host {_quote(netloc)} has several ':'; write an IPv6 address in "
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
                f"its host {_quote(host)} contains {_describe_char(char)}, which a host "
                "name cannot hold",
            )
    return host


def _check_port(port: str) -> None:
    """Refuse a port that is not a number from 1 to 65535 (an empty port is the default)."""
    if not port:
        return
    if not (port.isascii() and port.isdigit()) or len(port) > 5 or not 1 <= int(port) <= 65535:
        raise InvalidRequestError(
            "callback_url", _URL_PORT_RULE, f"its port {_quote(port)} is not valid"
        )


def _check_side(value: str, side: str, digits: str) -> int:
    """Return one side of a ``WIDTHxHEIGHT`` size, refusing it if out of range."""
    significant = digits.lstrip("0")
    if len(significant) > len(str(SIZE_SIDE_MAX)):
        raise InvalidRequestError(
            "size",
            _SIZE_RULE,
            f"{_quote(value)} has a {side} of {len(significant)} digits, above the maximum "
            f"of {SIZE_SIDE_MAX}",
        )
    pixels = int(digits)
    if pixels < SIZE_SIDE_MIN:
        raise InvalidRequestError(
            "size",
            _SIZE_RULE,
            f"{_quote(value)} has a {side} of {pixels}, below the minimum of {SIZE_SIDE_MIN}",
        )
    if pixels > SIZE_SIDE_MAX:
        raise InvalidRequestError(
            "size",
            _SIZE_RULE,
            f"{_quote(value)} has a {side} of {pixels}, above the maximum of {SIZE_SIDE_MAX}",
        )
    return pixels


def _size_shape_problem(value: str) -> str:
    """Say what is wrong with a size string that is neither a ratio nor WIDTHxHEIGHT."""
    if not value:
        return "it is empty"
    if value.strip() != value or " " in value:
        return f"{_quote(value)} contains spaces"
    if _SIZE_UPPER_X.fullmatch(value):
        return f"{_quote(value)} does not use a lower-case 'x' between the sides"
    if ":" in value:
        return f"{_quote(value)} is not one of the listed ratios"
    return f"{_quote(value)} is neither a listed ratio nor WIDTHxHEIGHT"


def _wrong_type(value: object) -> str:
    """Describe a value of the wrong type, quoting a short start of its repr."""
    return f"got a value of type {type(value).__name__}: {_shorten(_safe_repr(value))}"


def _safe_repr(value: object) -> str:
    """Return ``repr(value)``, or a placeholder if that fails or is an over-long int."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _int_text(value)
    try:
        return repr(value)
    except Exception:  # a broken __repr__ must not hide the real problem
        return f"<{type(value).__name__} object>"


def _int_text(value: int) -> str:
    """Write an integer in full if it is short, else describe its size."""
    if abs(value) < 10**30:
        return str(value)
    sign = "-" if value < 0 else ""
    return f"a {sign}{value.bit_length()}-bit integer"


def _quote(text: str) -> str:
    """Return ``repr(text)``, cut to its first 60 characters with a note of its length."""
    if len(text) <= _QUOTE_MAX_CHARS:
        return repr(text)
    return f"{text[:_QUOTE_MAX_CHARS]!r}... ({len(text)} characters)"


def _shorten(text: str) -> str:
    """Cut an already-quoted text to about 60 characters."""
    if len(text) <= _QUOTE_MAX_CHARS:
        return text
    return text[:_QUOTE_MAX_CHARS] + "..."


def _describe_char(char: str) -> str:
    """Name a character for a message: ``'/'``, or ``U+000A`` for invisible ones."""
    if char.isprintable() and not char.isspace():
        return f"the character {char!r}"
    return f"the character U+{ord(char):04X}"
