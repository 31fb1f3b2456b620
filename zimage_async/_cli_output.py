"""What the ``zimage`` command writes: text shown escaped, JSON records, a stdout that fails.

Text from outside the command (a file name, a server's message, a prompt) is made
:func:`shown` where it is put into a message, so that its newlines cannot forge lines;
:func:`echo` and :func:`say` escape each line of the message again, which leaves escaped
text as it is. A standard output that cannot be written (a full disk, an I/O error)
raises :class:`StdoutError` once :func:`guarded_stdout` is in place, for the command to
say so instead of a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import unicodedata
from collections.abc import Iterator
from typing import IO, Any

from ._quoting import HIDDEN_CATEGORIES

__all__ = [
    "PROG",
    "SHOWN_CHARACTERS",
    "StdoutError",
    "drop_stdout",
    "echo",
    "guarded_stdout",
    "print_json",
    "say",
    "shown",
]

PROG = "zimage"
#: The most characters :func:`shown` keeps of a text (once escaped).
SHOWN_CHARACTERS = 1000
#: What :func:`shown` escapes: controls, format characters (bidi overrides, zero-width
#: ones), lone surrogates, and the line and paragraph separators.
_HIDDEN = HIDDEN_CATEGORIES


def shown(text: object, limit: int | None = SHOWN_CHARACTERS) -> str:
    r"""Return *text* fit for a terminal: every hidden character escaped, at most *limit* long.

    Controls and format characters (ESC, BEL, CR, a newline, U+202E...) become visible
    escapes (``\x1b``, ``\u202e``), so that no text from a server or a file can move
    the cursor, recolour, retitle or reorder the terminal; then a text longer than
    *limit* is cut there, ending in ``... (N more characters)``.
    """
    escaped = "".join(_escape(c) if unicodedata.category(c) in _HIDDEN else c for c in str(text))
    if limit is None or len(escaped) <= limit:
        return escaped
    return f"{escaped[:limit]}... ({len(escaped) - limit} more characters)"


def _escape(char: str) -> str:
    code = ord(char)
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char)
    wide = "x02" if code < 0x100 else "u04" if code < 0x10000 else "U08"
    return named or f"\\{wide[0]}{code:{wide[1:]}x}"


def echo(text: object, file: IO[str] | None = None) -> None:
    """Print *text* (on stdout, or *file*), each of its lines :func:`shown`.

    The line breaks of *text* are kept: a value put into it (a file name, a server's
    message) must be :func:`shown` first, or its own newlines would start lines. A line
    that is a command to run (``  zimage ...``, quoted by ``shell_line``) is never cut:
    cut, it would be another command.
    """
    lines = "\n".join(
        shown(line, None if line.startswith(f"  {PROG} ") else SHOWN_CHARACTERS)
        for line in str(text).split("\n")
    )
    print(lines, file=sys.stdout if file is None else file, flush=True)


def say(text: str) -> None:
    """Print a message for the user on stderr, each of its lines :func:`shown`."""
    echo(f"{PROG}: {text}", file=sys.stderr)


def print_json(record: dict[str, Any]) -> None:
    """Print *record* on stdout as one line of JSON (exact: JSON escapes controls itself)."""
    print(json.dumps(record, ensure_ascii=False), flush=True)


class StdoutError(Exception):
    """Standard output could not be written (a full disk, an I/O error; not a closed pipe).

    ``reason`` says why (``No space left on device``); ``hint`` is what the command
    still had to say when it happened (the tasks left to collect), if anything.
    """

    def __init__(self, error: OSError) -> None:
        self.reason = error.strerror or str(error)
        self.hint: str | None = None
        super().__init__(self.reason)


class _Guarded:
    """A text stream whose write failures raise :class:`StdoutError` (a closed pipe aside)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise StdoutError(exc) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise StdoutError(exc) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def guarded_stdout() -> Iterator[None]:
    """Make ``sys.stdout`` raise :class:`StdoutError` when it cannot be written, in the block."""
    original = sys.stdout
    sys.stdout = _Guarded(original)
    try:
        yield
    finally:
        sys.stdout = original


def drop_stdout() -> None:
    """Send what is left for stdout to the null device: the exit's flush must not fail again.

    Called once stdout failed (a closed pipe, a full disk): what the command printed to
    it is lost either way, and a second failure, at exit, would print Python's own
    complaint.
    """
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
