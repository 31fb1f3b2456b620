r"""Generation metadata inside image files: write it, read it back. Pure (bytes in, bytes out).

An image saved by the SDK can carry what made it (prompt, seed, size, model, task id) in
the file itself, where image viewers and ``zimage info`` find it:

* **PNG**: one ``iTXt`` chunk per field (UTF-8 text, uncompressed), keyword = field
  name, inserted before ``IEND``. Chunks of the same keyword are replaced.
* **JPEG**: an XMP packet in an ``APP1`` segment right after ``SOI`` (and after the
  JFIF ``APP0``, if any). An earlier XMP segment is replaced.
* **WebP**: an XMP packet in an ``XMP `` chunk of the extended format, with the XMP flag
  set in ``VP8X``. A simple file (one ``VP8 `` or ``VP8L`` chunk) is converted to the
  extended format, with the canvas size (and alpha flag) taken from its bitstream.

The image data is not touched: the pixels decode exactly as before. In XMP the fields
are elements of the namespace :data:`XMP_NAMESPACE`; in PNG, :func:`read_metadata`
returns every text chunk (``tEXt``, ``zTXt`` and ``iTXt``), also those of other tools.

Characters neither a PNG text chunk nor XML 1.0 can carry (C0 controls but tab, LF, CR;
U+FFFE, U+FFFF; lone surrogates), which a prompt may hold, are written as U+FFFD in every
format. Compressed text is inflated only when read, up to 1 MiB per chunk and 8 MiB per
file; embedding copies other chunks unchanged, unreadable ones too.

>>> import zlib
>>> png = bytes.fromhex("89504e470d0a1a0a") + _chunk(b"IHDR", bytes.fromhex(
...     "00000001000000010800000000")) + _chunk(b"IDAT", zlib.compress(bytes(2))) + _chunk(
...     b"IEND", b"")
>>> tagged = embed_metadata(png, "image/png", {"prompt": "a cat", "seed": "7"})
>>> read_metadata(tagged)
{'prompt': 'a cat', 'seed': '7'}
>>> read_metadata(embed_metadata(png, "image/png", {"prompt": "page\x0c1"})) == {
...     "prompt": "page\ufffd1"}
True
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

__all__ = ["XMP_NAMESPACE", "embed_metadata", "read_metadata"]

#: The XML namespace of the fields in an XMP packet.
XMP_NAMESPACE = "https://zimage-async.invalid/ns/generation/1.0/"

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
#: A field name: an XML name without a colon, and a PNG keyword (at most 79 bytes).
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,78}")
#: Characters XML 1.0 cannot carry (so neither can an XMP packet).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
#: How much text one compressed PNG chunk, and all of a file's, may inflate to.
_INFLATE_MAX = 1024 * 1024
_INFLATE_TOTAL_MAX = 8 * _INFLATE_MAX
#: The largest payload of a JPEG segment (its length field counts itself).
_JPEG_SEGMENT_MAX = 0xFFFF - 2
# VP8X flag bits.
_ALPHA = 0x10
_XMP = 0x04


def embed_metadata(data: bytes, content_type: str, fields: Mapping[str, str]) -> bytes:
    """Return *data* (a PNG, JPEG or WebP image) with *fields* embedded in it.

    Field names are letters, digits, ``_``, ``.`` and ``-``, starting with a letter or
    ``_``, at most 79 characters. Values are any text: a character no format can carry
    (a control character other than tab, newline and carriage return, U+FFFE, U+FFFF, a
    lone surrogate) is written as U+FFFD, which :func:`read_metadata` returns. A
    :class:`ValueError` says which rule a name breaks, or that *data* is not the
    *content_type* it is said to be (or its framing is broken).
    """
    for name in fields:
        if not _NAME.fullmatch(name):
            raise ValueError(
                f"metadata field name {name[:80]!r}: use 1 to 79 letters, digits, '_', '.' "
                "or '-', starting with a letter or '_'"
            )
    fields = {name: _NOT_XML.sub("\ufffd", value) for name, value in fields.items()}
    kind = _sniff(data)
    if kind != content_type.split(";")[0].strip().lower():
        raise ValueError(
            f"the image bytes are {kind or 'not PNG, JPEG or WebP'}, not {content_type}"
        )
    if kind == "image/png":
        return _png_embed(data, fields)
    if kind == "image/jpeg":
        return _jpeg_embed(data, fields)
    return _webp_embed(data, fields)


def read_metadata(data: bytes) -> dict[str, str]:
    """Return the metadata fields a PNG, JPEG or WebP image carries (empty if none).

    Raises :class:`ValueError` when *data* is none of these formats, its framing is
    broken, or its metadata cannot be read: a compressed text chunk that is not a zlib
    stream or inflates to more than 1 MiB (8 MiB for all of a file's), an XMP packet that
    is not well-formed XML, names an unknown encoding or declares a DOCTYPE. The message
    says which.
    """
    kind = _sniff(data)
    if kind == "image/png":
        return _png_read(data)
    if kind == "image/jpeg":
        packet = _jpeg_xmp(data)
    elif kind == "image/webp":
        packet = _webp_xmp(data)
    else:
        raise ValueError("not a PNG, JPEG or WebP image")
    return {} if packet is None else _xmp_read(packet)


def _sniff(data: bytes) -> str | None:
    if data.startswith(_PNG_SIGNATURE):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


# -- PNG ------------------------------------------------------------------------------------


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, bytes, int, int]]:
    """Yield (type, payload, start, end) of each chunk, ending with IEND."""
    offset = len(_PNG_SIGNATURE)
    while True:
        if offset + 8 > len(data):
            raise ValueError("the PNG ends before its IEND chunk")
        (length,) = struct.unpack_from(">I", data, offset)
        kind = data[offset + 4 : offset + 8]
        end = offset + 12 + length
        if end > len(data):
            raise ValueError(f"the PNG's {kind!r} chunk runs past the end of the file")
        yield kind, data[offset + 8 : offset + 8 + length], offset, end
        if kind == b"IEND":
            return
        offset = end


def _itxt(name: str, value: str) -> bytes:
    # keyword, NUL, compression flag 0, method 0, empty language tag and translated keyword.
    return _chunk(b"iTXt", name.encode("latin-1") + b"\x00\x00\x00\x00\x00" + value.encode())


def _keyword(payload: bytes) -> str | None:
    """Return a text chunk's keyword (nothing is inflated), or None if it has none."""
    keyword, sep, _ = payload.partition(b"\x00")
    return keyword.decode("latin-1") if sep else None


def _inflate(stream: bytes, method: bytes, what: str) -> bytes:
    """Decompress a text chunk's zlib *stream*, refusing more than :data:`_INFLATE_MAX`."""
    if method != b"\x00":
        raise ValueError(f"{what} uses an unknown compression method {method!r}")
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(stream, _INFLATE_MAX + 1)
    except zlib.error as exc:
        raise ValueError(f"{what} is not a valid zlib stream ({exc})") from None
    if len(text) > _INFLATE_MAX:
        raise ValueError(f"{what} inflates to more than 1 MiB; refused")
    if not inflater.eof:
        raise ValueError(f"{what} ends before its zlib stream does")
    return text


def _png_text(kind: bytes, payload: bytes, name: str) -> tuple[str, int]:
    """Return a text chunk's text, and how many bytes it inflated to."""
    rest = payload.partition(b"\x00")[2]
    what = f"the PNG's {kind.decode()} chunk {name!r}"
    if kind == b"tEXt":
        return rest.decode("latin-1"), 0
    if kind == b"zTXt":
        text = _inflate(rest[1:], rest[:1], what)
        return text.decode("latin-1"), len(text)
    flag, method, rest = rest[0:1], rest[1:2], rest[2:]
    _language, _, rest = rest.partition(b"\x00")
    _translated, _, text = rest.partition(b"\x00")
    if flag == b"\x01":
        text = _inflate(text, method, what)
        return text.decode("utf-8", "replace"), len(text)
    return text.decode("utf-8", "replace"), 0


def _png_embed(data: bytes, fields: Mapping[str, str]) -> bytes:
    parts = [_PNG_SIGNATURE]
    for kind, payload, start, end in _png_chunks(data):
        if kind == b"IEND":
            parts += [_itxt(name, value) for name, value in fields.items()]
        elif kind in (b"tEXt", b"zTXt", b"iTXt") and _keyword(payload) in fields:
            continue  # replaced by the new value
        parts.append(data[start:end])
    return b"".join(parts)


def _png_read(data: bytes) -> dict[str, str]:
    found, inflated = {}, 0
    for kind, payload, _, _ in _png_chunks(data):
        name = _keyword(payload) if kind in (b"tEXt", b"zTXt", b"iTXt") else None
        if name is None:
            continue
        found[name], size = _png_text(kind, payload, name)
        inflated += size
        if inflated > _INFLATE_TOTAL_MAX:
            raise ValueError("the PNG's compressed text inflates to more than 8 MiB; refused")
    return found


# -- XMP ------------------------------------------------------------------------------------


def _xml_text(value: str) -> str:
    escaped = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return escaped.replace("\r", "&#13;")  # a parser would turn a bare CR into LF


def _xmp_packet(fields: Mapping[str, str]) -> bytes:
    elements = "".join(
        f"<zimage:{name}>{_xml_text(value)}</zimage:{name}>" for name, value in fields.items()
    )
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        f'<rdf:RDF xmlns:rdf="{_RDF}">'
        f'<rdf:Description rdf:about="" xmlns:zimage="{XMP_NAMESPACE}">{elements}'
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    ).encode()


def _xmp_tree(packet: bytes) -> ET.Element:
    import xml.etree.ElementTree as ET  # only reading metadata needs it: not at import

    class Builder(ET.TreeBuilder):
        def doctype(self, name: str, pubid: str, system: str) -> None:
            raise ValueError("the XMP packet declares a DOCTYPE; refused")

    # No DTD (in any encoding), so no entities: what remains is plain element parsing.
    parser = ET.XMLParser(target=Builder())  # noqa: S314
    try:
        parser.feed(packet)
        return parser.close()
    except ET.ParseError as exc:
        raise ValueError(f"the XMP packet is not well-formed XML: {exc}") from None
    except LookupError as exc:  # an encoding Python does not know
        raise ValueError(f"the XMP packet cannot be decoded: {exc}") from None


def _xmp_read(packet: bytes) -> dict[str, str]:
    root = _xmp_tree(packet)
    found = {}
    prefix = f"{{{XMP_NAMESPACE}}}"
    for description in root.iter(f"{{{_RDF}}}Description"):
        for name, value in description.attrib.items():
            if name.startswith(prefix):
                found[name.removeprefix(prefix)] = value
        for element in description:
            if element.tag.startswith(prefix):
                found[element.tag.removeprefix(prefix)] = element.text or ""
    return found


# -- JPEG -----------------------------------------------------------------------------------


def _jpeg_segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """Yield (marker, start, end) of each header segment after SOI, up to SOS."""
    offset = 2
    while offset < len(data):
        if data[offset] != 0xFF:
            raise ValueError(f"the JPEG has no marker at byte {offset}")
        marker = data[offset + 1] if offset + 1 < len(data) else 0
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        if marker == 0xDA or marker == 0xD9:  # SOS or EOI: the header ends here
            return
        if offset + 4 > len(data):
            raise ValueError("the JPEG ends inside a segment header")
        (length,) = struct.unpack_from(">H", data, offset + 2)
        end = offset + 2 + length
        if length < 2 or end > len(data):
            raise ValueError(f"the JPEG segment at byte {offset} runs past the end")
        yield marker, offset, end
        offset = end


def _jpeg_embed(data: bytes, fields: Mapping[str, str]) -> bytes:
    payload = _XMP_HEADER + _xmp_packet(fields)
    if len(payload) > _JPEG_SEGMENT_MAX:
        raise ValueError(
            f"the metadata takes {len(payload)} bytes; a JPEG segment holds at most "
            f"{_JPEG_SEGMENT_MAX}"
        )
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    insert_at = 2
    drop = []
    for marker, start, end in _jpeg_segments(data):
        if marker == 0xE0 and start == 2:
            insert_at = end  # after the JFIF APP0
        if marker == 0xE1 and data[start + 4 : start + 4 + len(_XMP_HEADER)] == _XMP_HEADER:
            drop.append((start, end))
    parts, offset = [], 0
    for start, end in drop:
        parts.append(data[offset:start])
        offset = end
    parts.append(data[offset:])
    kept = b"".join(parts)
    return kept[:insert_at] + segment + kept[insert_at:]


def _jpeg_xmp(data: bytes) -> bytes | None:
    for marker, start, end in _jpeg_segments(data):
        body = data[start + 4 : end]
        if marker == 0xE1 and body.startswith(_XMP_HEADER):
            return body[len(_XMP_HEADER) :]
    return None


# -- WebP -----------------------------------------------------------------------------------


def _riff_chunk(kind: bytes, payload: bytes) -> bytes:
    pad = b"\x00" if len(payload) % 2 else b""
    return kind + struct.pack("<I", len(payload)) + payload + pad


def _webp_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    (size,) = struct.unpack_from("<I", data, 4)
    end = 8 + size
    if end > len(data) or size < 4:
        raise ValueError("the WebP's RIFF size runs past the end of the file")
    chunks, offset = [], 12
    while offset + 8 <= end:
        kind = data[offset : offset + 4]
        (length,) = struct.unpack_from("<I", data, offset + 4)
        if offset + 8 + length > end:
            raise ValueError(f"the WebP's {kind!r} chunk runs past the RIFF size")
        chunks.append((kind, data[offset + 8 : offset + 8 + length]))
        offset += 8 + length + (length % 2)
    return chunks


def _canvas(kind: bytes, payload: bytes) -> tuple[int, int, bool]:
    """Width, height and alpha of a simple WebP's bitstream."""
    if kind == b"VP8 ":
        if len(payload) < 10 or payload[3:6] != b"\x9d\x01\x2a":
            raise ValueError("the WebP's VP8 bitstream has no key frame header")
        width, height = (side & 0x3FFF for side in struct.unpack_from("<HH", payload, 6))
        if not width or not height:
            raise ValueError(f"the WebP's VP8 frame is {width}x{height} pixels")
        return width, height, False
    if kind == b"VP8L":
        if len(payload) < 5 or payload[0] != 0x2F:
            raise ValueError("the WebP's VP8L bitstream has no signature")
        (bits,) = struct.unpack_from("<I", payload, 1)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool((bits >> 28) & 1)
    raise ValueError(f"the WebP starts with a {kind!r} chunk, not VP8, VP8L or VP8X")


def _webp_embed(data: bytes, fields: Mapping[str, str]) -> bytes:
    chunks = [(kind, payload) for kind, payload in _webp_chunks(data) if kind != b"XMP "]
    if not chunks:
        raise ValueError("the WebP has no chunks")
    first_kind, first = chunks[0]
    if first_kind == b"VP8X":
        if len(first) < 10:
            raise ValueError(f"the WebP's VP8X chunk is {len(first)} bytes long, not 10")
        chunks[0] = (b"VP8X", bytes([first[0] | _XMP]) + first[1:])
    else:
        width, height, alpha = _canvas(first_kind, first)  # each side 1 to 16384
        canvas = (width - 1) | (height - 1) << 24  # two 24-bit fields
        header = bytes([_XMP | (_ALPHA if alpha else 0), 0, 0, 0]) + canvas.to_bytes(6, "little")
        chunks.insert(0, (b"VP8X", header))
    chunks.append((b"XMP ", _xmp_packet(fields)))
    body = b"WEBP" + b"".join(_riff_chunk(kind, payload) for kind, payload in chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _webp_xmp(data: bytes) -> bytes | None:
    for kind, payload in _webp_chunks(data):
        if kind == b"XMP ":
            return payload
    return None
