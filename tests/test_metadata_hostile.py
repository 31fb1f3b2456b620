"""Metadata against awkward prompts and hostile files: saved, read or refused, never a crash.

Prompts the API accepts may hold characters a PNG text chunk or XML cannot carry; the
billed image is still saved with its metadata. Files whose text chunks or XMP are broken,
or whose compressed text would inflate without bound, are refused by ``read_metadata``
(and ``zimage info``, exit 2) with a message, and copied unchanged by ``embed_metadata``.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import struct
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from PIL import Image as PILImage

from zimage_async import GenerationRequest, Session
from zimage_async._cli import build_parser
from zimage_async._cli_common import Interruption
from zimage_async._cli_generate import add_save_options, run_generate
from zimage_async._metadata import embed_metadata, read_metadata
from zimage_async.pytest_plugin import EmulatorFactory

from .conftest import FAST_POLL, FAST_RETRY, loopback_session, serving

#: Characters the API accepts in a prompt that neither iTXt nor XML 1.0 can carry.
AWKWARD = "form\x0cfeed \x01 start \x7f del \x1b esc \ufffe \uffff nul\x00 end"
#: What the metadata says instead: each of them replaced by U+FFFD (DEL is allowed).
CARRIED = "form\ufffdfeed \ufffd start \x7f del \ufffd esc \ufffd \ufffd nul\ufffd end"
MIB = 1024 * 1024


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def _png(*text_chunks: bytes) -> bytes:
    """A valid 1 x 1 grey PNG holding *text_chunks* between IHDR and IDAT."""
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    pixels = _chunk(b"IDAT", zlib.compress(b"\x00\x80"))
    return b"\x89PNG\r\n\x1a\n" + header + b"".join(text_chunks) + pixels + _chunk(b"IEND", b"")


def _ztxt(keyword: bytes, stream: bytes, method: int = 0) -> bytes:
    return _chunk(b"zTXt", keyword + b"\x00" + bytes([method]) + stream)


def _itxt_compressed(keyword: bytes, stream: bytes) -> bytes:
    return _chunk(b"iTXt", keyword + b"\x00\x01\x00en\x00\x00" + stream)


def _bomb(size: int) -> bytes:
    """A zlib stream of *size* zero bytes (about a thousandth of that compressed)."""
    return zlib.compress(bytes(size), 9)


def _image(fmt: str) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (8, 8), (10, 200, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


def _with_xmp(fmt: str, packet: bytes) -> bytes:
    """A JPEG or WebP whose XMP is *packet*, framed correctly."""
    if fmt == "JPEG":
        data = _image("JPEG")
        body = b"http://ns.adobe.com/xap/1.0/\x00" + packet
        return data[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + data[2:]
    data = embed_metadata(_image("WEBP"), "image/webp", {"x": "y"})
    start = data.index(b"XMP ")
    (length,) = struct.unpack_from("<I", data, start + 4)
    pad = b"\x00" if len(packet) % 2 else b""
    chunk = b"XMP " + struct.pack("<I", len(packet)) + packet + pad
    body = data[8:start] + chunk + data[start + 8 + length + length % 2 :]
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _pixels(data: bytes) -> bytes:
    with PILImage.open(io.BytesIO(data)) as image:
        image.load()
        return bytes(image.tobytes())


# -- awkward prompts: saved with their metadata ----------------------------------------------


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
async def test_a_prompt_with_control_characters_is_saved_with_metadata(
    zimage_emulator_factory: EmulatorFactory, tmp_path: Path, fmt: str
) -> None:
    """save(metadata=True) writes the billed image; the awkward characters read as U+FFFD."""
    emulator = await zimage_emulator_factory(task_duration=0.05, image_format=fmt)
    async with Session(
        api_key=emulator.api_key, base_url=emulator.base_url, poll=FAST_POLL, retry=FAST_RETRY
    ) as session:
        handle = await session.submit(GenerationRequest(prompt=AWKWARD, seed=9))
        (path,) = await handle.save(tmp_path, metadata=True)
        sent = await emulator.image_bytes(handle.id)
    data = path.read_bytes()
    fields = read_metadata(data)
    assert fields["prompt"] == CARRIED
    assert (fields["seed"], fields["task_id"]) == ("9", handle.id)
    assert _pixels(data) == _pixels(sent)
    assert len(emulator.ledger) == 1


async def test_cli_embed_metadata_saves_a_prompt_with_a_form_feed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`zimage generate --embed-metadata` with such a prompt exits 0 and saves the file."""
    argv = ["generate", "page\x0cbreak \x01", "-o", str(tmp_path), "--emulator"]
    args = build_parser().parse_args([*argv, "--emulator-task-duration", "0.05", "--json"])
    save_options = argparse.ArgumentParser()
    add_save_options(save_options)
    save_options.parse_args(["--embed-metadata"], namespace=args)
    assert await run_generate(args, Interruption()) == 0
    (path,) = json.loads(capsys.readouterr().out)["paths"]
    assert read_metadata(Path(path).read_bytes())["prompt"] == "page\ufffdbreak \ufffd"


@pytest.mark.parametrize("kind", ["image/png", "image/jpeg", "image/webp"])
def test_every_uncarriable_character_is_written_as_a_replacement(kind: str) -> None:
    """NUL, C0 controls, U+FFFE/U+FFFF and lone surrogates become U+FFFD in every format."""
    data = _image({"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}[kind])
    value = AWKWARD + " \ud800 lone \t\n\r kept"
    tagged = embed_metadata(data, kind, {"prompt": value, "seed": "1"})
    expected = CARRIED + " \ufffd lone \t\n\r kept"
    assert read_metadata(tagged) == {"prompt": expected, "seed": "1"}
    assert _pixels(tagged) == _pixels(data)


# -- a service PNG with a broken text chunk: embedding copies it ----------------------------


@pytest.fixture
async def broken_png_host() -> AsyncIterator[str]:
    """A loopback API whose one task's image is a PNG with an unreadable zTXt chunk."""
    image = _png(_ztxt(b"Comment", b"not a zlib stream"))

    async def create(request: web.Request) -> web.Response:
        return web.json_response({"id": "task-unified-1-broken", "status": "pending"})

    async def task(request: web.Request) -> web.Response:
        results = [f"{base}/img/broken.png"]
        return web.json_response(
            {
                "id": "task-unified-1-broken",
                "status": "completed",
                "progress": 100,
                "results": results,
            }
        )

    async def picture(request: web.Request) -> web.Response:
        return web.Response(body=image, content_type="image/png")

    app = web.Application()
    app.router.add_post("/apiv1/v1/images/generations", create)
    app.router.add_get("/apiv1/v1/tasks/{task_id}", task)
    app.router.add_get("/img/broken.png", picture)
    async with serving(app) as base:
        yield base


async def test_a_service_png_with_a_broken_text_chunk_is_saved_with_metadata(
    broken_png_host: str, tmp_path: Path
) -> None:
    """The broken chunk is kept byte for byte; the fields are added after it."""
    async with loopback_session(broken_png_host) as session:
        handle = await session.submit("a fox")
        (path,) = await handle.save(tmp_path, metadata=True)
    data = path.read_bytes()
    assert _ztxt(b"Comment", b"not a zlib stream") in data
    assert b"iTXt" in data and b"a fox" in data


def test_embedding_never_decompresses(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replacing a field looks at chunk keywords only: no text is inflated to embed."""

    def refuse(*args: object, **kwargs: object) -> object:
        raise AssertionError("a text chunk was decompressed while embedding")

    monkeypatch.setattr(zlib, "decompress", refuse)
    monkeypatch.setattr(zlib, "decompressobj", refuse)
    bomb = _ztxt(b"Comment", _bomb(64 * MIB))
    data = _png(bomb, _ztxt(b"prompt", b"broken"), _itxt_compressed(b"seed", b"broken"))
    tagged = embed_metadata(data, "image/png", {"prompt": "new", "seed": "2"})
    assert bomb in tagged
    assert b"broken" not in tagged
    monkeypatch.undo()
    with pytest.raises(ValueError, match="Comment"):
        read_metadata(tagged)


# -- reading: every failure is a ValueError with a message ----------------------------------


BROKEN_PNGS = {
    "ztxt-not-zlib": (_png(_ztxt(b"Comment", b"not a zlib stream")), "'Comment'"),
    "ztxt-truncated": (
        _png(_ztxt(b"Comment", zlib.compress(random.Random(0).randbytes(5000))[:40])),
        "ends",
    ),
    "ztxt-method": (_png(_ztxt(b"Comment", zlib.compress(b"x"), method=7)), "method"),
    "itxt-not-zlib": (_png(_itxt_compressed(b"Title", b"\x78\x9c garbage")), "'Title'"),
    "ztxt-bomb": (_png(_ztxt(b"Comment", _bomb(64 * MIB))), "more than 1 MiB"),
    "itxt-bomb": (_png(_itxt_compressed(b"Title", _bomb(64 * MIB))), "more than 1 MiB"),
}
BROKEN_XMP = {
    "jpeg-bogus-encoding": (
        _with_xmp("JPEG", b'<?xml version="1.0" encoding="bogus"?><a/>'),
        "bogus",
    ),
    "webp-bogus-encoding": (
        _with_xmp("WEBP", b'<?xml version="1.0" encoding="bogus"?><a/>'),
        "bogus",
    ),
    "jpeg-utf16-doctype": (
        _with_xmp("JPEG", '<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>'.encode("utf-16")),
        "DOCTYPE",
    ),
    "jpeg-not-xml": (_with_xmp("JPEG", b"<a><b></a>"), "not well-formed"),
}
BROKEN = BROKEN_PNGS | BROKEN_XMP


@pytest.mark.parametrize("name", list(BROKEN))
def test_unreadable_metadata_is_a_value_error(name: str) -> None:
    """Broken compression, bombs, unknown encodings and DTDs are refused by ValueError."""
    data, message = BROKEN[name]
    with pytest.raises(ValueError, match=message):
        read_metadata(data)


def test_the_inflate_cap_is_one_mib_per_chunk() -> None:
    """Text that inflates to exactly 1 MiB is read; one byte more is refused."""
    at_cap = _png(_ztxt(b"Comment", zlib.compress(b"a" * MIB)))
    assert read_metadata(at_cap) == {"Comment": "a" * MIB}
    over = _png(_ztxt(b"Comment", zlib.compress(b"a" * (MIB + 1))))
    with pytest.raises(ValueError, match="more than 1 MiB"):
        read_metadata(over)


def test_the_inflated_text_of_a_file_is_capped_too() -> None:
    """Many chunks each under the cap may not add up to more than 8 MiB of text."""
    chunks = [_ztxt(f"k{i}".encode(), zlib.compress(b"a" * MIB)) for i in range(9)]
    with pytest.raises(ValueError, match="more than 8 MiB"):
        read_metadata(_png(*chunks))
    assert len(read_metadata(_png(*chunks[:8]))) == 8


@pytest.mark.parametrize("name", list(BROKEN))
def test_zimage_info_refuses_unreadable_metadata_with_exit_2(tmp_path: Path, name: str) -> None:
    """`zimage info` exits 2 naming the file and the problem, with no traceback."""
    data, message = BROKEN[name]
    path = tmp_path / f"{name}.img"
    path.write_bytes(data)
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "zimage_async", "info", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"zimage: error: {path}: ")
    assert message in done.stderr
    assert done.stdout == ""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS as on Linux")
def test_a_bomb_is_refused_within_a_small_address_space(tmp_path: Path) -> None:
    """512 MiB of compressed zeros are refused by a reader limited to 192 MiB of memory."""
    packer = zlib.compressobj(1)
    zeros = bytes(MIB)
    stream = b"".join(packer.compress(zeros) for _ in range(512)) + packer.flush()
    path = tmp_path / "bomb.png"
    path.write_bytes(_png(_ztxt(b"Comment", stream)))
    script = (
        "import resource, sys\n"
        "from zimage_async._metadata import read_metadata\n"
        "data = open(sys.argv[1], 'rb').read()\n"
        "resource.setrlimit(resource.RLIMIT_AS, (192 << 20, 192 << 20))\n"
        "try:\n"
        "    read_metadata(data)\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "more than 1 MiB; refused" in done.stdout, done.stderr[-500:]
