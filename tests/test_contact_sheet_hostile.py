"""Contact sheets: an image too large or unreadable is skipped, named, never fatal."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image as PILImage

from zimage_async import _contact_sheet
from zimage_async._contact_sheet import make_contact_sheet
from zimage_async.emulator import Emulator

from .test_cli_tasks import zimage


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _declared_png(path: Path, width: int, height: int) -> Path:
    """Write a small PNG whose header declares *width* x *height* grey pixels.

    Only a few rows of pixel data follow (a decoder gives up, or fills in, after them),
    so the file stays a few kilobytes whatever it declares.
    """
    rows = zlib.compress(b"\x00" * (width + 1) * 4, 9)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", rows)
        + _chunk(b"IEND", b"")
    )
    return path


def _good(path: Path, colour: str = "red") -> Path:
    PILImage.new("RGB", (64, 48), colour).save(path)
    return path


def _draw(tmp_path: Path, images: list[Path]) -> tuple[Path, list[tuple[Path, str]]]:
    """Draw *images* into ``sheet.png`` in 32-pixel cells; return it and the skips, with why."""
    skipped: list[tuple[Path, str]] = []
    sheet = make_contact_sheet(
        images,
        tmp_path / "sheet.png",
        thumb_pixels=32,
        on_skip=lambda path, why: skipped.append((path, why)),
    )
    return sheet, skipped


async def _saved_batch(emulator: Emulator, tmp_path: Path, prompts_text: str) -> tuple[Path, Path]:
    """Run `zimage batch` on *prompts_text* into ``out``; return the prompts file and ``out``."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(prompts_text)
    out = tmp_path / "out"
    status, _, stderr = await zimage(emulator, "batch", prompts, "-o", out)
    assert status == 0, stderr
    return prompts, out


async def _batch_again_with_a_sheet(
    emulator: Emulator, prompts: Path, out: Path, *options: str | Path
) -> tuple[str, str]:
    """Run the same batch again with ``--contact-sheet``; it ends well: its stdout, stderr."""
    status, stdout, stderr = await zimage(
        emulator, "batch", prompts, "-o", out, "--contact-sheet", *options
    )
    assert status == 0, stderr
    assert "Traceback" not in stderr
    return stdout, stderr


@pytest.mark.parametrize(
    "side",
    [
        pytest.param(14_000, id="over-pillows-bomb-limit"),
        pytest.param(10_000, id="between-pillows-warning-and-its-error"),
        pytest.param(8_000, id="under-pillows-warning-over-the-cap"),
    ],
)
def test_an_image_declaring_too_many_pixels_is_skipped_before_decoding(
    tmp_path: Path, side: int
) -> None:
    """The declared size is checked first: the image is skipped and named, the rest drawn."""
    assert side * side > _contact_sheet.MAX_PIXELS
    bomb = _declared_png(tmp_path / "bomb.png", side, side)
    assert bomb.stat().st_size < 64 * 1024
    images = [_good(tmp_path / "a.png"), bomb, _good(tmp_path / "b.png", "blue")]
    sheet, skipped = _draw(tmp_path, images)
    assert [path for path, _ in skipped] == [bomb]
    assert "pixels" in skipped[0][1]
    with PILImage.open(sheet) as drawn:
        # Three cells in a 2x2 grid; the bomb's cell is left white, the others drawn.
        assert drawn.getpixel((8 + 16, 8 + 16)) == (255, 0, 0)
        assert drawn.getpixel((8 + 40 + 16, 8 + 16)) == (255, 255, 255)
        assert drawn.getpixel((8 + 16, 8 + 40 + 16)) == (0, 0, 255)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"not an image at all", id="garbage"),
        pytest.param(b"", id="empty"),
        pytest.param(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, id="broken-png"),
    ],
)
def test_an_unreadable_image_is_skipped(tmp_path: Path, content: bytes) -> None:
    """A file Pillow cannot read is skipped with why; the sheet has the others."""
    broken = tmp_path / "broken.png"
    broken.write_bytes(content)
    sheet, skipped = _draw(tmp_path, [broken, _good(tmp_path / "a.png")])
    assert [path for path, _ in skipped] == [broken]
    assert sheet.is_file()


def test_a_truncated_image_is_skipped(tmp_path: Path) -> None:
    """An image cut short in its pixel data fails at decoding: skipped too."""
    whole = _good(tmp_path / "whole.png")
    PILImage.effect_noise((200, 200), 64).save(whole)
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    _, skipped = _draw(tmp_path, [cut, _good(tmp_path / "a.png")])
    assert [path for path, _ in skipped] == [cut]


def test_nothing_readable_is_a_value_error(tmp_path: Path) -> None:
    """When every image is skipped there is no sheet to draw: ValueError, nothing written."""
    bomb = _declared_png(tmp_path / "bomb.png", 14_000, 14_000)
    with pytest.raises(ValueError, match="none of the 1 image"):
        make_contact_sheet([bomb], tmp_path / "sheet.png", on_skip=lambda path, why: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.png"]


async def test_batch_keeps_its_summary_when_an_image_is_a_bomb(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A saved image replaced by a bomb: the batch names it, draws the rest, sums up."""
    prompts, out = await _saved_batch(emulator, tmp_path, "a cat\na dog\na fox\n")
    images = sorted(out.glob("*.png"))
    assert len(images) == 3
    _declared_png(images[1], 14_000, 14_000)  # as if the file had been swapped since
    images[2].write_bytes(b"not an image")
    sheet = tmp_path / "sheet.png"
    stdout, stderr = await _batch_again_with_a_sheet(emulator, prompts, out, sheet, "--json")
    summary = json.loads(stdout.splitlines()[-1])
    assert summary["saved"] == 3
    assert summary["contact_sheet"] == str(sheet)
    assert f"{images[1]}" in stderr and f"{images[2]}" in stderr
    assert sheet.is_file()
    assert len(emulator.ledger) == 3  # the second run paid for nothing


async def test_batch_keeps_its_summary_when_no_image_can_be_drawn(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Every saved image unreadable: no sheet, said so, the summary and exit status kept."""
    prompts, out = await _saved_batch(emulator, tmp_path, "a cat\n")
    (image,) = out.glob("*.png")
    _declared_png(image, 14_000, 14_000)
    sheet = tmp_path / "sheet.png"
    stdout, stderr = await _batch_again_with_a_sheet(emulator, prompts, out, sheet)
    assert "1 item(s): 1 saved, 0 failed" in stdout
    assert "no contact sheet was written" in stderr
    assert not sheet.exists()
