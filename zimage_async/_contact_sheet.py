"""Contact sheets: a grid of thumbnails of a batch's images, drawn with Pillow."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ._saving import publish_mode

__all__ = ["make_contact_sheet"]

_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def make_contact_sheet(
    images: Sequence[Path],
    dest: Path,
    *,
    thumb_pixels: int = 256,
    columns: int | None = None,
    gap_pixels: int = 8,
) -> Path:
    """Write a grid of thumbnails of *images* (in order) to *dest*, atomically.

    Each image is scaled to fit a *thumb_pixels* square, keeping its aspect ratio.
    *columns* defaults to a near-square grid. The format follows *dest*'s suffix
    (``.png``, ``.jpg``, ``.webp``). Needs Pillow (the ``cli`` extra).
    """
    from PIL import Image as PILImage  # the optional dependency, imported when used

    if not images:
        raise ValueError("a contact sheet needs at least one image")
    fmt = _FORMATS.get(dest.suffix.lower())
    if fmt is None:
        raise ValueError(f"a contact sheet is written as .png, .jpg or .webp, not {dest.name!r}")
    cols = columns or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    cell = thumb_pixels + gap_pixels
    sheet = PILImage.new("RGB", (cols * cell + gap_pixels, rows * cell + gap_pixels), "white")
    for n, path in enumerate(images):
        with PILImage.open(path) as image:
            image.thumbnail((thumb_pixels, thumb_pixels))
            x = gap_pixels + (n % cols) * cell + (thumb_pixels - image.width) // 2
            y = gap_pixels + (n // cols) * cell + (thumb_pixels - image.height) // 2
            sheet.paste(image.convert("RGB"), (x, y))
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
