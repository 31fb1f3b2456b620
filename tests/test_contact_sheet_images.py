"""Contact sheets: images drawn as viewers show them, on a canvas of bounded size."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from PIL import Image as PILImage
from PIL import ImageOps

from zimage_async import _contact_sheet
from zimage_async._contact_sheet import make_contact_sheet

WHITE = (255, 255, 255)
RED = (255, 0, 0)
BLUE = (0, 0, 255)

#: The bounds make_contact_sheet documents: a sheet's side, the smallest thumbnail.
SIDE = 8192
SMALLEST = 32


def _near(pixel: object, colour: object, slack: int = 24) -> bool:
    """Whether *pixel* is *colour* give or take JPEG's rounding (both RGB tuples)."""
    assert isinstance(pixel, tuple) and isinstance(colour, tuple)
    return all(abs(a - b) <= slack for a, b in zip(pixel, colour, strict=True))


def _oriented_jpeg(path: Path, orientation: int) -> Path:
    """Write 200x100 pixels, left half red and right half blue, tagged with *orientation*."""
    image = PILImage.new("RGB", (200, 100), RED)
    image.paste(BLUE, (100, 0, 200, 100))
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(path, quality=95, exif=exif.tobytes())
    return path


def _one_cell(tmp_path: Path, image: Path) -> PILImage.Image:
    """Draw *image* alone in a 100-pixel cell with no gap; return the sheet, in RGB."""
    sheet = make_contact_sheet([image], tmp_path / "sheet.png", thumb_pixels=100, gap_pixels=0)
    with PILImage.open(sheet) as drawn:
        converted: PILImage.Image = drawn.convert("RGB")
        return converted


def _non_white_size(image: PILImage.Image) -> tuple[int, int]:
    """Width and height of the part of *image* that is not (near) white."""
    box = PILImage.eval(image, lambda v: 0 if v > 240 else 255).getbbox()
    assert box is not None
    return box[2] - box[0], box[3] - box[1]


@pytest.mark.parametrize(
    ("orientation", "shown"),
    [
        pytest.param(3, (100, 50), id="upside-down"),
        pytest.param(6, (50, 100), id="rotate-clockwise"),
        pytest.param(8, (50, 100), id="rotate-counter-clockwise"),
    ],
)
def test_an_image_is_drawn_the_way_its_exif_orientation_shows_it(
    tmp_path: Path, orientation: int, shown: tuple[int, int]
) -> None:
    """A camera's Orientation tag turns the thumbnail as a viewer turns the picture."""
    photo = _oriented_jpeg(tmp_path / "photo.jpg", orientation)
    with PILImage.open(photo) as opened:
        viewed = ImageOps.exif_transpose(opened)
    viewed.thumbnail((100, 100))
    sheet = _one_cell(tmp_path, photo)
    assert _non_white_size(sheet) == shown
    left, top = (100 - shown[0]) // 2, (100 - shown[1]) // 2
    for x, y in [(10, 10), (shown[0] - 10, shown[1] - 10)]:  # opposite corners differ
        assert _near(sheet.getpixel((left + x, top + y)), viewed.getpixel((x, y)))
    assert not _near(
        sheet.getpixel((left + 10, top + 10)), sheet.getpixel((99 - left - 10, 99 - top - 10))
    )


def _transparent(path: Path, mode: str) -> Path:
    """Write a 100x100 PNG in *mode* whose every pixel is fully transparent (black beneath)."""
    if mode == "RGBA":
        PILImage.new("RGBA", (100, 100), (0, 0, 0, 0)).save(path)
    elif mode == "LA":
        PILImage.new("LA", (100, 100), (0, 0)).save(path)
    elif mode == "P":
        PILImage.new("P", (100, 100), 0).save(path, transparency=0)
    else:  # RGB with a transparent colour (a tRNS chunk)
        PILImage.new("RGB", (100, 100), (0, 0, 0)).save(path, transparency=(0, 0, 0))
    return path


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "RGB"])
def test_transparent_pixels_show_the_sheets_white(tmp_path: Path, mode: str) -> None:
    """Transparent pixels are white on the sheet, never the black stored beneath them."""
    sheet = _one_cell(tmp_path, _transparent(tmp_path / "clear.png", mode))
    assert sheet.getpixel((50, 50)) == WHITE
    assert sheet.getcolors() == [(100 * 100, WHITE)]


def test_half_transparent_pixels_are_blended_with_white(tmp_path: Path) -> None:
    """A pixel half transparent is drawn half its colour, half the sheet's white."""
    image = tmp_path / "half.png"
    PILImage.new("RGBA", (100, 100), (255, 0, 0, 128)).save(image)
    assert _near(_one_cell(tmp_path, image).getpixel((50, 50)), (255, 127, 127), slack=2)


def _tiny(path: Path, colour: tuple[int, int, int]) -> Path:
    PILImage.new("RGB", (64, 64), colour).save(path)
    return path


@pytest.mark.parametrize("suffix", [".png", ".webp"])
def test_a_long_grid_shrinks_its_thumbnails_to_stay_within_max_side(
    tmp_path: Path, suffix: str
) -> None:
    """70 images in one column at 256 pixels would be 18,488 tall: the cells shrink instead.

    That height is past WebP's own limit (16,383) too: the WebP sheet is written.
    """
    image = _tiny(tmp_path / "one.png", RED)
    sheet = make_contact_sheet([image] * 70, tmp_path / f"sheet{suffix}", columns=1)
    with PILImage.open(sheet) as drawn:
        assert drawn.height <= SIDE
        assert drawn.width <= SIDE
        last_cell = drawn.convert("RGB").crop(
            (0, drawn.height - drawn.width, drawn.width, drawn.height)
        )
    assert _near(last_cell.getpixel((drawn.width // 2, drawn.width // 2)), RED)


def test_a_grid_too_big_at_the_smallest_thumbnail_draws_the_first_images_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Past what fits at MIN_THUMB_PIXELS, the first images are drawn; the rest are counted."""
    fits = (SIDE - 8) // (SMALLEST + 8)
    red, blue = _tiny(tmp_path / "red.png", RED), _tiny(tmp_path / "blue.png", BLUE)
    images = [red] * fits + [blue] * 10
    with caplog.at_level(logging.WARNING, logger="zimage_async"):
        sheet = make_contact_sheet(images, tmp_path / "sheet.png", columns=1)
    with PILImage.open(sheet) as drawn:
        assert drawn.height <= SIDE
        colours = {colour for _, colour in drawn.getcolors()}
    assert colours == {WHITE, RED}  # none of the blue images after the first that fit
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert f"the first {fits} of {fits + 10}" in record.getMessage()


def test_columns_wider_than_the_sheet_wrap_into_more_rows(tmp_path: Path) -> None:
    """A grid asked wider than fits at the smallest thumbnail wraps: every image is drawn."""
    fits = (SIDE - 8) // (SMALLEST + 8)
    image = _tiny(tmp_path / "one.png", RED)
    sheet = make_contact_sheet([image] * (fits + 5), tmp_path / "sheet.png", columns=fits + 5)
    with PILImage.open(sheet) as drawn:
        assert drawn.width <= SIDE
        assert drawn.height == 2 * (SMALLEST + 8) + 8
        second_row = 8 + 40 + 16
        assert drawn.getpixel((8 + 4 * 40 + 16, second_row)) == RED  # the 5 that wrapped
        assert drawn.getpixel((8 + 5 * 40 + 16, second_row)) == WHITE


def test_a_gap_leaving_no_room_for_a_thumbnail_is_a_value_error(tmp_path: Path) -> None:
    """A gap so wide that not one cell fits in MAX_SIDE: ValueError before any canvas."""
    image = _tiny(tmp_path / "one.png", RED)
    with pytest.raises(ValueError, match="gap_pixels"):
        make_contact_sheet(
            [image] * 2, tmp_path / "sheet.png", columns=1, gap_pixels=4100, thumb_pixels=8
        )
    assert not (tmp_path / "sheet.png").exists()


def test_the_bounds_are_the_documented_ones() -> None:
    """MAX_SIDE fits every sheet format (WebP's limit is 16,383); the docstring names both."""
    assert (_contact_sheet.MAX_SIDE, _contact_sheet.MIN_THUMB_PIXELS) == (SIDE, SMALLEST)
    doc = make_contact_sheet.__doc__ or ""
    assert ":data:`MAX_SIDE`" in doc and ":data:`MIN_THUMB_PIXELS`" in doc


def test_an_image_whose_orientation_cannot_be_read_is_drawn_as_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault reading the EXIF orientation (pixels decoded fine) draws the image unturned."""

    def broken(image: PILImage.Image) -> PILImage.Image:
        raise SyntaxError("broken EXIF block")

    monkeypatch.setattr(ImageOps, "exif_transpose", broken)
    skipped: list[Path] = []
    photo = _oriented_jpeg(tmp_path / "photo.jpg", 6)
    sheet = make_contact_sheet(
        [photo],
        tmp_path / "sheet.png",
        thumb_pixels=100,
        gap_pixels=0,
        on_skip=lambda path, why: skipped.append(path),
    )
    assert skipped == []
    with PILImage.open(sheet) as drawn:
        assert _non_white_size(drawn.convert("RGB")) == (100, 50)
