"""Image downloads: verification, expiry, truncation and where the key may travel."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from zimage_async import (
    APIError,
    ImageDownloadError,
    ImageExpiredError,
    ImageSizeWarning,
    Session,
)
from zimage_async.emulator import Emulator, FaultPlan

from .conftest import FAST_POLL, FAST_RETRY, KEY, OddHost


@pytest.mark.parametrize(
    ("kind", "phrase"),
    [
        pytest.param("html", "HTML page", id="html-with-200"),
        pytest.param("mislabelled", "declared image/jpeg", id="wrong-content-type"),
        pytest.param("huge", "limit", id="oversized"),
        pytest.param("tiny", "not an image", id="too-short"),
    ],
)
async def test_bad_image_bodies_are_refused(
    odd_session: Session, kind: str, phrase: str, tmp_path: Path
) -> None:
    """Bodies that are not the promised image raise ImageDownloadError; no file is left."""
    handle = await odd_session.submit(kind)
    with pytest.raises(ImageDownloadError) as info:
        await handle.save(tmp_path)
    assert phrase in str(info.value)
    assert not isinstance(info.value, ImageExpiredError)
    assert list(tmp_path.iterdir()) == []


async def test_image_redirect_is_followed_without_the_key(
    odd_session: Session, odd_host: OddHost
) -> None:
    """A redirecting image link is followed, and no hop receives the API key."""
    result = await odd_session.generate("redirect")
    assert result.image.width == 400
    assert len(odd_host.image_headers) == 2
    assert all("Authorization" not in headers for headers in odd_host.image_headers)


async def test_api_redirect_is_not_followed(odd_session: Session, odd_host: OddHost) -> None:
    """An API answer that redirects is an error; the key never follows it."""
    with pytest.raises(APIError) as info:
        await odd_session.submit("redirect-api")
    assert info.value.status == 307
    assert odd_host.image_headers == []


async def test_image_origin_never_sees_authorization(zs: Session, emulator: Emulator) -> None:
    """The emulator's image origin records no Authorization header from the SDK."""
    await zs.generate("who is asking")
    image_requests = [r for r in emulator.requests if r.endpoint == "image"]
    assert image_requests
    assert all(r.header("Authorization") is None for r in image_requests)
    api_requests = [r for r in emulator.requests if r.endpoint in ("create", "task")]
    assert all(r.header("Authorization") is not None for r in api_requests)


async def test_truncated_image_is_resumed(zs: Session, emulator: Emulator) -> None:
    """An image body cut short is fetched again; the bytes are complete and exact."""
    emulator.faults = FaultPlan.script("image", ["truncate", "truncate"])
    result = await zs.generate("cut short")
    assert result.image.data == await emulator.image_bytes(result.task.id)
    assert emulator.faults_injected["truncate"] == 2


async def test_truncated_save_leaves_complete_file(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """save() through a truncated body still writes the exact image, and only it."""
    handle = await zs.submit("cut short on disk")
    emulator.faults = FaultPlan.script("image", ["truncate"])
    (path,) = await handle.save(tmp_path)
    assert path.read_bytes() == await emulator.image_bytes(handle.id)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


async def test_known_expiry_raises_without_a_request(emulator: Emulator) -> None:
    """Past the link's known expiry, downloading raises before any image request."""
    async with Session(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        poll=FAST_POLL,
        retry=FAST_RETRY,
        link_ttl=1e-9,
    ) as session:
        handle = await session.submit("too late")
        await handle.wait()
        assert handle.expires_at is not None
        with pytest.raises(ImageExpiredError) as info:
            await handle
    assert "nothing was requested" in str(info.value)
    assert emulator.request_counts.get("image", 0) == 0


@pytest.mark.parametrize(
    "kind", [pytest.param("gone", id="410"), pytest.param("forbidden", id="403")]
)
async def test_expired_link_at_the_host_is_image_expired(odd_session: Session, kind: str) -> None:
    """An image host answering 403 or 410 is reported as ImageExpiredError."""
    with pytest.raises(ImageExpiredError) as info:
        await odd_session.generate(kind)
    assert "expired or is gone" in str(info.value)


async def test_link_expiry_stated_by_the_emulator_is_used(emulator: Emulator, zs: Session) -> None:
    """A link's own expires= parameter bounds the handle's expiry."""
    handle = await zs.submit("when does it expire")
    task = await handle.wait()
    assert handle.expires_at is not None
    assert "expires=" in task.results[0]
    assert handle.expires_at <= time.time() + 86400 + 1


async def test_debug_logs_never_show_the_key(
    odd_session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    """DEBUG logging of requests, retries and failures never contains the key."""
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ImageDownloadError) as info:
        await odd_session.generate("html")
    await odd_session.generate("ok")
    assert "/apiv1/v1/tasks/" in caplog.text
    assert KEY not in caplog.text
    assert KEY not in str(info.value) and KEY not in repr(info.value)


async def test_size_mismatch_warns(odd_session: Session, tmp_path: Path) -> None:
    """An image of other dimensions than requested gives ImageSizeWarning, and is kept."""
    with pytest.warns(ImageSizeWarning, match="asked for 640x400, got 400x400"):
        result = await odd_session.generate("ok", size="640x400")
    assert result.image.width == 400
    handle = await odd_session.submit("ok", size="3:2")
    with pytest.warns(ImageSizeWarning, match="asked for 3:2"):
        await handle.save(tmp_path)


async def test_matching_size_does_not_warn(odd_session: Session) -> None:
    """A square image for a 1:1 request passes without a warning (warnings are errors)."""
    result = await odd_session.generate("ok", size="1:1")
    assert result.image.height == 400


async def test_every_image_of_a_task_with_several_is_fetched_in_order(tmp_path: Path) -> None:
    """A task with three images: all three in memory and on disk, each exactly as served."""
    async with (
        Emulator(task_duration=0.05, images_per_task=3) as emu,
        Session(api_key=emu.api_key, base_url=emu.base_url, poll=FAST_POLL, retry=FAST_RETRY) as zs,
    ):
        handle = await zs.submit("three of them")
        result = await handle
        served = [await emu.image_bytes(handle.id, index) for index in range(3)]
        assert [image.index for image in result.images] == [0, 1, 2]
        assert [image.data for image in result.images] == served
        paths = await handle.save(tmp_path)
        assert [path.read_bytes() for path in paths] == served
