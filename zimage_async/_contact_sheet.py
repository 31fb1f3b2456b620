"""Contact sheets: a grid of thumbnails of a batch's images, drawn with Pillow."""

from __future__ import annotations

import logging
import math
import os
import re
import string
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ._naming import names_index
from ._saving import publish_mode

__all__ = ["MAX_PIXELS", "MAX_SIDE", "MIN_THUMB_PIXELS", "make_contact_sheet", "sheet_clash"]

logger = logging.getLogger("zimage_async.contact_sheet")

_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}

#: The most pixels an image may declare to be drawn on a sheet (about 7000 x 7000): far
#: above any generated image, far below what it would take to decode a decompression
#: bomb. Checked from the header, before a single pixel is decoded.
MAX_PIXELS = 48_000_000

#: The most pixels a sheet has on either side: its RGB canvas stays under 200 MB, however
#: many images a batch saved, and within every format's limit (WebP's is 16,383).
MAX_SIDE = 8192

#: The smallest side thumbnails shrink to, to keep a sheet within :data:`MAX_SIDE`:
#: smaller, an image is no longer recognisable, so fewer images are drawn instead.
MIN_THUMB_PIXELS = 32


#: What each field of a name template can give, unformatted (an unknown seed: "random").
_FIELD_PATTERNS = {
    "number": r"\d+",
    "index": r"\d+",
    "seed": r"(?:\d+|random)",
    "slug": r"[a-z0-9-]+",
    "task_id": r"[\w.-]+",
}


def _name_pattern(template: str) -> re.Pattern[str]:
    """Return a pattern of every file stem *template* can give (any field with a spec: any)."""
    parts = []
    for literal, field, spec, conversion in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if field is not None:
            parts.append(".+" if spec or conversion else _FIELD_PATTERNS.get(field, ".+"))
    several = "" if names_index(template) else r"(?:-\d+)?"  # save() adds -N to several
    return re.compile("".join(parts) + several)


def sheet_clash(
    sheet: Path, *, keep: Iterable[tuple[str, Path]], folder: Path, template: str
) -> str | None:
    """Return why writing the sheet *sheet* would replace a file a batch needs, or None.

    *keep* names files by what they are (the journal, the prompt file, saved images);
    an image name *template* can give in *folder* (with an image suffix) counts too.
    """
    target = sheet.resolve()
    for what, path in keep:
        if path.resolve() == target:
            return f"it is {what}"
    if target.parent != folder.resolve() or target.suffix.lower() not in _FORMATS:
        return None
    try:
        given = _name_pattern(template).fullmatch(target.stem)
    except ValueError:
        return None
    return None if given is None else f"the batch's images in {folder} may get that name"


def _thumbnail(path: Path, size: int) -> Any:
    """Return *path* scaled to fit a *size* square, in RGB; raise if it cannot be read.

    The thumbnail is turned as its EXIF orientation says (as viewers show it), and
    transparent pixels are laid on white, the sheet's background (RGB alone would show
    the colour stored beneath them, often black).
    """
    from PIL import Image as PILImage

    with warnings.catch_warnings():
        # Pillow's own bomb limits are above MAX_PIXELS: its warning cannot come before
        # the check below (its error can, from open(): the image is skipped alike).
        warnings.simplefilter("ignore")
        with PILImage.open(path) as image:  # reads the header only
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ValueError(f"{width}x{height} is more than {MAX_PIXELS} pixels")
            image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale
            image.thumbnail((size, size))  # a square: still fits once turned
            thumb = _upright(image)
            if not thumb.has_transparency_data:
                return thumb.convert("RGB")
            white = PILImage.new("RGBA", thumb.size, "white")
            return PILImage.alpha_composite(white, thumb.convert("RGBA")).convert("RGB")


def _upright(image: Any) -> Any:
    """Return *image* turned as its EXIF orientation says, or as stored if that is unreadable.

    Its pixels are decoded by now: a fault here is in the metadata alone, and an image
    drawn unturned is better than one left out.
    """
    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # Pillow's EXIF parser raises many kinds on a broken block
        return image


def _grid(count: int, columns: int | None, thumb: int, gap: int) -> tuple[int, int, int]:
    """Return the columns, rows and thumbnail side of a sheet of *count* images.

    The thumbnail shrinks from *thumb* until the sheet is within :data:`MAX_SIDE`, but not
    below :data:`MIN_THUMB_PIXELS` (or *thumb*, if smaller); at that size the grid keeps
    as many columns and rows as fit, so it may hold fewer than *count* cells.
    """
    cols = max(1, min(columns or math.ceil(math.sqrt(count)), count))
    rows = math.ceil(count / cols)
    room = MAX_SIDE - gap  # each cell takes its thumbnail and the gap after it
    smallest = min(thumb, MIN_THUMB_PIXELS)
    fits = room // (smallest + gap)
    if fits < 1:
        raise ValueError(
            f"gap_pixels={gap} leaves no room for a thumbnail in a sheet {MAX_SIDE} pixels wide"
        )
    side = max(smallest, min(thumb, room // max(cols, rows) - gap))
    if side == smallest and max(cols, rows) > fits:
        cols = min(cols, fits)
        rows = min(math.ceil(count / cols), fits)
    return cols, rows, side


def make_contact_sheet(
    images: Sequence[Path],
    dest: Path,
    *,
    thumb_pixels: int = 256,
    columns: int | None = None,
    gap_pixels: int = 8,
    on_skip: Callable[[Path, str], None] | None = None,
    stop: threading.Event | None = None,
) -> Path:
    """Write a grid of thumbnails of *images* (in order) to *dest*, atomically.

    Each image is scaled to fit a *thumb_pixels* square, keeping its aspect ratio, turned
    as its EXIF orientation says, its transparent pixels white. *columns* defaults to a
    near-square grid. The format follows *dest*'s suffix (``.png``, ``.jpg``,
    ``.webp``). Needs Pillow (the ``cli`` extra).

    The sheet is at most :data:`MAX_SIDE` pixels on either side, whatever the number of
    images (its canvas is allocated whole, before any image is drawn): thumbnails
    shrink to fit, down to :data:`MIN_THUMB_PIXELS`. When even that is too big, only the
    first images that fit are drawn (*columns* too many are wrapped into rows), and a
    warning on the ``zimage_async.contact_sheet`` logger says how many.

    An image that declares more than :data:`MAX_PIXELS` pixels is not decoded, and one
    that cannot be read (not an image, cut short, broken) is not drawn: either leaves
    its cell empty and is passed to *on_skip* with the reason (without *on_skip*, the
    error is raised). Raises :class:`ValueError` when no image at all can be drawn,
    or when *thumb_pixels* is not positive or *gap_pixels* is negative or leaves no room.
    A *stop* event set meanwhile (the command was interrupted) ends it before the next
    image or the writing, with :class:`InterruptedError`, nothing written.
    """
    from PIL import Image as PILImage  # the optional dependency, imported when used

    if not images:
        raise ValueError("a contact sheet needs at least one image")
    fmt = _FORMATS.get(dest.suffix.lower())
    if fmt is None:
        raise ValueError(f"a contact sheet is written as .png, .jpg or .webp, not {dest.name!r}")
    if thumb_pixels < 1 or gap_pixels < 0:
        raise ValueError(f"thumb_pixels={thumb_pixels} and gap_pixels={gap_pixels} draw no grid")
    cols, rows, thumb = _grid(len(images), columns, thumb_pixels, gap_pixels)
    if cols * rows < len(images):
        logger.warning(
            "the contact sheet has room for the first %d of %d images (%d-pixel thumbnails "
            "in at most %d pixels a side): the rest are not drawn",
            cols * rows,
            len(images),
            thumb,
            MAX_SIDE,
        )
    cell = thumb + gap_pixels
    sheet = PILImage.new("RGB", (cols * cell + gap_pixels, rows * cell + gap_pixels), "white")
    drawn = 0
    for n, path in enumerate(images[: cols * rows]):
        _check_stop(stop)
        try:
            image = _thumbnail(path, thumb)
        except Exception as exc:  # Pillow's decoders raise many kinds: any is unreadable
            if on_skip is None:
                raise
            on_skip(path, str(exc) or type(exc).__name__)
            continue
        x = gap_pixels + (n % cols) * cell + (thumb - image.width) // 2
        y = gap_pixels + (n // cols) * cell + (thumb - image.height) // 2
        sheet.paste(image, (x, y))
        drawn += 1
    if not drawn:
        raise ValueError(f"none of the {len(images)} image(s) could be drawn")
    _check_stop(stop)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=dest.parent, prefix=".zimage-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as file:
            publish_mode(Path(temp_name))
            sheet.save(file, format=fmt)
        os.replace(temp_name, dest)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return dest


def _check_stop(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise InterruptedError("the contact sheet was stopped; nothing was written")
