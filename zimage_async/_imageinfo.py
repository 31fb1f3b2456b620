"""Recognising image bytes: format from magic bytes, dimensions from the header. Pure.

The protocol promises no content type for images (PNG, JPEG and WebP all occur), so
the bytes themselves are the authority. A body that is none of these, such as an HTML
error page served with status 200, is refused.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

__all__ = [
    "EXTENSIONS",
    "SNIFF_BYTES",
    "check_declared_type",
    "image_dimensions",
    "size_mismatch",
    "sniff_content_type",
]

#: The image types accepted, by media type, with the file extension each is saved under.
EXTENSIONS: Mapping[str, str] = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
#: How many leading bytes suffice to recognise the format and read PNG/WebP sizes.
SNIFF_BYTES = 32

_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png"}
_NEUTRAL = ("", "application/octet-stream", "binary/octet-stream")


def sniff_content_type(head: bytes) -> str | None:
    r"""Return the media type the leading bytes announce, or ``None`` if not an image.

    >>> sniff_content_type(b"\x89PNG\r\n\x1a\n" + bytes(8))
    'image/png'
    >>> sniff_content_type(b"<!doctype html>") is None
    True
    """
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def check_declared_type(declared: str | None, sniffed: str) -> str | None:
    """Return a problem if the ``Content-Type`` header contradicts the bytes, else ``None``.

    A missing or generic binary type is accepted; ``text/html`` or another image type
    than the bytes show is not.

    >>> check_declared_type("image/png; charset=binary", "image/png") is None
    True
    >>> check_declared_type("text/html", "image/png")
    'the server declared text/html but sent image/png bytes'
    """
    media = (declared or "").split(";", 1)[0].strip().lower()
    media = _ALIASES.get(media, media)
    if media in _NEUTRAL or media == sniffed:
        return None
    return f"the server declared {media} but sent {sniffed} bytes"


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """Return ``(width, height)`` read from an image's header, or ``None`` if unreadable.

    PNG and WebP need only the first :data:`SNIFF_BYTES` bytes; JPEG is scanned for its
    start-of-frame marker.
    """
    kind = sniff_content_type(data[:SNIFF_BYTES])
    if kind == "image/png" and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if kind == "image/webp":
        return _webp_dimensions(data)
    if kind == "image/jpeg":
        return _jpeg_dimensions(data)
    return None


def _webp_dimensions(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
        return width, height
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_dimensions(data: bytes) -> tuple[int, int] | None:
    offset = 2
    end = len(data)
    while offset + 4 <= end:
        if data[offset] != 0xFF:
            return None
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            offset += 2
            continue
        (length,) = struct.unpack(">H", data[offset + 2 : offset + 4])
        if marker in _SOF_MARKERS:
            if offset + 9 > end:
                return None
            height, width = struct.unpack(">HH", data[offset + 5 : offset + 9])
            return int(width), int(height)
        offset += 2 + length
    return None


def size_mismatch(requested: str | None, actual: tuple[int, int]) -> str | None:
    """Return how *actual* pixels differ from what the request's *size* asked, or ``None``.

    ``WIDTHxHEIGHT`` must match exactly. A ratio (or no size, meaning ``1:1``) is
    checked by aspect only, within 2 %, since the service's pixel sizes for ratios are
    not documented.

    >>> size_mismatch("1024x768", (1024, 768)) is None
    True
    >>> size_mismatch("1024x768", (1024, 1024))
    'asked for 1024x768, got 1024x1024'
    >>> size_mismatch("16:9", (1280, 720)) is None
    True
    >>> size_mismatch(None, (1280, 720))
    'asked for 1:1, got 1280x720'
    """
    width, height = actual
    wanted = requested or "1:1"
    if "x" in wanted:
        w, _, h = wanted.partition("x")
        return None if (int(w), int(h)) == actual else f"asked for {wanted}, got {width}x{height}"
    w, _, h = wanted.partition(":")
    if height <= 0 or abs((width / height) / (int(w) / int(h)) - 1) <= 0.02:
        return None
    return f"asked for {wanted}, got {width}x{height}"
