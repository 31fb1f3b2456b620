"""Cancellation and shutdown: no stray tasks, no partial files, no leaked connections."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

import zimage_async
from zimage_async import Session, TaskStatus, WaitTimeoutError
from zimage_async.emulator import Emulator, FaultPlan, FaultRule

from .conftest import settled, until

#: The SDK's own source folder, and the emulator's inside it (its server tasks are not ours).
PACKAGE = Path(zimage_async.__file__).parent
EMULATOR = PACKAGE / "emulator"


def _client_tasks() -> set[asyncio.Task[object]]:
    """Running tasks whose coroutine is the SDK's (the emulator's server tasks excluded)."""
    found = set()
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        path = Path(code.co_filename if code is not None else "")
        ours = path.is_relative_to(PACKAGE) and not path.is_relative_to(EMULATOR)
        if ours and not task.done():
            found.add(task)
    return found


async def test_cancelling_a_gather_of_waits_stops_all_polling(
    zs: Session, emulator: Emulator
) -> None:
    """Cancelling 100 pending waits leaves no task polling and no request in flight."""
    handles = [await zs.submit(f"long task {n} [[duration:30]]") for n in range(100)]
    waits = asyncio.gather(*(h.wait() for h in handles))
    await until(lambda: emulator.request_counts.get("task", 0) >= 100)
    waits.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waits
    assert _client_tasks() == set()
    # Reads already on the wire when the waits were cancelled may still land; after that,
    # over four poll intervals (FAST_POLL.wait_max is 0.05 s), none may follow.
    polls = await settled(lambda: emulator.request_counts["task"], quiet=0.2)
    # Every handle can still be used afterwards: the task goes on at the service.
    assert (await handles[0].refresh()).status in (TaskStatus.PENDING, TaskStatus.PROCESSING)
    assert await settled(lambda: emulator.request_counts["task"], quiet=0.2) == polls + 1
    assert len(emulator.ledger) == 100


async def test_breaking_out_of_updates_leaves_no_task(zs: Session) -> None:
    """Leaving updates() early cancels its poller; nothing keeps running."""
    handle = await zs.submit("watch briefly [[duration:30]]")
    async with contextlib.aclosing(handle.updates()) as updates:
        async for task in updates:
            assert task.id == handle.id
            break
    assert _client_tasks() == set()


async def test_cancelled_save_leaves_no_partial_file(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """A save cancelled while the image is on its way leaves the folder empty."""
    handle = await zs.submit("slow image")
    await handle.wait()
    emulator.faults = FaultPlan.script("image", [FaultRule(kind="slow", delay_seconds=30)])
    saving = asyncio.ensure_future(handle.save(tmp_path))
    await until(lambda: any(tmp_path.iterdir()))  # the temporary file exists
    saving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await saving
    assert list(tmp_path.iterdir()) == []


async def test_closing_the_session_mid_download_leaves_no_partial_file(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Closing the Session under a running save fails the save and leaves no file."""
    session = await Session(api_key=emulator.api_key, base_url=emulator.base_url).open()
    handle = await session.submit("closing time")
    await handle.wait(timeout=10.0)
    emulator.faults = FaultPlan.script("image", [FaultRule(kind="slow", delay_seconds=30)])
    saving = asyncio.ensure_future(handle.save(tmp_path))
    await until(lambda: any(tmp_path.iterdir()))
    await session.close()
    with pytest.raises(Exception):  # noqa: B017, PT011 - whichever error the close causes
        await saving
    assert list(tmp_path.iterdir()) == []


async def test_work_after_close_is_refused(zs: Session) -> None:
    """A handle whose Session was closed refuses to poll, with a RuntimeError."""
    handle = await zs.submit("orphan [[duration:30]]")
    await zs.close()
    with pytest.raises(RuntimeError, match="closed"):
        await handle.wait()


async def test_a_save_cut_by_its_timeout_has_stopped_when_it_raises(
    emulator: Emulator, zs: Session, tmp_path: Path
) -> None:
    """When save() raises its timeout, its download has ended: no task, slot or file left."""
    handle = await zs.submit("a save that runs out of time")
    await handle.wait()
    images = zs._transport._slots["images"]
    free = images.free
    emulator.faults = FaultPlan.script("image", [FaultRule(kind="slow", delay_seconds=3.0)])
    with pytest.raises(WaitTimeoutError) as caught:
        await handle.save(tmp_path, timeout=0.3)
    assert caught.value.stage == "download"
    names = [getattr(task.get_coro(), "__qualname__", "") for task in asyncio.all_tasks()]
    running = [name for name in names if name.startswith("Delivery.")]
    assert running == []
    assert images.free == free
    assert list(tmp_path.iterdir()) == []
