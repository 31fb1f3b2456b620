"""Embedding metadata in images the download accepted, with fields the service chose.

``save(metadata=True)`` (and ``zimage generate --embed-metadata``) embeds the task's
``model``, as the service states it, with the prompt, seed, size and task id. A ``model``
too long to be a model name (70,000 characters: no JPEG segment holds it) is left out,
the request's model written instead, with a warning: the image is saved. An image whose
framing the embedder cannot handle (a WebP VP8 frame 0 pixels wide, an empty ``VP8X``
chunk) is an :class:`ImageDownloadError` naming the task and the image, and leaves no
file; :func:`embed_metadata` itself raises :class:`ValueError` for it, never an
``IndexError`` or ``OverflowError``. Over real HTTP on loopback, and the embedder itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import random
import struct
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from PIL import Image as PILImage

from zimage_async import GenerationRequest, ImageDownloadError, Session
from zimage_async._metadata import embed_metadata, read_metadata

from ._cli import cli_env
from .conftest import CompletedHost, loopback_session, serving

LONG_MODEL = "z" * 70_000
FIELDS = {"task_id": "task-unified-1-0", "model": "z-image-turbo", "prompt": "a cat & a dog"}


def _image(fmt: str) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (8, 8), (10, 200, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


def _riff(*chunks: tuple[bytes, bytes]) -> bytes:
    body = b"WEBP" + b"".join(
        kind + struct.pack("<I", len(payload)) + payload + b"\x00" * (len(payload) % 2)
        for kind, payload in chunks
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _vp8(width: int, height: int) -> bytes:
    """A VP8 key frame header of *width* x *height* (no picture data after it)."""
    return b"\x10\x02\x00\x9d\x01\x2a" + struct.pack("<HH", width, height) + bytes(10)


VP8_0X0 = _riff((b"VP8 ", _vp8(0, 0)))
#: WebP files the download accepts whose framing no metadata can be embedded in.
BROKEN_WEBP = [
    pytest.param(VP8_0X0, id="vp8-0x0"),
    pytest.param(_riff((b"VP8 ", _vp8(0, 8))), id="vp8-width-0"),
    pytest.param(_riff((b"VP8 ", _vp8(8, 0))), id="vp8-height-0"),
    pytest.param(_riff((b"VP8X", b""), (b"VP8 ", _vp8(8, 8))), id="empty-vp8x"),
    pytest.param(_riff((b"VP8X", bytes(9)), (b"VP8 ", _vp8(8, 8))), id="vp8x-9-bytes"),
]


# -- the embedder ---------------------------------------------------------------------------


@pytest.mark.parametrize("data", BROKEN_WEBP)
def test_a_webp_the_embedder_cannot_frame_is_a_value_error(data: bytes) -> None:
    """A value error with a message, not an IndexError or an OverflowError."""
    with pytest.raises(ValueError, match="WebP") as caught:
        embed_metadata(data, "image/webp", FIELDS)
    assert type(caught.value) is ValueError


def test_a_jpeg_too_small_for_the_fields_is_a_value_error() -> None:
    """Fields no JPEG segment holds are refused with a ValueError saying so."""
    with pytest.raises(ValueError, match="JPEG segment"):
        embed_metadata(_image("JPEG"), "image/jpeg", FIELDS | {"model": LONG_MODEL})


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_corrupted_images_embed_or_raise_value_error_only(fmt: str) -> None:
    """Bytes flipped, cut or zeroed anywhere: the embedder succeeds or raises ValueError."""
    original = _image(fmt)
    content_type = f"image/{fmt.lower()}"
    rng = random.Random(20261201)
    for _ in range(400):
        data = bytearray(original)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            data[at] = rng.choice([0, 0xFF, rng.randrange(256)])
        cut = bytes(data[: rng.randint(12, len(data))])
        with contextlib.suppress(ValueError):
            embed_metadata(cut, content_type, FIELDS)


# -- on the wire ----------------------------------------------------------------------------


class Host(CompletedHost):
    """A gateway whose task states :attr:`model` and whose image is :attr:`image_data`."""

    def __init__(self) -> None:
        super().__init__(self.serve)
        self.model = "z-image-turbo"
        self.image_data = b""
        self.content_type = ""

    def completed(self, task_id: str) -> dict[str, object]:
        return super().completed(task_id) | {"model": self.model}

    async def serve(self, request: web.Request) -> web.Response:
        return web.Response(body=self.image_data, headers={"Content-Type": self.content_type})


@pytest.fixture
async def host() -> AsyncIterator[Host]:
    server = Host()
    async with serving(server.app) as server.base:
        yield server


@pytest.fixture
async def session(host: Host) -> AsyncIterator[Session]:
    async with loopback_session(host.base) as zs:
        yield zs


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
async def test_a_model_too_long_to_be_one_is_left_out_and_the_image_saved(
    host: Host, session: Session, tmp_path: Path, fmt: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The image is saved with every other field; the request's model is written."""
    host.model, host.image_data = LONG_MODEL, _image(fmt)
    host.content_type = f"image/{fmt.lower()}"
    handle = await session.submit(GenerationRequest(prompt="a cat", seed=7))
    with caplog.at_level(logging.WARNING, logger="zimage_async"):
        (path,) = await handle.save(tmp_path, metadata=True)
    fields = read_metadata(path.read_bytes())
    assert fields == {
        "task_id": handle.id,
        "model": "z-image-turbo",
        "prompt": "a cat",
        "seed": "7",
    }
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(handle.id in message and "model" in message for message in warned), warned
    assert all(len(message) < 1000 for message in warned)


async def test_a_model_of_a_usual_length_is_written_as_stated(
    host: Host, session: Session, tmp_path: Path
) -> None:
    """A model name the service states is what the metadata says, not the request's."""
    host.model, host.image_data = "z-image-turbo-v2", _image("JPEG")
    host.content_type = "image/jpeg"
    handle = await session.submit("a cat")
    (path,) = await handle.save(tmp_path, metadata=True)
    assert read_metadata(path.read_bytes())["model"] == "z-image-turbo-v2"


@pytest.mark.filterwarnings("ignore::zimage_async.ImageSizeWarning")  # the frames' sizes
@pytest.mark.parametrize("data", BROKEN_WEBP)
async def test_an_image_the_embedder_cannot_frame_is_a_typed_error_naming_it(
    host: Host, session: Session, tmp_path: Path, data: bytes
) -> None:
    """ImageDownloadError for image 0 of the task; no file, whole or partial, is left."""
    host.image_data, host.content_type = data, "image/webp"
    handle = await session.submit("a cat")
    with pytest.raises(ImageDownloadError) as caught:
        await handle.save(tmp_path, metadata=True)
    error = caught.value
    assert (error.task_id, error.index) == (handle.id, 0)
    assert "metadata" in error.reason and "WebP" in error.reason
    assert isinstance(error.__cause__, ValueError)
    assert list(tmp_path.iterdir()) == []
    (path,) = await handle.save(tmp_path)  # without metadata: the image as sent
    assert path.read_bytes() == data


async def test_the_cli_reports_such_an_image_as_an_error_not_a_crash(
    host: Host, tmp_path: Path
) -> None:
    """`zimage generate --embed-metadata` exits 1 naming the task and image, no traceback."""
    host.image_data, host.content_type = VP8_0X0, "image/webp"
    env = cli_env(ZIMAGE_API_KEY="sk-test-0123456789", ZIMAGE_BASE_URL=f"{host.base}/apiv1")
    out = tmp_path / "out"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "zimage_async",
        "generate",
        "a cat",
        "-o",
        str(out),
        "--embed-metadata",
        "--no-journal",
        "--timeout",
        "30",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    text = stderr.decode()
    assert process.returncode == 1, text
    assert "Traceback" not in text
    assert "image 0 of task task-unified-1-0" in text and "metadata" in text
    assert not out.exists() or not [p for p in out.iterdir() if p.is_file()]
