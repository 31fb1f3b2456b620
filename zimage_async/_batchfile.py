"""Reading a batch file: one prompt per line, or one JSON object of request fields per line.

Pure: text in, requests (with their line numbers) out. Every line is checked before
anything is submitted, and an error names the line and the field.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path

import attrs

from ._exceptions import InvalidRequestError
from ._models import GenerationRequest
from ._quoting import quote
from ._validation import is_invisible

__all__ = [
    "MAX_BATCH_FILE_BYTES",
    "BatchFileError",
    "BatchLine",
    "parse_batch_text",
    "read_batch_file",
]

#: The request fields a JSONL row may carry.
FIELDS = ("prompt", "size", "seed", "nsfw_check", "callback_url", "model")


class BatchFileError(ValueError):
    """A batch file cannot be used; the message names the file, the line and the field."""


@attrs.frozen(kw_only=True)
class BatchLine:
    """One item of a batch file: the 1-based line it came from, and its request."""

    line: int
    request: GenerationRequest


#: The two formats, for the errors that refuse a file or a line as neither.
FORMATS = (
    "zimage batch reads text, one prompt per line, or JSON lines, one object such as "
    '{"prompt": "a cat", "size": "16:9"} per line (a .jsonl or .ndjson name, or a first '
    "item that is an object: {}, { then a quoted key, or {...} holding a colon)"
)
#: Names of files that are not read at all: each of their lines would be sent as a prompt.
_REFUSED_NAMES = {
    ".json": "a JSON document, such as an array of objects",
    ".csv": "a table with a header row",
}
#: A header row of a table (CSV, TSV): "prompt" and more column names.
#: A table's header row: ``prompt`` then other fields of a request, quoted or not.
_TABLE_HEADER = re.compile(
    r'"?prompt"?(?:\s*[,;\t]\s*"?(?:size|seed|nsfw_check|callback_url|model)"?)+\s*,?',
    re.IGNORECASE,
)
#: The start of a JSON array of rows: ``[`` alone, or ``[`` then an object, string or array.
_ARRAY_START = re.compile(r"\[\s*(?:[{\[\"]|$)")
#: An object, written as JSON (or as a Python dict): ``{}``, or ``{`` then a quoted key.
_OBJECT = re.compile(r"""\{\s*(?:\}|(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\s*:)""")


def _object_shaped(text: str) -> bool:
    """Whether *text* is shaped as a JSON object: ``{...}`` holding a ``:``, keys quoted or not."""
    return text.startswith("{") and text.endswith(("}", "},")) and ":" in text


#: Characters that some editors and tools take as a line break, but ``\n``-counted
#: lines (``wc -l``, the numbers in errors) do not: refused anywhere in a batch file.
_BREAKS = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_BREAK_NAMES = {
    "\r": "a carriage return not followed by a newline",
    "\x0b": "a vertical tab",
    "\x0c": "a form feed",
    "\x1c": "a file separator",
    "\x1d": "a group separator",
    "\x1e": "a record separator",
    "\x85": "a next-line character (NEL)",
    "\u2028": "a line separator",
    "\u2029": "a paragraph separator",
}


def _split_lines(name: str, text: str) -> list[str]:
    r"""Split *text* into lines at ``\n`` alone, dropping a ``\r`` before it.

    A line holding any other line break is refused, naming the line, so that the items
    and the line numbers are the lines an editor or ``wc -l`` shows.
    """
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if line.endswith("\r"):
            line = lines[number - 1] = line[:-1]
        if (found := _BREAKS.search(line)) is not None:
            char = found.group()
            raise BatchFileError(
                f"{name} line {number}: it holds {_BREAK_NAMES[char]} (U+{ord(char):04X}) at "
                f"column {found.start() + 1}, which some editors and tools take as a line "
                "break; lines end with a newline (\\n or \\r\\n) alone: replace it by a space, "
                "or put each prompt on a line of its own"
            )
    return lines


def _check_name(name: str) -> None:
    """Refuse a file whose name says it is neither text nor JSON lines (``.json``, ``.csv``)."""
    for suffix, what in _REFUSED_NAMES.items():
        if name.lower().endswith(suffix):
            raise BatchFileError(
                f"{name}: a {suffix} file is {what}, not a batch file; {FORMATS}; "
                f"write one JSON object per line to a .jsonl file instead"
            )


def _not_a_prompt(text: str, first: int | None) -> str | None:
    """Why a line of a text batch file is no prompt (JSON, a table's header), or None.

    *first* is the line of the file's first item, None when this line is the first.
    """
    if first is None and _ARRAY_START.match(text):
        return "it starts a JSON array"
    if first is None and _TABLE_HEADER.fullmatch(text):
        return "it is a table's header row (CSV)"
    if _object_shaped(text) or (_OBJECT.match(text) and text.endswith(("}", "},"))):
        return "it is a JSON object, in a file read as text (one prompt per line)"
    return None


def _content(line: str) -> str | None:
    """Give the item a line holds, or None for a blank line or a ``#`` comment.

    U+FEFF (a byte order mark, which ``cat`` of files saved with one leaves at the
    start of a line) is dropped, and a line of whitespace and other invisible
    characters (U+200B...) alone is blank: its first visible character tells a comment.
    """
    text = line.replace("\ufeff", "").strip()
    first = next((char for char in text if not is_invisible(char)), None)
    return None if first is None or first == "#" else text


def _is_jsonl(name: str, items: list[str | None]) -> bool:
    """Whether the file is JSON lines: by its name, or a first item that is an object.

    An object is ``{}``, ``{`` then a quoted key, or ``{...}`` holding a ``:`` (keys
    without quotes), the shapes a text file refuses as a JSON object: a row with a typo is
    still named as bad JSON, never sent as a prompt, while a first prompt of tags or
    emphasis in braces (``{red|blue} car``, ``{masterpiece}, {1girl}``) makes a file of
    prompts.
    """
    if name.endswith((".jsonl", ".ndjson")):
        return True
    first = next((text for text in items if text is not None), "")
    return _OBJECT.match(first) is not None or _object_shaped(first)


#: The most digits a JSONL row's integer may have; any field's integer has far fewer.
_INT_DIGITS_MAX = 1000


class _UnreadableNumberError(ValueError):
    """A JSONL row's integer is longer than any field could take."""


def _read_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > _INT_DIGITS_MAX:
        raise _UnreadableNumberError(f"a number of {digits} digits")
    return int(text)


class _RepeatedFieldError(ValueError):
    """A JSONL row's object gives one field twice: which value is meant is not known."""


def _once_each(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """Return a JSON object's fields as a dict, refusing one given twice."""
    data = dict(pairs)
    if len(data) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedFieldError(f"the field {quote(key)} is given twice")
            seen.add(key)
    return data


def _row(name: str, number: int, text: str, defaults: Mapping[str, object]) -> GenerationRequest:
    where = f"{name} line {number}"
    problem: str | None = None
    try:
        data = json.loads(text, parse_int=_read_int, object_pairs_hook=_once_each)
    except json.JSONDecodeError as exc:
        problem = f"{exc.msg} at column {exc.colno}"
    except _UnreadableNumberError as exc:
        problem = str(exc)
    except _RepeatedFieldError as exc:  # which value to send (and bill) is not known
        raise BatchFileError(f"{where}: {exc}; give each field once") from None
    except ValueError:  # Python's own limit on the digits of an int, if set lower
        problem = "a number with more digits than can be read"
    except RecursionError:
        problem = "arrays or objects nested too deeply to be read"
    if problem is not None:
        raise BatchFileError(
            f"{where}: not valid JSON ({problem}); each line of a JSONL batch file is one "
            'object such as {"prompt": "a cat", "size": "16:9"}'
        )
    if not isinstance(data, dict):
        raise BatchFileError(f"{where}: a JSON object is needed, not {type(data).__name__}")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise BatchFileError(
            f"{where}: unknown field {unknown[0]!r}; the fields are {', '.join(FIELDS)}"
        )
    if "prompt" not in data:
        raise BatchFileError(f"{where}: field 'prompt' is missing; every row needs a prompt")
    fields = {**defaults, **data}
    try:
        return GenerationRequest(**fields)
    except InvalidRequestError as exc:
        raise BatchFileError(f"{where}: field {exc.field!r}: {exc.problem}; {exc.rule}") from None


def parse_batch_text(
    text: str, *, name: str = "<batch>", defaults: Mapping[str, object] | None = None
) -> list[BatchLine]:
    r"""Parse a batch file's text; blank lines and lines starting with ``#`` are skipped.

    U+FEFF is dropped, and a line of whitespace and invisible characters is blank.

    Lines end with ``\n`` (or ``\r\n``) alone; a line holding another line break (a
    lone ``\r``, a form feed, NEL, U+2028...) is refused.

    *defaults* are request fields (``size``, ``nsfw_check``) for items that do not set
    their own. Raises :class:`BatchFileError` on the first bad line, or if there is no
    item at all.
    """
    _check_name(name)
    contents = [_content(line) for line in _split_lines(name, text)]
    given = dict(defaults or {})
    items: list[BatchLine] = []
    jsonl = _is_jsonl(name, contents)
    for number, stripped in enumerate(contents, start=1):
        if stripped is None:
            continue
        if jsonl:
            request = _row(name, number, stripped, given)
        else:
            if (why := _not_a_prompt(stripped, items[0].line if items else None)) is not None:
                raise BatchFileError(f"{name} line {number}: {why}; {FORMATS}")
            try:
                request = GenerationRequest(prompt=stripped, **given)
            except InvalidRequestError as exc:
                raise BatchFileError(
                    f"{name} line {number}: field {exc.field!r}: {exc.problem}; {exc.rule}"
                ) from None
        items.append(BatchLine(line=number, request=request))
    if not items:
        raise BatchFileError(
            f"{name} has no prompts (only blank lines or # comments); put one prompt per line"
        )
    return items


#: The largest batch file read, in bytes (64 MiB: over 30,000 prompts of 2000 characters).
MAX_BATCH_FILE_BYTES = 64 * 1024 * 1024


def _size_text(size: int) -> str:
    return f"{size // 2**20} MiB" if size % 2**20 == 0 else f"{size} bytes"


def _read_bounded(path: Path) -> bytes:
    """Read *path* whole: a file or a pipe (``<(command)``), at most ``MAX_BATCH_FILE_BYTES``.

    A device (``/dev/zero``) or a socket is refused without being opened; a FIFO is read
    as ``cat`` reads it, waiting for its writer.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise BatchFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise BatchFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise BatchFileError(f"{path} is a directory; pass a text or JSONL file")
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
        raise BatchFileError(
            f"{path}: a device or a socket, not a file; pass a text or JSONL file (or a pipe)"
        )
    cap = MAX_BATCH_FILE_BYTES
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size if stat.S_ISREG(mode) else 0
            data = b"" if size > cap else file.read(cap + 1)  # bounded: it may have grown
    except OSError as exc:
        raise BatchFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    if size > cap or len(data) > cap:
        raise BatchFileError(
            f"{path}: larger than {_size_text(cap)}, the most a batch file may hold; split "
            "it into smaller files, each run as a batch of its own"
        )
    return data


def read_batch_file(path: Path, *, defaults: Mapping[str, object] | None = None) -> list[BatchLine]:
    """Read and parse the batch file at *path* (UTF-8); see :func:`parse_batch_text`.

    A file or a pipe is read (a device or a socket is refused without being opened), and
    at most ``MAX_BATCH_FILE_BYTES`` of it: a larger one is refused.
    """
    _check_name(str(path))
    data = _read_bounded(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise BatchFileError(f"{path} line {line}: not UTF-8 text") from None
    return parse_batch_text(text, name=str(path), defaults=defaults)
