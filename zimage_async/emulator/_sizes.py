"""Image sizes: the documented ratios, the pixels used for each, and ``WIDTHxHEIGHT``.

=======  ============
ratio    pixels (WxH)
=======  ============
``1:1``  1024x1024
``2:3``  832x1248
``3:2``  1248x832
``3:4``  864x1152
``4:3``  1152x864
``9:16`` 720x1280
``16:9`` 1280x720
``1:2``  720x1440
``2:1``  1440x720
=======  ============

No size means ``1:1``. ``WIDTHxHEIGHT`` (lower-case ``x``, digits only, no spaces) is used as
given, each side 376 to 1536 pixels. The provider does not document its pixel sizes for
ratios; these are the emulator's choice.
"""

from __future__ import annotations

import re
from types import MappingProxyType

__all__ = ["DEFAULT_RATIO", "MAX_SIDE_PIXELS", "MIN_SIDE_PIXELS", "RATIO_SIZES", "parse_size"]

RATIO_SIZES: MappingProxyType[str, tuple[int, int]] = MappingProxyType(
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
"""Pixels (width, height) the emulator renders for each documented aspect ratio."""

DEFAULT_RATIO = "1:1"
MIN_SIDE_PIXELS = 376
MAX_SIDE_PIXELS = 1536

_CUSTOM = re.compile(r"([0-9]{1,6})x([0-9]{1,6})")


def parse_size(size: str | None) -> tuple[int, int] | None:
    """Return (width, height) in pixels for a size string, or None if it breaks the rules.

    >>> parse_size("16:9"), parse_size("1024x768"), parse_size("1024X768")
    ((1280, 720), (1024, 768), None)
    """
    if size is None:
        return RATIO_SIZES[DEFAULT_RATIO]
    if size in RATIO_SIZES:
        return RATIO_SIZES[size]
    match = _CUSTOM.fullmatch(size)
    if match is None:
        return None
    width, height = int(match.group(1)), int(match.group(2))
    sides_ok = all(MIN_SIDE_PIXELS <= side <= MAX_SIDE_PIXELS for side in (width, height))
    return (width, height) if sides_ok else None
