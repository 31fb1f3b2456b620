"""Awaiting, polling, streaming and saving through TaskHandle, on the emulator."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import io
import logging
import weakref
from pathlib import Path

import pytest
from PIL import Image as PILImage

from zimage_async import (
    NoResultsError,
    PollSchedule,
    Session,
    TaskFailedError,
    TaskHandle,
    TaskStatus,
    WaitTimeoutError,
)
from zimage_async.emulator import Emulator, FaultPlan, FaultRule

from .conftest import FAST_RETRY


async def test_submit_returns_a_pending_handle(zs: Session, emulator: Emulator) -> None:
    """submit() creates one billed task and returns its first snapshot."""
    handle = await zs.submit("a cute cat", size="16:9", seed=7)
    assert isinstance(handle, TaskHandle)
    assert handle.id.startswith("task-unified-")
    assert handle.status is TaskStatus.PENDING
    assert handle.progress == 0
    assert [entry.task_id for entry in emulator.ledger] == [handle.id]


async def test_await_returns_verified_image(zs: Session, emulator: Emulator) -> None:
    """Awaiting a handle gives the image bytes the emulator serves, with their size."""
    handle = await zs.submit("a cute cat", size="16:9", seed=7)
    result = await handle
    image = result.images[0]
    assert result.task.status is TaskStatus.COMPLETED
    assert image.data == await emulator.image_bytes(handle.id)
    assert (image.content_type, image.width, image.height) == ("image/png", 1280, 720)
    assert PILImage.open(io.BytesIO(image.data)).size == (1280, 720)


async def test_custom_size_is_honoured(zs: Session) -> None:
    """A WIDTHxHEIGHT size yields an image of exactly that size."""
    result = await zs.generate("a wide field", size="640x400")
    assert (result.image.width, result.image.height) == (640, 400)


async def test_awaiting_twice_reuses_the_result(zs: Session, emulator: Emulator) -> None:
    """A handle awaited twice downloads once and returns the same result."""
    handle = await zs.submit("twice")
    first = await handle
    images_before = emulator.request_counts["image"]
    assert await handle is first
    assert emulator.request_counts["image"] == images_before


async def test_concurrent_awaits_share_one_poll_loop(zs: Session, emulator: Emulator) -> None:
    """Ten coroutines awaiting one handle poll no more than one would."""
    handle = await zs.submit("shared")
    results = await asyncio.gather(*(handle.wait() for _ in range(10)))
    assert {r.id for r in results} == {handle.id}
    alone = await zs.submit("alone")
    polls_before = emulator.request_counts["task"]
    await alone.wait()
    polls_alone = emulator.request_counts["task"] - polls_before
    assert polls_alone >= 1
    assert polls_before <= polls_alone * 3


async def test_gather_hundreds_bills_each_once(zs: Session, emulator: Emulator) -> None:
    """A gather of 200 generations delivers 200 images and bills 200 tasks."""
    prompts = [f"prompt number {n}" for n in range(200)]
    results = await asyncio.gather(*(zs.generate(p, size="1:2") for p in prompts))
    assert len(results) == 200
    billed = [str(entry.request_body["prompt"]) for entry in emulator.ledger]
    assert sorted(billed) == sorted(prompts)
    for result in results[:5]:
        assert result.image.data == await emulator.image_bytes(result.task.id)


async def test_failed_task_raises_task_failed(zs: Session) -> None:
    """A task failing with a known code raises TaskFailedError with its advice."""
    handle = await zs.submit("a cat [[fail:content_policy_violation]]")
    with pytest.raises(TaskFailedError) as info:
        await handle
    assert info.value.code == "content_policy_violation"
    assert info.value.task_id == handle.id
    assert info.value.resubmit_may_help is False
    assert handle.status is TaskStatus.FAILED


@pytest.mark.parametrize(
    ("code", "may_help"),
    [
        pytest.param("service_error", True, id="transient"),
        pytest.param("generation_timeout", True, id="timeout"),
        pytest.param("brand_new_code", False, id="unknown-code"),
    ],
)
async def test_failure_codes_say_whether_to_resubmit(
    zs: Session, code: str, may_help: bool
) -> None:
    """Each failure code says whether resubmitting can help; unknown codes are kept."""
    with pytest.raises(TaskFailedError) as info:
        await zs.generate(f"x [[fail:{code}]]")
    assert info.value.code == code
    assert info.value.resubmit_may_help is may_help


async def test_deadline_raises_and_handle_resumes(emulator: Emulator) -> None:
    """A wait past its deadline raises WaitTimeoutError; awaiting again finishes."""
    async with Session(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        retry=FAST_RETRY,
        poll=PollSchedule(wait_min=0.01, wait_max=0.05, timeout=0.05),
    ) as session:
        handle = await session.submit("slow one [[duration:0.6]]")
        with pytest.raises(WaitTimeoutError) as info:
            await handle.wait()
        assert isinstance(info.value, TimeoutError)
        assert info.value.task_id == handle.id
        task = await handle.wait(timeout=10.0)
        assert task.status is TaskStatus.COMPLETED
    assert len(emulator.ledger) == 1


async def test_resume_from_stored_id(emulator: Emulator, zs: Session) -> None:
    """A handle rebuilt from a stored id, in a new session, finishes the task."""
    task_id = (await zs.submit("keep my id")).id
    async with Session(api_key=emulator.api_key, base_url=emulator.base_url) as other:
        handle = other.task(task_id)
        assert handle.task is None and handle.status is None
        result = await handle.result(timeout=10.0)
    assert result.image.data == await emulator.image_bytes(task_id)
    assert len(emulator.ledger) == 1


async def test_updates_report_rising_progress(zs: Session) -> None:
    """updates() yields snapshots with non-decreasing progress, ending completed."""
    handle = await zs.submit("watch me [[duration:0.4]]")
    seen = [task async for task in handle.updates()]
    assert seen[0].status is TaskStatus.PENDING
    assert seen[-1].status is TaskStatus.COMPLETED
    progress = [task.progress for task in seen]
    assert progress == sorted(progress)
    assert len(seen) >= 3


async def test_two_updates_loops_of_one_handle_see_the_same_changes(zs: Session) -> None:
    """Two ``updates()`` at once share the handle's looks: each sees every change, in order."""
    handle = await zs.submit("watched twice [[duration:0.4]]")

    async def watch() -> list[tuple[str, int]]:
        return [(task.raw_status, task.progress) async for task in handle.updates(timeout=10)]

    first, second = await asyncio.gather(watch(), watch())
    assert first[0][0] == "pending" and first[-1] == ("completed", 100)
    assert len(first) >= 3
    assert second == first


async def test_updates_end_on_failure_without_raising(zs: Session) -> None:
    """A failed task ends updates() with its failed snapshot."""
    handle = await zs.submit("x [[fail:service_error]]")
    seen = [task async for task in handle.updates()]
    assert seen[-1].status is TaskStatus.FAILED


async def test_iter_bytes_streams_the_whole_image(zs: Session, emulator: Emulator) -> None:
    """iter_bytes() yields chunks that add up to the served image."""
    handle = await zs.submit("stream me", size="1:1")
    digest = hashlib.sha256()
    chunks = 0
    async for chunk in handle.iter_bytes():
        digest.update(chunk)
        chunks += 1
    assert digest.hexdigest() == hashlib.sha256(await emulator.image_bytes(handle.id)).hexdigest()
    assert chunks >= 1


async def test_save_to_directory_names_files_by_task(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """save() into a directory writes <task id>-0.png and nothing else."""
    handle = await zs.submit("save me")
    paths = await handle.save(f"{tmp_path}/out/")
    assert paths == [tmp_path / "out" / f"{handle.id}-0.png"]
    assert paths[0].read_bytes() == await emulator.image_bytes(handle.id)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{handle.id}-0.png"]


async def test_save_to_bare_name_makes_a_directory(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """save("out") with no extension treats out as a directory, created on demand."""
    handle = await zs.submit("bare name")
    (path,) = await handle.save(tmp_path / "out")
    assert path == tmp_path / "out" / f"{handle.id}-0.png"


async def test_save_to_file_path(zs: Session, emulator: Emulator, tmp_path: Path) -> None:
    """save() to a file path writes exactly that file."""
    handle = await zs.submit("save me here")
    await handle
    (path,) = await handle.save(tmp_path / "cat.png")
    assert path == tmp_path / "cat.png"
    assert path.read_bytes() == await emulator.image_bytes(handle.id)


async def test_unknown_status_keeps_polling(
    emulator: Emulator, zs: Session, caplog: pytest.LogCaptureFixture
) -> None:
    """An undocumented status is logged and treated as not finished."""
    from zimage_async.emulator import FaultPlan

    emulator.faults = FaultPlan.script("task", ["unknown_status", "unknown_status"])
    caplog.set_level(logging.WARNING, logger="zimage_async")
    result = await zs.generate("forward compatible [[duration:0.5]]")
    assert result.task.status is TaskStatus.COMPLETED
    assert "unknown status 'queued'" in caplog.text


@pytest.mark.parametrize("shape", ["null", "empty", "missing"])
async def test_completed_without_links_raises_no_results(
    zs: Session, emulator: Emulator, shape: str
) -> None:
    """A task that completes without links raises NoResultsError, and no poll follows it."""
    handle = await zs.submit(f"a cat [[results:{shape}]]")
    with pytest.raises(NoResultsError) as info:
        await handle
    assert info.value.task_id == handle.id
    assert handle.status is TaskStatus.COMPLETED
    polls = emulator.request_counts["task"]
    with pytest.raises(NoResultsError):
        await handle.save()
    assert emulator.request_counts["task"] == polls
    assert emulator.request_counts.get("image", 0) == 0


async def test_cancelled_task_raises_request_cancelled(zs: Session) -> None:
    """A task the service cancels ends the wait with TaskFailedError request_cancelled."""
    handle = await zs.submit("a cat [[cancel]]")
    with pytest.raises(TaskFailedError) as info:
        await handle
    assert info.value.code == "request_cancelled"
    assert handle.status is TaskStatus.CANCELLED


async def test_null_fields_on_every_poll_still_complete(zs: Session, emulator: Emulator) -> None:
    """Every optional field sent as null on every reply still ends in the image."""
    emulator.faults = FaultPlan.random(FaultRule(kind="null_fields", null_shape="absent"))
    result = await zs.generate("a cat")
    assert result.image.data == await emulator.image_bytes(result.task.id)


async def test_error_as_string_keeps_raw_error(zs: Session, emulator: Emulator) -> None:
    """A failed task whose error is a bare string raises unknown_error with the raw value."""
    emulator.faults = FaultPlan.script(
        "task", [FaultRule(kind="null_fields", null_shape="error_string")]
    )
    with pytest.raises(TaskFailedError) as info:
        await zs.generate("a cat [[fail:service_error]]")
    assert info.value.code == "unknown_error"
    assert isinstance(info.value.raw_error, str)
    assert info.value.message == info.value.raw_error


@pytest.mark.parametrize("how", ["await", "wait", "save", "updates", "iter_bytes"])
async def test_a_finished_handle_is_freed_without_the_cycle_collector(
    zs: Session, tmp_path: Path, how: str
) -> None:
    """A handle dropped after its wait leaves no reference cycle behind.

    With thousands of handles in flight, every handle caught in a cycle (with its
    snapshots, schedule and images) waits for a full collection, which then has all of
    them to walk. Here the cycle collector is off: the handle must go as soon as the
    last reference to it does.
    """
    gc.collect()
    gc.disable()
    try:
        handle = await zs.submit(f"freed after {how}")
        if how == "await":
            await handle
        elif how == "wait":
            await handle.wait()
        elif how == "save":
            await handle.save(tmp_path)
        elif how == "updates":
            async for _ in handle.updates():
                pass
        else:
            async for _ in handle.iter_bytes():
                pass
        freed = weakref.ref(handle)
        del handle
        assert freed() is None
    finally:
        gc.enable()


async def test_waiting_inside_updates_returns_when_the_task_ends(zs: Session) -> None:
    """``handle.wait()`` inside ``async for ... in handle.updates()`` is not held up by it."""
    handle = await zs.submit("waited for inside its own updates [[duration:0.3]]")
    async with contextlib.aclosing(handle.updates(timeout=10)) as updates:
        async for snapshot in updates:
            assert not snapshot.is_terminal
            task = await handle.wait(timeout=5)
            break
    assert task.status is TaskStatus.COMPLETED


async def test_an_updates_consumer_between_snapshots_does_not_hold_up_a_wait(
    zs: Session,
) -> None:
    """Between snapshots of ``updates()``, another wait goes on; the loop ends with its end."""
    handle = await zs.submit("two ways of waiting [[duration:0.3]]")
    async with contextlib.aclosing(handle.updates(timeout=10)) as updates:
        first = await updates.__anext__()
        task = await handle.wait(timeout=5)
        rest = [snapshot async for snapshot in updates]
    assert not first.is_terminal
    assert task.status is TaskStatus.COMPLETED
    assert rest[-1] is task
