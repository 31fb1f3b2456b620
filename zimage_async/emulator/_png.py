"""A small PNG encoder and chunk helpers using only the standard library (zlib + struct)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable

__all__ = ["PADDING_CHUNK_TYPE", "PNG_SIGNATURE", "chunk", "encode_rgb", "insert_before_iend"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PADDING_CHUNK_TYPE = b"zeMu"
"""A private, ancillary, safe-to-copy chunk type: decoders skip it."""

_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_MAX_CHUNK_BYTES = 2**31 - 1


def chunk(kind: bytes, data: bytes) -> bytes:
    """Return one PNG chunk: length, type, data and CRC."""
    if len(kind) != 4 or len(data) > _MAX_CHUNK_BYTES:
        raise ValueError("A PNG chunk has a 4-byte type and at most 2**31-1 bytes of data.")
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def encode_rgb(width: int, height: int, rows: Iterable[bytes]) -> bytes:
    """Encode 8-bit RGB *rows* (``3 * width`` bytes each, top to bottom) as a PNG file."""
    compressor = zlib.compressobj(6)
    parts: list[bytes] = []
    count = 0
    for row in rows:
        if len(row) != 3 * width:
            raise ValueError(f"Each row must hold {3 * width} bytes, got {len(row)}.")
        parts.append(compressor.compress(b"\x00" + row))
        count += 1
    if count != height:
        raise ValueError(f"Expected {height} rows, got {count}.")
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + _IEND


def insert_before_iend(png: bytes, extra: bytes) -> bytes:
    """Return *png* with the chunk bytes *extra* inserted just before its IEND chunk."""
    if not png.startswith(PNG_SIGNATURE) or not png.endswith(_IEND):
        raise ValueError("Not a PNG file ending in a plain IEND chunk.")
    return png[: -len(_IEND)] + extra + _IEND
