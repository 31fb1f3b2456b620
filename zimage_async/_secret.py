"""Keeping the API key out of reprs, logs, tracebacks, pickles and echoed error text."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from typing import NoReturn, ParamSpec

P = ParamSpec("P")

__all__ = [
    "MASK",
    "Secret",
    "frameless_refusals",
    "raise_alone",
    "redact_text",
    "without_queries",
]

#: What a masked secret reads as.
MASK = "***"

# "Bearer <token>" and "Basic <token>" as an Authorization value would carry them.
_AUTH_TOKEN = re.compile(r"\b(Bearer|Basic)(\s+)[A-Za-z0-9\-._~+/=:]+", re.IGNORECASE)
# A query in a quoted request line (``b'POST /hook?token=... HTTP/1.1' ^``, as aiohttp
# quotes one): from its "?" to the line's version and end (an escaped CR or LF, the
# quote's end, the text's end); an escape (``\x01``, ``\\``) is taken whole.
_QUOTED_QUERY = re.compile(
    r"\?(?:\\.|[^\\])*?(?=(?: (?:HTTP|RTSP|ICE)/[0-9.]*)?(?:\\[rn]|['\"] \^|['\"]?$))"
)


class Secret:
    """Holds a secret string; every way of printing it shows ``'***'``.

    >>> key = Secret("sk-live-123")
    >>> key, str(key), f"{key}"
    (Secret('***'), '***', '***')
    >>> key.reveal()
    'sk-live-123'
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret itself, for the one header that needs it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")


def redact_text(text: str, *, secrets: Iterable[str] = ()) -> str:
    """Return *text* with every one of *secrets* and every ``Bearer <token>`` masked.

    For text that comes from elsewhere (an error envelope that echoes the request's
    ``Authorization`` header, say) before it goes into an exception or a log line.
    Secrets shorter than 4 characters are not searched for (they would mask noise).

    >>> redact_text("bad key sk-123456 (Bearer sk-123456)", secrets=["sk-123456"])
    'bad key *** (Bearer ***)'
    """
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, MASK)
    return _AUTH_TOKEN.sub(lambda match: f"{match.group(1)}{match.group(2)}{MASK}", text)


def without_queries(text: str) -> str:
    r"""Return *text*, quoting a request line (aiohttp's words on a request), without its query.

    A callback URL's query may hold a token for the receiver. Every query is masked, up
    to the line's version, which is kept.

    >>> without_queries("Invalid method: b'PO{T /hook?token=abc\\x01 HTTP/1.1' ^")
    "Invalid method: b'PO{T /hook?*** HTTP/1.1' ^"
    """
    return _QUOTED_QUERY.sub(f"?{MASK}", text)


def frameless_refusals(init: Callable[P, None]) -> Callable[P, None]:
    """Make a constructor that takes secrets raise its refusals without its frames.

    A refused setting's traceback would otherwise hold the constructor's frames, and with
    them its arguments and the values it derived (the key from the environment, a proxy's
    or a journal URL's password) as locals, which error reporters send. The refusal is
    raised again from this wrapper alone, its arguments dropped first, and without the
    error it was raised while handling (whose frames hold them too); its message names
    the setting and the rule, which is what the caller needs.
    """

    @functools.wraps(init)
    def checked(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            init(*args, **kwargs)
        except Exception as refused:
            kwargs.clear()
            del args  # the instance itself, half built: even its repr may fail
            refused.__context__ = None  # an error it was raised while handling: its frames
            raise refused.with_traceback(None) from None

    return checked


def raise_alone(error: BaseException) -> NoReturn:
    """Raise *error* with no cause or context, and its traceback begun here.

    For an error raised while handling another one whose frames hold a secret (a
    journal's rows, a driver's arguments, a request's callback token): error reporters
    send every chained exception and the locals of each frame. The caller keeps neither
    in its own locals.
    """
    try:
        raise error
    except BaseException as raised:
        raised.__context__ = None  # set by the raise above: what the caller was handling
        raise raised.with_traceback(None) from None
