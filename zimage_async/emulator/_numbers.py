"""What counts as a number in the emulator's options, and how a refused value is shown.

A bool, a string, None, a container or an int too large for a float is not a number of
seconds: these checks answer False or None for it instead of raising, so that each
option's own check raises the ``ValueError`` naming the option and its rule (never a bare
``TypeError`` or ``OverflowError`` from :mod:`math`).
"""

from __future__ import annotations

import math
import numbers
from typing import TypeGuard

__all__ = ["finite_number", "is_int", "shown"]

_SHOWN_CHARACTERS = 60


def is_int(value: object) -> TypeGuard[int]:
    """Tell whether *value* is an int (a bool is not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def finite_number(value: object) -> float | None:
    """Return *value* as a float if it is a finite real number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        return None
    return number if math.isfinite(number) else None


def shown(value: object) -> str:
    """Return *value*'s repr for a message: at most 60 characters, and never raising."""
    try:
        text = repr(value)
    except ValueError:  # an int with more digits than Python turns into text
        return f"a value too large to show ({type(value).__name__})"
    if len(text) <= _SHOWN_CHARACTERS:
        return text
    return f"{text[: _SHOWN_CHARACTERS - 3]}..."
