"""iter_bytes() does not count the caller's own time between chunks against any limit.

Its *timeout* bounds the wait and the download, and the session's ``image_timeout``
bounds one image's download; a consumer that takes its time with a chunk (writing it
to a slow disk, sending it on) is neither: a pause longer than either limit must not
end the stream, nor be blamed on the image host.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from zimage_async import Session
from zimage_async.emulator import Emulator

from .conftest import FAST_POLL, FAST_RETRY

PAUSE = 1.2  # the caller's pause after the first chunk, longer than the limits below
PADDING = 2_000_000  # the image is about 2 MB: several chunks


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    """An emulator whose images are padded to about 2 MB."""
    async with Emulator(task_duration=0.1, seed=4, image_padding_bytes=PADDING) as emulator:
        yield emulator


async def _slow_reader(chunks: AsyncIterator[bytes]) -> int:
    """Read every chunk, pausing once after the first; return the bytes read."""
    size = 0
    async for chunk in chunks:
        if not size:
            await asyncio.sleep(PAUSE)
        size += len(chunk)
    return size


async def test_a_pause_between_chunks_does_not_count_against_the_timeout(emu: Emulator) -> None:
    """iter_bytes(timeout=0.8) with a 1.2 s pause of the caller's: the whole image."""
    async with Session(
        api_key=emu.api_key, base_url=emu.base_url, poll=FAST_POLL, retry=FAST_RETRY
    ) as zs:
        handle = await zs.submit("a cat")
        await handle.wait()
        size = await asyncio.wait_for(_slow_reader(handle.iter_bytes(timeout=0.8)), 30)
    assert size > PADDING
    assert emu.request_counts.get("image", 0) == 1  # one download, not a resumed one


async def test_a_pause_between_chunks_does_not_count_against_the_image_timeout(
    emu: Emulator,
) -> None:
    """Session(image_timeout=0.8) with a 1.2 s pause of the caller's: the whole image."""
    async with Session(
        api_key=emu.api_key,
        base_url=emu.base_url,
        poll=FAST_POLL,
        retry=FAST_RETRY,
        image_timeout=0.8,
    ) as zs:
        handle = await zs.submit("a cat")
        await handle.wait()
        size = await asyncio.wait_for(_slow_reader(handle.iter_bytes(timeout=None)), 30)
    assert size > PADDING
    assert emu.request_counts.get("image", 0) == 1
