"""The image origin: real images, sizes, determinism, ranges, signed expiring links."""

from __future__ import annotations

import hashlib
import io
import sys
from typing import TYPE_CHECKING

import pytest
from PIL import Image

from zimage_async.emulator import Emulator, ManualClock
from zimage_async.emulator._images import ImageSpec, render
from zimage_async.emulator._png import PADDING_CHUNK_TYPE

if TYPE_CHECKING:
    from tests.emulator.conftest import Api, ApiFactory


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize(
    ("size", "pixels"),
    [
        pytest.param(None, (1024, 1024), id="default-1:1"),
        pytest.param("9:16", (720, 1280), id="ratio-9:16"),
        pytest.param("2:1", (1440, 720), id="ratio-2:1"),
        pytest.param("500x700", (500, 700), id="custom-500x700"),
    ],
)
async def test_served_image_has_the_requested_size(
    api: Api, size: str | None, pixels: tuple[int, int]
) -> None:
    """The origin serves a real image with the pixel size the table or WxH gives."""
    fields = {} if size is None else {"size": size}
    body = await api.completed_task(**fields)
    reply = await api.request("GET", body["results"][0])
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "image/png"
    assert int(reply.headers["Content-Length"]) == len(reply.data)
    assert _open(reply.data).size == pixels


async def test_omitted_size_means_one_to_one(api: Api) -> None:
    """A create body without size gets a 1024x1024 image."""
    created = await api.create_raw(b'{"model": "z-image-turbo", "prompt": "no size"}')
    body = await api.wait_for_status(created.json()["id"], {"completed"})
    reply = await api.request("GET", body["results"][0])
    assert _open(reply.data).size == (1024, 1024)


async def test_same_prompt_seed_and_size_serve_the_same_bytes(api: Api) -> None:
    """Two tasks with the same prompt, seed and size serve byte-identical images."""
    first = await api.completed_task(prompt="a red fox", seed=42, size="3:2")
    second = await api.completed_task(prompt="a red fox", seed=42, size="3:2")
    one = await api.request("GET", first["results"][0])
    two = await api.request("GET", second["results"][0])
    assert hashlib.sha256(one.data).digest() == hashlib.sha256(two.data).digest()


async def test_different_prompts_serve_different_bytes(api: Api) -> None:
    """Changing the prompt changes the image."""
    first = await api.completed_task(prompt="a red fox", seed=42)
    second = await api.completed_task(prompt="a blue fox", seed=42)
    one = await api.request("GET", first["results"][0])
    two = await api.request("GET", second["results"][0])
    assert one.data != two.data


async def test_task_without_seed_always_serves_the_same_bytes(api: Api) -> None:
    """The seed the emulator picks is kept, so repeated downloads are identical."""
    body = await api.completed_task(prompt="pick a seed for me")
    one = await api.request("GET", body["results"][0])
    two = await api.request("GET", body["results"][0])
    assert one.data == two.data == await api.emulator.image_bytes(body["id"])


@pytest.mark.parametrize(
    ("image_format", "content_type", "pil_format"),
    [("jpeg", "image/jpeg", "JPEG"), ("webp", "image/webp", "WEBP")],
)
async def test_other_formats_are_served_with_their_content_type(
    api_factory: ApiFactory, image_format: str, content_type: str, pil_format: str
) -> None:
    """JPEG and WebP images carry their own Content-Type and decode as such."""
    api = await api_factory(image_format=image_format)
    body = await api.completed_task(size="4:3")
    url = body["results"][0]
    assert url.split("?")[0].endswith(".jpg" if image_format == "jpeg" else ".webp")
    reply = await api.request("GET", url)
    assert reply.headers["Content-Type"] == content_type
    image = _open(reply.data)
    assert (image.format, image.size) == (pil_format, (1152, 864))


async def test_range_request_resumes_a_download(api: Api) -> None:
    """A Range: bytes=N- request answers 206 with the rest of the file."""
    body = await api.completed_task()
    url = body["results"][0]
    full = await api.request("GET", url)
    rest = await api.request("GET", url, headers={"Range": "bytes=1000-"})
    assert rest.status == 206
    assert rest.headers["Content-Range"] == f"bytes 1000-{len(full.data) - 1}/{len(full.data)}"
    assert full.data[:1000] + rest.data == full.data


async def test_range_past_the_end_answers_416(api: Api) -> None:
    """A range starting after the last byte is unsatisfiable."""
    body = await api.completed_task()
    reply = await api.request("GET", body["results"][0], headers={"Range": "bytes=99999999-"})
    assert reply.status == 416


async def test_expired_link_answers_403_not_bytes(api_factory: ApiFactory) -> None:
    """Once link_ttl has passed since completion the origin refuses with AccessDenied."""
    clock = ManualClock()
    api = await api_factory(clock=clock, task_duration=1.0, link_ttl=60.0)
    created = await api.create_task()
    clock.advance(1.0)
    url = (await api.task_body(created["id"]))["results"][0]
    clock.advance(59.0)
    assert (await api.request("GET", url)).status == 200
    clock.advance(1.0)
    reply = await api.request("GET", url)
    assert reply.status == 403
    assert b"AccessDenied" in reply.data and b"Request has expired" in reply.data
    assert not reply.data.startswith(b"\x89PNG")


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda url: url.replace("sig=", "sig=0"), id="wrong-signature"),
        pytest.param(lambda url: url.split("&sig=")[0], id="missing-signature"),
        pytest.param(lambda url: url.split("?")[0], id="no-query"),
        pytest.param(lambda url: url.replace("expires=", "expires=9"), id="extended-expiry"),
    ],
)
async def test_bad_signature_answers_403(api: Api, mangle: object) -> None:
    """A link whose signature does not match is refused with 403."""
    body = await api.completed_task()
    reply = await api.request("GET", mangle(body["results"][0]))  # type: ignore[operator]
    assert reply.status == 403


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda url: url.replace("/0.png", "/1.png"), id="index-out-of-range"),
        pytest.param(lambda url: url.replace("/0.png", "/0.jpg"), id="wrong-extension"),
        pytest.param(lambda url: url.replace("task-unified-", "task-unified-9"), id="unknown-task"),
        pytest.param(lambda url: url.replace("/files/", "/other/"), id="unknown-route"),
    ],
)
async def test_unknown_files_answer_404(api: Api, mangle: object) -> None:
    """Unknown tasks, indexes and paths answer 404 from the origin."""
    body = await api.completed_task()
    reply = await api.request("GET", mangle(body["results"][0]))  # type: ignore[operator]
    assert reply.status == 404
    assert b"NoSuchKey" in reply.data


async def test_several_images_per_task_are_all_served(api_factory: ApiFactory) -> None:
    """With images_per_task=2 a task has two distinct, servable results."""
    api = await api_factory(images_per_task=2)
    body = await api.completed_task()
    assert len(body["results"]) == 2
    one, two = [await api.request("GET", url) for url in body["results"]]
    assert one.status == two.status == 200
    assert one.data != two.data


async def test_padding_makes_a_big_but_valid_png(api_factory: ApiFactory) -> None:
    """image_padding_bytes adds a private chunk and the PNG still decodes."""
    api = await api_factory(image_padding_bytes=5_000_000, image_renderer="plain")
    body = await api.completed_task(size="500x500")
    reply = await api.request("GET", body["results"][0])
    assert len(reply.data) > 5_000_000
    assert PADDING_CHUNK_TYPE in reply.data
    assert _open(reply.data).size == (500, 500)


async def test_padding_keeps_a_jpeg_valid(api_factory: ApiFactory) -> None:
    """JPEG padding uses comment segments and the JPEG still decodes."""
    api = await api_factory(image_format="jpeg", image_padding_bytes=200_000)
    body = await api.completed_task(size="400x400")
    reply = await api.request("GET", body["results"][0])
    assert len(reply.data) > 200_000
    assert _open(reply.data).size == (400, 400)


def test_plain_renderer_makes_a_valid_deterministic_png() -> None:
    """The standard-library encoder writes PNGs Pillow can read, the same bytes each time."""
    spec = ImageSpec(
        prompt="cat",
        seed=1,
        width_pixels=400,
        height_pixels=300,
        image_format="png",
        renderer="plain",
    )
    data = render(spec)
    assert data == render(spec)
    image = _open(data)
    assert (image.format, image.size, image.mode) == ("PNG", (400, 300), "RGB")


def test_plain_renderer_depends_on_the_prompt() -> None:
    """The plain renderer's colours come from the prompt and seed."""
    specs = [
        ImageSpec(
            prompt=p,
            seed=1,
            width_pixels=400,
            height_pixels=400,
            image_format="png",
            renderer="plain",
        )
        for p in ("cat", "dog")
    ]
    assert render(specs[0]) != render(specs[1])


def test_without_pillow_jpeg_is_refused_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Asking for JPEG without Pillow raises a RuntimeError naming the extra."""
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    with pytest.raises(RuntimeError, match=r"\.\[images\]"):
        Emulator(image_format="jpeg")


async def test_without_pillow_the_emulator_serves_plain_pngs(
    monkeypatch: pytest.MonkeyPatch, api_factory: ApiFactory
) -> None:
    """With Pillow missing, the default emulator falls back to standard-library PNGs."""
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    api = await api_factory(seed=1)
    body = await api.completed_task(size="400x400", seed=9)
    reply = await api.request("GET", body["results"][0])
    monkeypatch.undo()
    assert _open(reply.data).size == (400, 400)
    expected = render(
        ImageSpec(
            prompt="a cute cat",
            seed=9,
            width_pixels=400,
            height_pixels=400,
            image_format="png",
            renderer="plain",
        )
    )
    assert reply.data == expected


def test_webp_cannot_be_padded() -> None:
    """Padding a WebP is refused up front."""
    with pytest.raises(ValueError, match="webp"):
        Emulator(image_format="webp", image_padding_bytes=10)


async def test_origin_never_receives_authorization(api: Api) -> None:
    """Fetching results sends no Authorization header to the origin (recorded as absent)."""
    body = await api.completed_task()
    await api.request("GET", body["results"][0])
    records = api.emulator.requests
    image_records = [record for record in records if record.endpoint == "image"]
    api_records = [record for record in records if record.endpoint in ("create", "task")]
    assert image_records
    assert all(record.header("Authorization") is None for record in image_records)
    assert all(record.header("Authorization") == "<present>" for record in api_records)
