"""Check request fields against the API's documented rules before anything is sent.

Each ``validate_*`` function takes the value a caller passed, returns it normalised, or
raises :class:`~zimage_async.InvalidRequestError` naming the field, the rule and what is
wrong with the value. Nothing here does I/O: a refusal costs nothing and bills nothing.

Messages never quote a whole value: at most its first 60 characters, and for a prompt or
a callback URL (which may carry a secret token) not even that.
"""

from __future__ import annotations

import re
import types
import unicodedata
from collections.abc import Mapping

from zimage_async._callback_url import (
    CALLBACK_URL_MAX_CHARS,
    validate_callback_url,
    validate_receiver_url,
)
from zimage_async._exceptions import InvalidRequestError
from zimage_async._quoting import describe_char, int_text, quote, wrong_type

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


_PROMPT_RULE = (
    "a string with at least one visible character (whitespace, control and format "
    "characters such as U+200B or U+FEFF, and other invisible ones do not count), at most "
    f"{PROMPT_MAX_CHARS} characters, that can be encoded as UTF-8 (no lone surrogate, "
    "U+D800 to U+DFFF)"
)
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
_SIZE_PATTERN = re.compile(r"([0-9]+)x([0-9]+)", re.ASCII)
_SIZE_UPPER_X = re.compile(r"([0-9]+)[X\u00d7]([0-9]+)", re.ASCII)
_TASK_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
#: A well-formed task id, recognised in one step (every create answer's id is checked).
_TASK_ID_OK = re.compile(
    re.escape(TASK_ID_PREFIX) + "[A-Za-z0-9_-]{1,%s}" % (TASK_ID_MAX_CHARS - len(TASK_ID_PREFIX))
)


#: A visible ASCII character: most prompts hold one, found without a look at each.
_VISIBLE_ASCII = re.compile("[!-~]")
#: Invisible characters that are neither whitespace nor control or format characters:
#: the other default-ignorable ones (a joiner, fillers, variation selectors).
_IGNORABLE = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u3164\uffa0"
    + "".join(map(chr, range(0xFE00, 0xFE10)))
    + "".join(map(chr, range(0xE0100, 0xE01F0)))
)


def is_invisible(char: str) -> bool:
    """Tell whether *char* shows nothing: whitespace, a control or format character...

    Format characters (Unicode category Cf) include U+FEFF (a byte order mark), U+200B
    (zero width space), U+00AD (soft hyphen) and the bidi controls.
    """
    if char.isspace() or char in _IGNORABLE:
        return True
    return unicodedata.category(char) in ("Cc", "Cf")


def validate_prompt(value: object) -> str:
    """Check a prompt: a visible character at least, at most 2000 characters, valid as UTF-8.

    A prompt of whitespace and invisible characters alone (control and format
    characters such as U+200B or U+FEFF, variation selectors, Hangul fillers) is refused.

    Characters are counted as Python counts them (``len(prompt)``). A lone surrogate
    (U+D800 to U+DFFF, which a JSON escape or a file name decoded with
    ``surrogateescape`` can put into a ``str``) is refused: the request body and the
    journal are UTF-8. The prompt is returned unchanged; surrounding whitespace is kept.

    >>> validate_prompt("a cute cat")
    'a cute cat'
    """
    if not isinstance(value, str):
        raise InvalidRequestError("prompt", _PROMPT_RULE, wrong_type(value, quoted=False))
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
    if _VISIBLE_ASCII.search(value) is None and all(map(is_invisible, value)):
        shown = next(char for char in value if not char.isspace())
        raise InvalidRequestError(
            "prompt",
            _PROMPT_RULE,
            "it has no visible character, only whitespace and invisible characters such as "
            f"U+{ord(shown):04X}",
        )
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidRequestError(
                "prompt",
                _PROMPT_RULE,
                f"it contains {describe_char(value[exc.start])} at position {exc.start}, "
                "a lone surrogate, which UTF-8 cannot encode",
            ) from None
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
    if type(value) is str and (known := _SIZES_SEEN.get(value)) is not None:
        return known  # checked before: a session sends the same few sizes
    if not isinstance(value, str):
        raise InvalidRequestError("size", _SIZE_RULE, wrong_type(value))
    if value in SIZE_RATIOS:
        return value
    match = _SIZE_PATTERN.fullmatch(value)
    if match is None:
        raise InvalidRequestError("size", _SIZE_RULE, _size_shape_problem(value))
    width = _check_side(value, "width", match.group(1))
    height = _check_side(value, "height", match.group(2))
    normalised = f"{width}x{height}"
    if type(value) is str and len(_SIZES_SEEN) < _SIZES_KEPT:
        _SIZES_SEEN[value] = normalised
    return normalised


#: Valid ``WIDTHxHEIGHT`` sizes already checked, and their normal form (bounded).
_SIZES_SEEN: dict[str, str] = {}
_SIZES_KEPT = 256


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
        raise InvalidRequestError("seed", _SEED_RULE, wrong_type(value))
    if value < SEED_MIN:
        raise InvalidRequestError(
            "seed", _SEED_RULE, f"{int_text(value)} is below the minimum of {SEED_MIN}"
        )
    if value > SEED_MAX:
        raise InvalidRequestError(
            "seed", _SEED_RULE, f"{int_text(value)} is above the maximum of {SEED_MAX}"
        )
    return int(value)


def validate_nsfw_check(value: object) -> bool | None:
    """Check ``nsfw_check``: ``True``, ``False`` or ``None``; ``0`` and ``1`` are refused.

    >>> validate_nsfw_check(True)
    True
    """
    if value is None or isinstance(value, bool):
        return value
    raise InvalidRequestError("nsfw_check", _NSFW_RULE, wrong_type(value))


def validate_model(value: object) -> str:
    """Check a model name: only ``"z-image-turbo"`` is served.

    >>> validate_model("z-image-turbo")
    'z-image-turbo'
    """
    if not isinstance(value, str):
        raise InvalidRequestError("model", _MODEL_RULE, wrong_type(value))
    if value != MODEL:
        raise InvalidRequestError(
            "model", _MODEL_RULE, f"{quote(value)} is not a model this API serves"
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
        raise InvalidRequestError("task_id", _TASK_ID_RULE, wrong_type(value))
    if _TASK_ID_OK.fullmatch(value):
        return value
    if len(value) > TASK_ID_MAX_CHARS:
        raise InvalidRequestError(
            "task_id",
            _TASK_ID_RULE,
            f"it is {len(value)} characters long, over the maximum of {TASK_ID_MAX_CHARS}",
        )
    if not value.startswith(TASK_ID_PREFIX):
        raise InvalidRequestError(
            "task_id", _TASK_ID_RULE, f"{quote(value)} does not start with {TASK_ID_PREFIX!r}"
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
                f"{quote(value)} contains {describe_char(char)} at position {position}",
            )
    return value


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


def _check_side(value: str, side: str, digits: str) -> int:
    """Return one side of a ``WIDTHxHEIGHT`` size, refusing it if out of range."""
    significant = digits.lstrip("0")
    if len(significant) > len(str(SIZE_SIDE_MAX)):
        raise InvalidRequestError(
            "size",
            _SIZE_RULE,
            f"{quote(value)} has a {side} of {len(significant)} digits, above the maximum "
            f"of {SIZE_SIDE_MAX}",
        )
    pixels = int(digits)
    if pixels < SIZE_SIDE_MIN:
        raise InvalidRequestError(
            "size",
            _SIZE_RULE,
            f"{quote(value)} has a {side} of {pixels}, below the minimum of {SIZE_SIDE_MIN}",
        )
    if pixels > SIZE_SIDE_MAX:
        raise InvalidRequestError(
            "size",
            _SIZE_RULE,
            f"{quote(value)} has a {side} of {pixels}, above the maximum of {SIZE_SIDE_MAX}",
        )
    return pixels


def _size_shape_problem(value: str) -> str:
    """Say what is wrong with a size string that is neither a ratio nor WIDTHxHEIGHT."""
    if not value:
        return "it is empty"
    if value.strip() != value or " " in value:
        return f"{quote(value)} contains spaces"
    if _SIZE_UPPER_X.fullmatch(value):
        return f"{quote(value)} does not use a lower-case 'x' between the sides"
    if ":" in value:
        return f"{quote(value)} is not one of the listed ratios"
    return f"{quote(value)} is neither a listed ratio nor WIDTHxHEIGHT"
