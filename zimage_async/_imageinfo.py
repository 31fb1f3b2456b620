"""Recognising image bytes: format from magic bytes, dimensions, where the image ends. Pure.

The protocol promises no content type for images (PNG, JPEG and WebP all occur), so
the bytes themselves are the authority. A body that is none of these, such as an HTML
error page served with status 200, is refused. An image is complete when its own framing
says so (:class:`ImageFraming`), not when the connection happens to end.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping

__all__ = [
    "EXTENSIONS",
    "SNIFF_BYTES",
    "ImageFraming",
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


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHUNK_HEAD = struct.Struct(">I4s")
#: In JPEG entropy-coded data, a 0xFF followed by anything but a stuffed 0x00, an RST
#: marker (0xD0-0xD7) or another 0xFF (fill) is the next marker.
_JPEG_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_NAMES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WebP"}
_ENDS = {"image/png": "IEND chunk", "image/jpeg": "EOI marker", "image/webp": "RIFF size"}
_START, _SEGMENTS, _ENTROPY = range(3)


class ImageFraming:
    r"""Follows an image's own framing as its bytes arrive, to tell where the image ends.

    A PNG ends with its ``IEND`` chunk (chunk lengths are walked from the signature;
    CRCs are not checked), a JPEG with its ``EOI`` marker (marker segments are walked;
    the entropy-coded data after ``SOS`` is scanned for the next marker, past stuffed
    ``FF 00`` bytes and ``RST`` markers), a WebP at its RIFF size + 8. Feed the body in
    chunks of any size with :meth:`feed`; between chunks only a few bytes are kept, and
    the insides of chunks and segments are skipped unread, so memory and work stay flat
    whatever the image's size.

    ``end`` is the image's length once its framing tells it, ``received`` the bytes fed,
    ``problem`` a sentence when the bytes break the format's structure. The image is
    :attr:`complete` when all three agree; bytes past ``end`` are :attr:`excess`.

    >>> framing = ImageFraming("image/webp")
    >>> framing.feed(b"RIFF\x04\x00\x00\x00WEBP")
    >>> framing.complete, framing.end
    (True, 12)
    >>> framing.feed(b"<html>")
    >>> framing.complete, framing.excess
    (False, 6)
    """

    __slots__ = ("_carry", "_skip", "_state", "end", "kind", "problem", "received")

    def __init__(self, kind: str) -> None:
        if kind not in _NAMES:
            raise ValueError(f"no framing is known for {kind!r}")
        self.kind = kind
        self.received = 0
        self.end: int | None = None
        self.problem: str | None = None
        self._carry = b""  # an incomplete header or marker, waiting for the next chunk
        self._skip = 0  # bytes inside a chunk or segment, still to come and not read
        self._state = _START

    @property
    def complete(self) -> bool:
        """``True`` when the bytes fed are exactly the image, up to its end marker."""
        return self.problem is None and self.end == self.received

    @property
    def excess(self) -> int:
        """How many bytes were fed past the image's end (0 while the end is unknown)."""
        return 0 if self.end is None else max(0, self.received - self.end)

    def missing(self) -> str:
        """Say what an incomplete image still lacks, as a phrase for error messages."""
        name, end = _NAMES[self.kind], _ENDS[self.kind]
        if self.end is None:
            return f"the {name} has not reached its {end} after {self.received} bytes"
        return f"the {name} ends at byte {self.end} (its {end}), but {self.received} arrived"

    def feed(self, data: bytes) -> None:
        """Take the next bytes of the body."""
        self.received += len(data)
        if self.end is not None or self.problem is not None:
            return
        skip = self._skip
        if skip >= len(data):
            self._skip = skip - len(data)
            return
        # A carry is only kept while no skip is pending, so one of the two is empty.
        buf = self._carry + data if self._carry else data
        self._carry = b""
        self._skip = 0
        origin = self.received - len(buf)
        if self.kind == "image/png":
            self._png(buf, skip, origin)
        elif self.kind == "image/jpeg":
            self._jpeg(buf, skip, origin)
        else:
            self._webp(buf, origin)

    def _wait(self, buf: bytes, pos: int) -> None:
        """Keep what is left of *buf* from *pos*, or note how far *pos* lies beyond it."""
        if pos > len(buf):
            self._skip = pos - len(buf)
        else:
            self._carry = buf[pos:]

    def _png(self, buf: bytes, pos: int, origin: int) -> None:
        if self._state == _START:
            if len(buf) < 8:
                self._carry = buf
                return
            if not buf.startswith(_PNG_SIGNATURE):
                self.problem = "the PNG signature is wrong"
                return
            pos, self._state = 8, _SEGMENTS
        limit = len(buf) - 8
        while pos <= limit:
            length, kind = _PNG_CHUNK_HEAD.unpack_from(buf, pos)
            if length > 0x7FFFFFFF or not kind.isalpha():
                self.problem = f"the PNG has no valid chunk at byte {origin + pos}"
                return
            pos += 12 + length  # length, type, data, CRC
            if kind == b"IEND":
                self.end = origin + pos
                return
        self._wait(buf, pos)

    def _jpeg(self, buf: bytes, pos: int, origin: int) -> None:
        size = len(buf)
        if self._state == _START:
            if size < 2:
                self._carry = buf
                return
            if not buf.startswith(b"\xff\xd8"):
                self.problem = "the JPEG does not start with SOI"
                return
            pos, self._state = 2, _SEGMENTS
        while True:
            if self._state == _ENTROPY:
                found = _JPEG_NEXT_MARKER.search(buf, pos)
                if found is None:
                    if buf[-1] == 0xFF and size > pos:  # it may start the next marker
                        self._carry = b"\xff"
                    return
                pos, self._state = found.start(), _SEGMENTS
            if pos + 2 > size:
                self._wait(buf, pos)
                return
            if buf[pos] != 0xFF:
                self.problem = (
                    f"the JPEG has no marker at byte {origin + pos} (found 0x{buf[pos]:02x})"
                )
                return
            marker = buf[pos + 1]
            if marker == 0xFF:  # fill byte before a marker
                pos += 1
            elif marker == 0xD9:
                self.end = origin + pos + 2
                return
            elif marker == 0x01 or 0xD0 <= marker <= 0xD7:  # no length follows
                pos += 2
            elif marker in (0x00, 0xD8):
                self.problem = (
                    f"the JPEG has a misplaced marker 0x{marker:02x} at byte {origin + pos}"
                )
                return
            else:
                if pos + 4 > size:
                    self._carry = buf[pos:]
                    return
                length = buf[pos + 2] << 8 | buf[pos + 3]
                if length < 2:
                    self.problem = (
                        f"the JPEG has a segment of length {length} at byte {origin + pos}"
                    )
                    return
                pos += 2 + length
                if marker == 0xDA:  # start of scan: entropy-coded data follows
                    self._state = _ENTROPY
                if pos > size:
                    self._skip = pos - size
                    return

    def _webp(self, buf: bytes, origin: int) -> None:
        if len(buf) < 12:
            self._carry = buf
            return
        if buf[:4] != b"RIFF" or buf[8:12] != b"WEBP":
            self.problem = "the WebP does not start with a RIFF WEBP header"
            return
        size = int.from_bytes(buf[4:8], "little")
        if size < 4:
            self.problem = f"the WebP's RIFF size ({size}) is too small"
            return
        self.end = origin + 8 + size
