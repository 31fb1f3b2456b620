"""Recognising image bytes and link expiry (no network)."""

from __future__ import annotations

import io
import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image as PILImage

from zimage_async._imageinfo import (
    ImageFraming,
    check_declared_type,
    image_dimensions,
    sniff_content_type,
)
from zimage_async._links import block_evidence, link_expiry
from zimage_async._secret import Secret


def _encode(fmt: str, size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", size, (10, 20, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [
        pytest.param("PNG", "image/png", id="png"),
        pytest.param("JPEG", "image/jpeg", id="jpeg"),
        pytest.param("WEBP", "image/webp", id="webp"),
    ],
)
def test_format_and_dimensions_are_read_from_bytes(fmt: str, content_type: str) -> None:
    """PNG, JPEG and WebP are recognised and their dimensions read from the header."""
    data = _encode(fmt, (377, 401))
    assert sniff_content_type(data[:32]) == content_type
    assert image_dimensions(data) == (377, 401)


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"<!DOCTYPE html><html>", id="html"),
        pytest.param(b'{"error": {}}', id="json"),
        pytest.param(b"GIF89a", id="gif"),
        pytest.param(b"", id="empty"),
    ],
)
def test_non_images_are_not_recognised(head: bytes) -> None:
    """Bodies that are not PNG, JPEG or WebP are not taken for images."""
    assert sniff_content_type(head) is None
    assert image_dimensions(head) is None


@pytest.mark.parametrize(
    ("declared", "ok"),
    [
        pytest.param(None, True, id="missing"),
        pytest.param("application/octet-stream", True, id="octet-stream"),
        pytest.param("image/png", True, id="same"),
        pytest.param("IMAGE/PNG; charset=binary", True, id="case-and-params"),
        pytest.param("text/html; charset=utf-8", False, id="html"),
        pytest.param("image/jpeg", False, id="other-image"),
    ],
)
def test_declared_type_must_agree_with_bytes(declared: str | None, ok: bool) -> None:
    """A Content-Type that contradicts PNG bytes is a problem; a neutral one is not."""
    assert (check_declared_type(declared, "image/png") is None) is ok


def test_jpg_alias_is_accepted() -> None:
    """The common non-standard image/jpg means JPEG."""
    assert check_declared_type("image/jpg", "image/jpeg") is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param("https://h/a.png?expires=1700000000", 1700000000.0, id="expires"),
        pytest.param("https://h/a.png?Expires=17&Signature=x", 17.0, id="cloudfront"),
        pytest.param(
            "https://h/a.png?X-Amz-Date=20240101T000000Z&X-Amz-Expires=86400",
            1704153600.0,
            id="s3",
        ),
        pytest.param("https://h/a.png?expires=soon", None, id="garbage"),
        pytest.param("https://h/a.png", None, id="none"),
    ],
)
def test_link_expiry_is_read_from_the_url(url: str, expected: float | None) -> None:
    """Links that state their expiry give it as a Unix time."""
    assert link_expiry(url) == expected


_CLOUDFLARE_1010 = (
    b"<!DOCTYPE html><html><head><title>Access denied | cdn.example used Cloudflare to "
    b"restrict access</title></head><body><h1>Error 1010</h1><p>The owner of this website "
    b"has banned your access based on your browser's signature.</p></body></html>"
)
_ACCESS_DENIED = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
_S3_EXPIRED = b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"


@pytest.mark.parametrize(
    ("body", "stated", "blocked"),
    [
        pytest.param(_CLOUDFLARE_1010, None, True, id="cloudflare-page-no-expiry"),
        pytest.param(b"error code: 1010", None, True, id="cloudflare-plain-no-expiry"),
        pytest.param(_CLOUDFLARE_1010, 50.0, True, id="cloudflare-page-past-expiry"),
        pytest.param(_ACCESS_DENIED, None, False, id="denied-no-expiry"),
        pytest.param(b"", None, False, id="empty-no-expiry"),
        pytest.param(_ACCESS_DENIED, 200.0, True, id="denied-before-expiry"),
        pytest.param(_ACCESS_DENIED, 50.0, False, id="denied-past-expiry"),
        pytest.param(_S3_EXPIRED, 200.0, False, id="host-says-expired-before-our-expiry"),
    ],
)
def test_refusal_is_told_apart_from_expiry(
    body: bytes, stated: float | None, blocked: bool
) -> None:
    """A 403 is a block when it says Cloudflare/1010 or comes before the link's own expiry."""
    assert (block_evidence(body, stated, now=100.0) is not None) is blocked


def test_secret_never_prints() -> None:
    """A Secret shows *** in repr, str and format, and cannot be pickled."""
    import pickle

    key = Secret("sk-live-abcdef")
    assert "abcdef" not in repr(key) + str(key) + f"{key}" + repr([key])
    with pytest.raises(TypeError):
        pickle.dumps(key)


def _noise(fmt: str, **options: object) -> bytes:
    """A small noisy picture, so JPEG entropy data holds stuffed 0xFF bytes."""
    pixels = random.Random(7).randbytes(48 * 40 * 3)
    buffer = io.BytesIO()
    PILImage.frombytes("RGB", (48, 40), pixels).save(buffer, format=fmt, **options)
    return buffer.getvalue()


_SAMPLES = {
    "png": _noise("PNG"),
    "png-small-idat": _noise("PNG", compress_level=0),
    "jpeg": _noise("JPEG", quality=95),
    "jpeg-progressive": _noise("JPEG", progressive=True),
    "jpeg-restart-markers": _noise("JPEG", restart_marker_blocks=1),
    "jpeg-exif": _noise("JPEG", exif=b"Exif\x00\x00" + bytes(300)),
    "webp-lossy": _noise("WEBP"),
    "webp-lossless": _noise("WEBP", lossless=True),
}
_SAMPLE_PARAMS = [pytest.param(name, id=name) for name in _SAMPLES]


def _framing(data: bytes) -> ImageFraming:
    kind = sniff_content_type(data[:32])
    assert kind is not None
    return ImageFraming(kind)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def test_samples_exercise_stuffing_and_restart_markers() -> None:
    """The JPEG samples hold stuffed 0xFF bytes and RST markers, so the walk meets both."""
    assert b"\xff\x00" in _SAMPLES["jpeg"]
    assert any(bytes([0xFF, 0xD0 + n]) in _SAMPLES["jpeg-restart-markers"] for n in range(8))


@pytest.mark.parametrize("name", _SAMPLE_PARAMS)
def test_whole_image_is_complete(name: str) -> None:
    """A whole PNG, JPEG or WebP fed at once ends exactly at its last byte."""
    data = _SAMPLES[name]
    framing = _framing(data)
    framing.feed(data)
    assert framing.problem is None
    assert framing.end == len(data)
    assert framing.complete
    assert framing.excess == 0


@pytest.mark.parametrize("name", _SAMPLE_PARAMS)
def test_every_truncation_is_incomplete(name: str) -> None:
    """Fed a byte at a time, an image is incomplete at every offset before its last byte."""
    data = _SAMPLES[name]
    framing = _framing(data)
    for offset in range(len(data)):
        assert not framing.complete, f"complete after only {offset} bytes"
        framing.feed(data[offset : offset + 1])
        assert framing.problem is None
    assert framing.complete


@pytest.mark.parametrize("name", _SAMPLE_PARAMS)
@given(cuts=st.lists(st.integers(min_value=0, max_value=20_000), max_size=12))
def test_split_points_do_not_matter(name: str, cuts: list[int]) -> None:
    """However the bytes are split into chunks, the image is complete exactly at its end."""
    data = _SAMPLES[name]
    framing = _framing(data)
    for chunk in _split(data, cuts):
        assert not framing.complete
        framing.feed(chunk)
    assert framing.problem is None
    assert framing.complete


@pytest.mark.parametrize("name", _SAMPLE_PARAMS)
@given(
    cuts=st.lists(st.integers(min_value=0, max_value=20_000), max_size=6),
    extra=st.binary(min_size=1, max_size=64),
)
def test_appended_bytes_are_noticed(name: str, cuts: list[int], extra: bytes) -> None:
    """Bytes after the image's own end make it not complete, and are counted as excess."""
    data = _SAMPLES[name]
    framing = _framing(data)
    for chunk in _split(data + extra, cuts):
        framing.feed(chunk)
    assert not framing.complete
    assert framing.end == len(data)
    assert framing.excess == len(extra)


@pytest.mark.parametrize("name", _SAMPLE_PARAMS)
@given(cut=st.integers(min_value=0), cuts=st.lists(st.integers(min_value=0, max_value=20_000)))
def test_truncated_images_are_incomplete(name: str, cut: int, cuts: list[int]) -> None:
    """A prefix of an image, however chunked, is never complete."""
    data = _SAMPLES[name]
    prefix = data[: cut % len(data)]
    framing = _framing(data)
    for chunk in _split(prefix, cuts):
        framing.feed(chunk)
    assert not framing.complete
    assert framing.excess == 0


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        pytest.param(
            _SAMPLES["png"][:8] + b"\x00\x00\x00\x0d<ht" + bytes(17), "chunk", id="png-chunk"
        ),
        pytest.param(b"\xff\xd8\xff\xe0\x00\x04ab<html>", "marker", id="jpeg-marker"),
        pytest.param(b"RIFF\x02\x00\x00\x00WEBPVP8 ", "RIFF size", id="webp-tiny-size"),
    ],
)
def test_broken_structure_is_a_problem(data: bytes, phrase: str) -> None:
    """Bytes that break the format's structure are reported, not waited on."""
    framing = _framing(data)
    framing.feed(data)
    assert framing.problem is not None
    assert phrase in framing.problem
    assert not framing.complete


@pytest.mark.parametrize(
    ("name", "phrase"),
    [
        pytest.param("png", "IEND", id="png"),
        pytest.param("jpeg", "EOI", id="jpeg"),
        pytest.param("webp-lossy", "RIFF size", id="webp"),
    ],
)
def test_missing_end_is_described(name: str, phrase: str) -> None:
    """An incomplete image says which end marker it is still waiting for."""
    data = _SAMPLES[name]
    framing = _framing(data)
    framing.feed(data[: len(data) // 2])
    assert phrase in framing.missing()
