"""Quoting values in error messages: never a whole value, never a broken repr.

A value of the wrong type is named by its type, not quoted: it is most often something
meant for another argument (an API key, a password, a callback URL with its token),
and the message ends up in logs and crash reports. Numbers are no secrets: one of the
wrong type or out of its range is shown as it is (``got -1``, ``got inf``).
"""

from __future__ import annotations

import shlex
import unicodedata
from collections.abc import Sequence

__all__ = [
    "a_type",
    "describe_char",
    "escaped",
    "int_text",
    "log_text",
    "number_or_type",
    "quote",
    "shell_line",
    "short_repr",
    "text_problem",
    "wrong_type",
]

_QUOTE_MAX_CHARS = 60
_LOG_MAX_CHARS = 500


def wrong_type(value: object, *, quoted: bool = False) -> str:
    """Describe a value of the wrong type by its type; a number by its value too.

    With ``quoted=True`` (a value known to hold no secret), a short start of any
    value's repr is shown too.

    >>> wrong_type("sk-live-0123456789")
    'got a value of type str'
    >>> wrong_type(2.5)
    'got a value of type float: 2.5'
    """
    if quoted or _is_number(value):
        return f"got a value of type {type(value).__name__}: {short_repr(value)}"
    return f"got a value of type {type(value).__name__}"


def number_or_type(value: object) -> str:
    """Say what a number setting got: a number as it is, anything else by its type only.

    For ``f"got {number_or_type(value)}"``; a bool is named as one (it is taken for a
    mistake where a number is wanted).

    >>> number_or_type(-1), number_or_type(float("inf")), number_or_type(2**200)
    ('-1', 'inf', 'a 201-bit integer')
    >>> number_or_type("sk-live-0123456789"), number_or_type(True), number_or_type(None)
    ('a str', 'a bool', 'None')
    """
    return short_repr(value) if _is_number(value) else a_type(value)


def _is_number(value: object) -> bool:
    """Whether *value* is an int or a float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def a_type(value: object) -> str:
    """Name the type of *value* with its article, for "got ...": ``an int``, ``None``.

    >>> a_type(7), a_type("x"), a_type(None)
    ('an int', 'a str', 'None')
    """
    if value is None:
        return "None"
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeio' else 'a'} {name}"


def short_repr(value: object) -> str:
    """Return the start of ``repr(value)`` (about 60 characters); a huge int by its size."""
    return _shorten(_safe_repr(value))


def _safe_repr(value: object) -> str:
    """Return ``repr(value)``, or a placeholder if that fails or is an over-long int."""
    if isinstance(value, int) and not isinstance(value, bool):
        return int_text(value)
    try:
        return repr(value)
    except Exception:  # a broken __repr__ must not hide the real problem
        return f"<{type(value).__name__} object>"


def int_text(value: int) -> str:
    """Write an integer in full if it is short, else describe its size."""
    if abs(value) < 10**30:
        return str(value)
    sign = "-" if value < 0 else ""
    return f"a {sign}{value.bit_length()}-bit integer"


def surrogate_at(text: str) -> int | None:
    """Return where *text* holds a lone surrogate (no UTF-8 encodes it), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def quote(text: str) -> str:
    """Return ``repr(text)``, cut to its first 60 characters with a note of its length."""
    if len(text) <= _QUOTE_MAX_CHARS:
        return repr(text)
    return f"{text[:_QUOTE_MAX_CHARS]!r}... ({len(text)} characters)"


def log_text(value: object) -> str:
    r"""Return ``str(value)`` for a log line: cut to 500 characters, on one line.

    For the gateway's text (a status, an error's message) in the SDK's log records: a
    newline or another control character in it is written escaped (``\n``), so an
    answer cannot add lines of its own to the application's log.
    """
    text = str(value)
    if len(text) > _LOG_MAX_CHARS:
        text = f"{text[:_LOG_MAX_CHARS]}... ({len(text)} characters)"
    return escaped(text)


def escaped(text: str) -> str:
    r"""Return *text* with every character that is not printable written as its escape.

    A newline, an escape code, a lone surrogate (which no UTF-8 stream can write)...:
    ``\n``, ``\x1b``, ``\ud800``. Printable text, accented letters included, is
    returned as it is.

    >>> print(escaped("a\nb\x1b[2J \ud800 é"))
    a\nb\x1b[2J \ud800 é
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def _shorten(text: str) -> str:
    """Cut an already-quoted text to about 60 characters."""
    if len(text) <= _QUOTE_MAX_CHARS:
        return text
    return text[:_QUOTE_MAX_CHARS] + "..."


def describe_char(char: str) -> str:
    """Name a character for a message: ``'/'``, or ``U+000A`` for invisible ones."""
    if char.isprintable() and not char.isspace():
        return f"the character {char!r}"
    return f"the character U+{ord(char):04X}"


#: Characters a terminal does not show as themselves (controls, format characters...).
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def shell_line(args: Sequence[str]) -> str:
    r"""Return *args* as a shell command line that reads back as *args*, shown plainly.

    As :func:`shlex.join`, except that an argument holding a character a terminal would
    not show as itself (a tab, ESC, U+200D...) is written in ANSI-C quotes, which bash,
    zsh and ksh read back: ``$'renders\tv2'``.

    >>> shell_line(["zimage", "task", "a b", "-o", "renders\tv2"])
    "zimage task 'a b' -o $'renders\\tv2'"
    """
    return " ".join(map(_shell_word, args))


def _shell_word(arg: str) -> str:
    if not any(unicodedata.category(char) in HIDDEN_CATEGORIES for char in arg):
        return shlex.quote(arg)
    return "$'" + "".join(map(_ansi_c, arg)) + "'"


def _ansi_c(char: str) -> str:
    if char in "\\'":
        return "\\" + char
    if unicodedata.category(char) not in HIDDEN_CATEGORIES:
        return char
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char)
    code = ord(char)
    if named:
        return named
    return (
        f"\\x{code:02x}"
        if code < 0x80
        else f"\\u{code:04x}"
        if code < 0x10000
        else f"\\U{code:08x}"
    )


def text_problem(text: str, shown: str = "it") -> str:
    """Say what a text refused for spaces or control characters has wrong (*shown*: it)."""
    if not text.strip():
        return f"{shown} is empty" if not text else f"{shown} is blank (spaces only)"
    if any(not c.isprintable() and c != " " for c in text):
        return f"{shown} contains a control character (such as a line break)"
    return f"{shown} contains a space"
