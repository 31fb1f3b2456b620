"""The pictures the image origin serves: rendering, encoding, padding and a small cache.

Bytes depend only on (prompt, seed, width, height, format, padding, renderer), so a task
always serves the same bytes and two emulators agree. With Pillow installed (the
``images`` extra) an image has a background colour and a pattern derived from a hash of
the prompt and seed, and the prompt written on it in the default font, so a person can
tell images apart. Without Pillow, a PNG with colour bands and stripes from the same hash
is encoded with the standard library; JPEG and WebP need Pillow.

``padding_bytes`` makes big files cheaply: PNGs get a private ancillary ``zeMu`` chunk of
that many bytes before ``IEND``, JPEGs get comment (``COM``) segments after ``SOI``; both
stay valid images. WebP cannot be padded.

Rendering runs in the default thread executor, and rendered files are kept in a small LRU
cache, so serving a 1024x1024 image many times costs one render.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import io
import re
import struct
import textwrap
from typing import Literal

import attrs

from ._numbers import is_int, shown
from ._png import PADDING_CHUNK_TYPE, chunk, encode_rgb, insert_before_iend

__all__ = [
    "CONTENT_TYPES",
    "ImageCache",
    "ImageFormat",
    "ImageSpec",
    "Renderer",
    "check_renderer",
    "pillow_available",
    "render",
]

ImageFormat = Literal["png", "jpeg", "webp"]
Renderer = Literal["auto", "pillow", "plain"]

CONTENT_TYPES: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
_JPEG_COMMENT_BYTES = 65_533
_DEFAULT_CACHE_ENTRIES = 16
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def pillow_available() -> bool:
    """Tell whether Pillow can be imported."""
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        return False
    return True


def _webp_available() -> bool:
    from PIL import features

    return bool(features.check("webp"))


def check_renderer(image_format: str, renderer: str, padding_bytes: int) -> Renderer:
    """Resolve *renderer* to ``"pillow"`` or ``"plain"``, or raise if the combination cannot work.

    Raises ``ValueError`` for unknown names, a padding that is not an int from 0 to 2**31-1
    or padding a WebP, and ``RuntimeError`` when the format needs Pillow and it is not
    installed.
    """
    if not isinstance(image_format, str) or image_format not in CONTENT_TYPES:
        raise ValueError(
            f"image_format must be 'png', 'jpeg' or 'webp', got {shown(image_format)}."
        )
    if renderer not in ("auto", "pillow", "plain"):
        raise ValueError(
            f"image_renderer must be 'auto', 'pillow' or 'plain', got {shown(renderer)}."
        )
    if not (is_int(padding_bytes) and 0 <= padding_bytes <= 2**31 - 1):
        raise ValueError(
            f"image_padding_bytes must be an int from 0 to 2**31-1, got {shown(padding_bytes)}."
        )
    if padding_bytes and image_format == "webp":
        raise ValueError("image_padding_bytes works with 'png' and 'jpeg' images, not 'webp'.")
    has_pillow = pillow_available()
    if renderer == "auto":
        renderer = "pillow" if has_pillow else "plain"
    if renderer == "pillow" and not has_pillow:
        raise RuntimeError(
            "The emulator needs Pillow to draw images: pip install '.[images]' in a clone of "
            "the repository ('zimage-async[images]' once it is published), or pip install "
            "Pillow."
        )
    if image_format != "png" and renderer == "plain":
        raise RuntimeError(
            f"image_format={image_format!r} needs Pillow (pip install '.[images]' in a clone, "
            "or pip install Pillow); "
            "without it the emulator can only make PNG images."
        )
    if image_format == "webp" and not _webp_available():
        raise RuntimeError("image_format='webp' needs a Pillow built with WebP support.")
    return "pillow" if renderer == "pillow" else "plain"


@attrs.frozen(kw_only=True)
class ImageSpec:
    """Everything that determines an image's bytes."""

    prompt: str
    seed: int
    width_pixels: int
    height_pixels: int
    image_format: ImageFormat
    padding_bytes: int = 0
    renderer: Literal["pillow", "plain"] = "plain"

    def digest(self) -> bytes:
        """Return the hash the colours and the pattern are drawn from.

        A lone surrogate in the prompt is hashed as its code point (``surrogatepass``)
        rather than raising: the API refuses such prompts, but the image code should not
        depend on that to stay up.
        """
        text = f"{self.seed}\n{self.prompt}"
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()

    def caption(self) -> str:
        """Return the prompt as it is drawn: each lone surrogate as U+FFFD."""
        return _LONE_SURROGATE.sub("\ufffd", self.prompt)


def _colour(digest: bytes, offset: int) -> tuple[int, int, int]:
    return digest[offset], digest[offset + 1], digest[offset + 2]


def _render_plain(spec: ImageSpec) -> bytes:
    width, height, digest = spec.width_pixels, spec.height_pixels, spec.digest()
    colours = [_colour(digest, offset) for offset in (0, 3, 6, 9)]
    stripe = 8 + digest[12] % 56
    band = 16 + digest[13] % 112

    def row(first: tuple[int, int, int], second: tuple[int, int, int]) -> bytes:
        pixels = bytearray()
        for x in range(width):
            pixels.extend(first if (x // stripe) % 2 == 0 else second)
        return bytes(pixels)

    rows = (row(colours[0], colours[1]), row(colours[2], colours[3]))
    return encode_rgb(width, height, (rows[(y // band) % 2] for y in range(height)))


def _render_pillow(spec: ImageSpec) -> bytes:
    from PIL import Image, ImageDraw, ImageFont

    width, height, digest = spec.width_pixels, spec.height_pixels, spec.digest()
    image = Image.new("RGB", (width, height), _colour(digest, 0))
    draw = ImageDraw.Draw(image)
    accent = _colour(digest, 3)
    line_pixels = max(2, min(width, height) // 128)
    for shape in range(8):
        x = digest[6 + shape] * width // 256
        y = digest[14 + shape] * height // 256
        radius = (32 + digest[22 + shape % 8]) * min(width, height) // 512
        draw.ellipse(
            (x - radius, y - radius, x + radius, y + radius), outline=accent, width=line_pixels
        )
    step = max(24, width // (4 + digest[30] % 12))
    for x in range(-height, width, step):
        draw.line((x, 0, x + height, height), fill=_colour(digest, 29), width=1)
    font_pixels = max(14, width // 30)
    font = ImageFont.load_default(size=font_pixels)
    chars_per_line = max(10, int(width * 0.8 / (font_pixels * 0.55)))
    max_lines = max(1, int(height * 0.6 / (font_pixels * 1.25)))
    lines = textwrap.wrap(spec.caption(), width=chars_per_line)[:max_lines] or [""]
    lines.append(f"seed {spec.seed} · {width}x{height}")
    text = "\n".join(lines)
    margin = font_pixels
    spacing = font_pixels // 4
    box = draw.multiline_textbbox((margin * 2, margin * 2), text, font=font, spacing=spacing)
    draw.rectangle(
        (box[0] - margin, box[1] - margin, box[2] + margin, box[3] + margin), fill=(255, 255, 255)
    )
    draw.multiline_text((margin * 2, margin * 2), text, font=font, fill=(0, 0, 0), spacing=spacing)
    buffer = io.BytesIO()
    if spec.image_format == "png":
        image.save(buffer, format="PNG")
    elif spec.image_format == "jpeg":
        image.save(buffer, format="JPEG", quality=85)
    else:
        image.save(buffer, format="WEBP", quality=80)
    return buffer.getvalue()


def _pad(data: bytes, spec: ImageSpec) -> bytes:
    if not spec.padding_bytes:
        return data
    if spec.image_format == "png":
        return insert_before_iend(data, chunk(PADDING_CHUNK_TYPE, bytes(spec.padding_bytes)))
    segments = bytearray()
    remaining = spec.padding_bytes
    while remaining > 0:
        size = min(remaining, _JPEG_COMMENT_BYTES)
        segments += b"\xff\xfe" + struct.pack(">H", size + 2) + bytes(size)
        remaining -= size
    return data[:2] + bytes(segments) + data[2:]


def render(spec: ImageSpec) -> bytes:
    """Render and encode one image (blocking; run it in an executor)."""
    data = _render_pillow(spec) if spec.renderer == "pillow" else _render_plain(spec)
    return _pad(data, spec)


class ImageCache:
    """Renders images in the thread executor and keeps the last few in memory."""

    def __init__(self, *, max_entries: int = _DEFAULT_CACHE_ENTRIES) -> None:
        self._max_entries = max_entries
        self._entries: collections.OrderedDict[ImageSpec, asyncio.Future[bytes]] = (
            collections.OrderedDict()
        )

    async def get(self, spec: ImageSpec) -> bytes:
        """Return the bytes of *spec*, rendering them at most once while cached."""
        future = self._entries.get(spec)
        if future is None:
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(None, render, spec)
            self._entries[spec] = future
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(spec)
        try:
            return await asyncio.shield(future)
        except Exception:
            if self._entries.get(spec) is future:
                del self._entries[spec]
            raise

    async def drain(self) -> None:
        """Wait for renders still running in the executor (used on shutdown)."""
        running = [future for future in self._entries.values() if not future.done()]
        await asyncio.gather(*running, return_exceptions=True)
        self._entries.clear()
