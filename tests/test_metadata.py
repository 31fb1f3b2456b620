"""Generation metadata in PNG, JPEG and WebP files: embedded, read back, pixels unchanged."""

from __future__ import annotations

import functools
import io
import json
import os
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage

from zimage_async._metadata import embed_metadata, read_metadata

DOCS = Path(__file__).parent.parent / "docs" / "cli.md"

FIELDS = {
    "prompt": "a cat on a mat, «très» 猫 🐈",
    "seed": "7",
    "size": "16:9",
    "model": "z-image-turbo",
    "task_id": "task-unified-1-abc",
}


@functools.cache
def _image(kind: str) -> tuple[bytes, str]:
    """A small noisy image saved by Pillow in one of the layouts a file can have."""
    mode = "RGBA" if kind.endswith("alpha") else "RGB"
    image = PILImage.frombytes(
        mode, (37, 23), bytes((i * 7919) % 251 for i in range(37 * 23 * len(mode)))
    )
    buffer = io.BytesIO()
    layouts: dict[str, dict[str, object]] = {
        "png": {"format": "PNG"},
        "png-alpha": {"format": "PNG"},
        "jpeg": {"format": "JPEG", "quality": 90},
        "webp-lossy": {"format": "WEBP", "quality": 80},
        "webp-lossless": {"format": "WEBP", "lossless": True},
        "webp-lossy-alpha": {"format": "WEBP", "quality": 80},
        "webp-lossless-alpha": {"format": "WEBP", "lossless": True},
    }
    image.save(buffer, **layouts[kind])  # type: ignore[arg-type]
    content_type = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
    return buffer.getvalue(), content_type[kind.split("-")[0]]


KINDS = [
    "png",
    "png-alpha",
    "jpeg",
    "webp-lossy",
    "webp-lossless",
    "webp-lossy-alpha",
    "webp-lossless-alpha",
]


def _pixels(data: bytes) -> tuple[str, tuple[int, int], bytes]:
    with PILImage.open(io.BytesIO(data)) as image:
        image.load()
        return image.mode, image.size, image.tobytes()


@pytest.mark.parametrize("kind", KINDS)
def test_fields_read_back_and_pixels_are_unchanged(kind: str) -> None:
    """Each layout carries the fields, and decodes to exactly the same pixels."""
    data, content_type = _image(kind)
    tagged = embed_metadata(data, content_type, FIELDS)
    assert read_metadata(tagged) == FIELDS
    assert _pixels(tagged) == _pixels(data)


@pytest.mark.parametrize("kind", ["webp-lossy", "webp-lossless", "webp-lossless-alpha"])
def test_a_simple_webp_becomes_extended_with_its_canvas(kind: str) -> None:
    """A VP8/VP8L file gains a VP8X header with the XMP flag and the canvas size."""
    data, _ = _image(kind)
    assert data[12:16] in (b"VP8 ", b"VP8L")
    tagged = embed_metadata(data, "image/webp", FIELDS)
    assert tagged[12:16] == b"VP8X"
    flags = tagged[20]
    width = int.from_bytes(tagged[24:27], "little") + 1
    height = int.from_bytes(tagged[27:30], "little") + 1
    assert (flags & 0x04, width, height) == (0x04, 37, 23)
    assert int.from_bytes(tagged[4:8], "little") == len(tagged) - 8
    assert bool(flags & 0x10) == kind.endswith("alpha")


def test_png_chunks_have_correct_crcs_and_end_with_iend() -> None:
    """Every chunk's CRC matches, and the iTXt chunks come before IEND."""
    data, _ = _image("png")
    tagged = embed_metadata(data, "image/png", FIELDS)
    offset, kinds = 8, []
    while offset < len(tagged):
        length = int.from_bytes(tagged[offset : offset + 4], "big")
        kind = tagged[offset + 4 : offset + 8]
        body = tagged[offset + 8 : offset + 8 + length]
        crc = int.from_bytes(tagged[offset + 8 + length : offset + 12 + length], "big")
        assert zlib.crc32(kind + body) == crc
        kinds.append(kind)
        offset += 12 + length
    assert kinds[-1] == b"IEND" and kinds[-2] == b"iTXt"


@pytest.mark.parametrize("kind", ["png", "jpeg", "webp-lossy"])
def test_embedding_again_replaces_the_fields(kind: str) -> None:
    """A second embed replaces the first: one value per field, the newest."""
    data, content_type = _image(kind)
    once = embed_metadata(data, content_type, {"seed": "1", "prompt": "old"})
    twice = embed_metadata(once, content_type, {"seed": "2"})
    assert read_metadata(twice) == {"seed": "2"} | ({"prompt": "old"} if kind == "png" else {})
    assert twice.count(b"seed") == (1 if kind == "png" else 2)  # a chunk, or two tags


def test_jpeg_xmp_comes_right_after_the_jfif_segment() -> None:
    """The APP1 XMP segment follows SOI and the JFIF APP0."""
    data, _ = _image("jpeg")
    assert data[2:4] == b"\xff\xe0"
    app0_end = 4 + int.from_bytes(data[4:6], "big")
    tagged = embed_metadata(data, "image/jpeg", FIELDS)
    assert tagged[app0_end : app0_end + 2] == b"\xff\xe1"
    assert tagged[app0_end + 4 :].startswith(b"http://ns.adobe.com/xap/1.0/\x00")


def test_a_file_without_metadata_reads_as_empty() -> None:
    """Plain files carry no fields."""
    for kind in ("jpeg", "webp-lossy"):
        assert read_metadata(_image(kind)[0]) == {}


@pytest.mark.parametrize(
    ("fields", "content_type", "message"),
    [
        pytest.param({"two words": "x"}, "image/png", "field name", id="bad-name"),
        pytest.param({"prompt": "x"}, "image/jpeg", "not image/jpeg", id="wrong-type"),
    ],
)
def test_bad_input_is_refused_with_the_rule(
    fields: dict[str, str], content_type: str, message: str
) -> None:
    """Names, values and a mismatched content type are refused by ValueError."""
    with pytest.raises(ValueError, match=re.escape(message)):
        embed_metadata(_image("png")[0], content_type, fields)


@pytest.mark.parametrize("kind", ["png", "jpeg", "webp-lossy"])
def test_characters_no_format_carries_are_written_as_replacements(kind: str) -> None:
    """NUL and other controls but tab, LF and CR are embedded as U+FFFD, not refused."""
    data, content_type = _image(kind)
    tagged = embed_metadata(data, content_type, {"prompt": "a\x00b\x0cc\td"})
    assert read_metadata(tagged) == {"prompt": "a\ufffdb\ufffdc\td"}


def test_reading_something_else_is_refused() -> None:
    """Bytes that are no image raise ValueError."""
    with pytest.raises(ValueError, match="not a PNG"):
        read_metadata(b"<!doctype html>")


_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
_values = st.text(
    st.characters(
        exclude_categories=["Cs"],
        exclude_characters="\ufffe\uffff",
        min_codepoint=0x09,
    ).filter(lambda c: c in "\t\n\r" or ord(c) >= 0x20),
    max_size=200,
)


@settings(max_examples=60, deadline=None)
@given(fields=st.dictionaries(_names, _values, max_size=6), kind=st.sampled_from(KINDS))
def test_any_fields_round_trip_in_any_layout(fields: dict[str, str], kind: str) -> None:
    """Whatever valid fields are embedded are read back exactly, pixels unchanged."""
    data, content_type = _image(kind)
    tagged = embed_metadata(data, content_type, fields)
    assert read_metadata(tagged) == fields
    assert _pixels(tagged) == _pixels(data)


def test_zimage_info_shows_the_fields_of_the_documented_example(tmp_path: Path) -> None:
    """The cli page's generate and info commands run as written; info prints the fields."""
    text = DOCS.read_text(encoding="utf-8")
    commands = re.findall(r"^\$ (zimage (?:generate \"a red fox|info).*)$", text, re.M)
    assert len(commands) == 2
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZIMAGE_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    generated = subprocess.run(  # noqa: S603 - the documented command
        ["/bin/sh", "-c", commands[0]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert generated.returncode == 0, generated.stderr
    fox = tmp_path / "fox.png"
    fox.write_bytes(embed_metadata(fox.read_bytes(), "image/png", {"seed": "7"}))
    shown = subprocess.run(  # noqa: S603 - the documented command
        ["/bin/sh", "-c", commands[1]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["fields"]["seed"] == "7"
    assert (record["content_type"], record["width"], record["height"]) == ("image/png", 1280, 720)


def test_zimage_info_refuses_a_file_that_is_no_image(tmp_path: Path) -> None:
    """`zimage info` on a text file exits 2 with a message."""
    (tmp_path / "notes.txt").write_text("hello")
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "zimage_async", "info", str(tmp_path / "notes.txt")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "not a PNG, JPEG or WebP" in done.stderr
