"""The number options of ``zimage``: written in ASCII digits, within their range.

Python's ``int()`` and ``float()`` also read the digits of other scripts (Arabic-Indic
U+0663, full-width U+FF13 are both 3) and underscores (``1_0``): a value no help text
or document writes, such as a ``--seed`` pasted from elsewhere, would be sent as
another number. Each parser here refuses anything but ASCII digits (with a sign, a
point, an exponent for the numbers that take them) with an argparse error that states
the rule (exit status 2).
"""

from __future__ import annotations

import argparse
import math
import re

__all__ = ["create_cost", "finite", "number", "port_number", "seconds", "whole_number"]

_WHOLE = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
#: Names float() reads that are no finite number: refused by each rule's range.
_NAMED = re.compile(r"[+-]?(?:inf|infinity|nan)", re.IGNORECASE)


def _ascii(text: str, pattern: re.Pattern[str], rule: str) -> str:
    """Return *text* if *pattern* matches it whole, else raise an error stating *rule*."""
    if pattern.fullmatch(text) is None and _NAMED.fullmatch(text) is None:
        digits = "" if text.isascii() and "_" not in text else ", written in ASCII digits (0-9)"
        raise argparse.ArgumentTypeError(f"{rule}{digits}, not {text!r}")
    return text


def whole_number(text: str) -> int:
    """Parse a whole-number option (``--seed``, ``--concurrency``): ASCII digits only."""
    return int(_ascii(text, _WHOLE, "a whole number"))


def number(text: str) -> float:
    """Parse a number option whose range is checked later (``--lease``, ``--max-credits``)."""
    return float(_ascii(text, _DECIMAL, "a number"))


def finite(text: str, *, zero: bool, rule: str) -> float:
    """Parse a finite number > 0 (or >= 0 with *zero*); else an argparse error naming *rule*."""
    value = float(_ascii(text, _DECIMAL, rule))
    if not (math.isfinite(value) and (value >= 0 if zero else value > 0)):
        raise argparse.ArgumentTypeError(f"{rule}, not {text!r}")
    return value


def port_number(text: str) -> int:
    """Parse ``--port``: a TCP port, 0 to 65535 (0: any free one)."""
    rule = "a port from 0 to 65535"
    port = int(_ascii(text, _WHOLE, rule))
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{rule}, not {text!r}")
    return port


def create_cost(text: str) -> float:
    """Parse ``--cost``: the expected credits of one create, a finite number > 0."""
    return finite(text, zero=False, rule="a finite number of credits > 0")


def seconds(text: str) -> float:
    """Parse ``--timeout``: a finite number of seconds > 0."""
    return finite(text, zero=False, rule="a number of seconds > 0")
