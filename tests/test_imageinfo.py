"""Recognising image bytes and link expiry (no network)."""

from __future__ import annotations

import io

import pytest
from PIL import Image as PILImage

from zimage_async._imageinfo import check_declared_type, image_dimensions, sniff_content_type
from zimage_async._links import link_expiry
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


def test_secret_never_prints() -> None:
    """A Secret shows *** in repr, str and format, and cannot be pickled."""
    import pickle

    key = Secret("sk-live-abcdef")
    assert "abcdef" not in repr(key) + str(key) + f"{key}" + repr([key])
    with pytest.raises(TypeError):
        pickle.dumps(key)
