"""iter_bytes() on a handle that holds its images, and the words of its refusals.

Once ``await handle`` has the images in memory, ``iter_bytes(i)`` streams them from there,
without a request (so it works after the links expired, as ``save()`` does); a wrong
index says what is wrong with it; a link past the session's ``link_ttl`` names that
lifetime, not the service's default one.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator

import pytest

from zimage_async import ImageExpiredError, InvalidRequestError, Session
from zimage_async._imagefailure import lifetime_text
from zimage_async.emulator import Emulator, ManualClock

from .conftest import FAST_POLL, FAST_RETRY, OddHost, loopback_session


async def test_a_held_result_is_streamed_in_chunks_without_a_request(odd_host: OddHost) -> None:
    """After ``await handle``, iter_bytes() yields the held bytes in chunk-size pieces."""
    async with loopback_session(odd_host.base) as session:
        handle = await session.submit("huge")  # about 480 kB: more than one chunk
        result = await handle
        asked = len(odd_host.image_headers)
        chunks = [chunk async for chunk in handle.iter_bytes(0)]
        size = session._runtime.limits.chunk_size
    assert b"".join(chunks) == result.image.data
    assert len(chunks) == math.ceil(len(result.image.data) / size) > 1
    assert all(len(chunk) == size for chunk in chunks[:-1])
    assert len(odd_host.image_headers) == asked


@pytest.fixture
async def manual() -> AsyncIterator[tuple[Emulator, ManualClock]]:
    """An emulator on a manual clock (its links carry their expiry in clock time)."""
    clock = ManualClock(start=time.time())
    async with Emulator(clock=clock, task_duration=1.0, seed=4) as emu:
        yield emu, clock


async def test_a_held_result_is_streamed_after_its_links_expired(
    manual: tuple[Emulator, ManualClock],
) -> None:
    """The links are gone, the bytes are held: iter_bytes() yields them, as save() writes them."""
    emu, clock = manual
    async with Session(
        api_key=emu.api_key, base_url=emu.base_url, poll=FAST_POLL, retry=FAST_RETRY
    ) as session:
        handle = await session.submit("a cat")
        clock.advance(2)
        result = await handle
        clock.advance(86_400 + 60)
        asked = emu.request_counts.get("image", 0)
        data = b"".join([chunk async for chunk in handle.iter_bytes()])
        with pytest.raises(IndexError):
            async for _ in handle.iter_bytes(1):
                pass
    assert data == result.image.data
    assert emu.request_counts.get("image", 0) == asked


@pytest.mark.parametrize(
    ("index", "problem"),
    [
        pytest.param("0", "got a value of type str", id="str"),
        pytest.param(1.0, "got a value of type float", id="float"),
        pytest.param(True, "got a value of type bool", id="bool"),
        pytest.param(None, "got a value of type NoneType", id="none"),
        pytest.param(-1, "got -1", id="negative"),
    ],
)
async def test_a_wrong_index_says_what_is_wrong_with_it(
    zs: Session, index: object, problem: str
) -> None:
    """The type of an index that is no int is named, as for a timeout; the rule reads well."""
    handle = zs.task("task-unified-1-abc")
    with pytest.raises(InvalidRequestError) as info:
        async for _ in handle.iter_bytes(index):  # type: ignore[arg-type]
            pass
    assert info.value.field == "index"
    assert info.value.problem.startswith(problem)
    assert "...." not in str(info.value)


async def test_an_expired_link_names_the_sessions_link_ttl(odd_host: OddHost) -> None:
    """A link past a 0.05 s link_ttl says so, not "24 hours"; nothing is requested."""
    async with loopback_session(odd_host.base, link_ttl=0.05) as session:
        handle = await session.submit("ok")
        await handle.wait()
        await asyncio.sleep(0.1)
        with pytest.raises(ImageExpiredError) as info:
            await handle
    assert "valid for 0.05 s after completion" in str(info.value)
    assert "24 hours" not in str(info.value)
    assert odd_host.image_headers == []


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        pytest.param(86_400.0, "24 hours", id="the-service"),
        pytest.param(3_600.0, "1 hour", id="an-hour"),
        pytest.param(90.0, "90 s", id="seconds"),
        pytest.param(0.05, "0.05 s", id="a-fraction"),
    ],
)
def test_lifetime_text(seconds: float, text: str) -> None:
    """A lifetime of whole hours is said in hours, any other in seconds."""
    assert lifetime_text(seconds) == text


@pytest.mark.parametrize("timeout", ["10", -5, math.nan])
async def test_a_bad_timeout_is_refused_when_the_images_are_held_too(
    odd_host: OddHost, timeout: object
) -> None:
    """iter_bytes(timeout=...) is checked before the held bytes are streamed, as before a wait."""
    async with loopback_session(odd_host.base) as session:
        handle = await session.submit("cat")
        await handle
        with pytest.raises(InvalidRequestError) as caught:
            async for _ in handle.iter_bytes(0, timeout=timeout):  # type: ignore[arg-type]
                pass
    assert caught.value.field == "timeout"
