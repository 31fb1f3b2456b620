"""A batch ended by an error names every billed task it leaves unsettled.

Without a journal file nothing else remembers those tasks: the error is the caller's
only way to collect them. A Session closed mid-batch named one task of three; a disk
that refused an image raised a bare ``OSError`` naming no item and no task.
"""

from __future__ import annotations

import asyncio
import errno
import pickle
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from zimage_async import JournalError, Session
from zimage_async import _delivery as delivery_module
from zimage_async._batchverdicts import left_unsettled
from zimage_async.emulator import Emulator
from zimage_async.pytest_plugin import EmulatorFactory

from .conftest import FAST_POLL, FAST_RETRY, until


def _session(emulator: Emulator) -> Session:
    return Session(
        api_key=emulator.api_key, base_url=emulator.base_url, poll=FAST_POLL, retry=FAST_RETRY
    )


def _assert_names_every_billed_task(emulator: Emulator, message: str) -> None:
    billed = [entry.task_id for entry in emulator.ledger]
    assert billed
    for task_id in billed:
        assert f"{task_id} (item " in message  # the task and its item
    assert "session.task(" in message


async def test_a_session_closed_mid_batch_names_every_task_in_flight(
    zimage_emulator_factory: EmulatorFactory,
) -> None:
    """Three items have tasks when the Session closes: the error names all three."""
    emulator = await zimage_emulator_factory(task_duration=5.0, seed=1)
    zs = _session(emulator)
    await zs.__aenter__()

    async def consume() -> None:
        async with zs.generate_many([f"a boat {n}" for n in range(6)], concurrency=3) as batch:
            async for _ in batch:
                pass

    consumer = asyncio.ensure_future(consume())
    try:
        await until(lambda: len(emulator.ledger) == 3)
        await asyncio.sleep(0.1)  # their ids are recorded: the waits have begun
    finally:
        await zs.close()
    with pytest.raises(RuntimeError) as caught:  # SessionClosedError
        await asyncio.wait_for(consumer, 20)
    assert len(emulator.ledger) == 3
    _assert_names_every_billed_task(emulator, str(caught.value))


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every image write fails as a full disk does (ENOSPC), after the task is made."""

    async def refused(
        folder: Path,
        chunks: AsyncIterator[bytes],
        *,
        durable: bool = False,
        shown: Path | None = None,
    ) -> Path:
        async for _ in chunks:
            break
        raise OSError(errno.ENOSPC, "No space left on device", str(shown or folder))

    monkeypatch.setattr(delivery_module, "write_atomically", refused)


@pytest.mark.parametrize("journal", [False, True], ids=["in-memory", "journal-file"])
async def test_a_disk_that_refuses_an_image_names_every_billed_task(
    emulator: Emulator, zs: Session, tmp_path: Path, full_disk: None, journal: bool
) -> None:
    """The OSError keeps its type and errno, and names each created task and its item."""
    options: dict[str, object] = {"output_dir": tmp_path / "out"}
    if journal:
        options["journal"] = tmp_path / "j.sqlite"

    async def run() -> None:
        prompts = [f"a boat {n}" for n in range(6)]
        async with zs.generate_many(prompts, concurrency=3, **options) as batch:  # type: ignore[arg-type]
            async for _ in batch:
                pass

    with pytest.raises(OSError, match="No space left") as caught:
        await run()
    assert caught.value.errno == errno.ENOSPC
    assert "No space left on device" in str(caught.value)
    _assert_names_every_billed_task(emulator, str(caught.value))


def test_the_note_keeps_an_os_error_whole() -> None:
    """Type, errno and file name stay; the tasks are in ``str()`` and survive pickling."""
    error = FileExistsError(errno.EEXIST, "File exists", "/out/0001-a-cat-0.png")
    noted = left_unsettled(error, {2: "task-b", 0: "task-a"})
    assert noted is error
    assert (error.errno, error.filename) == (errno.EEXIST, "/out/0001-a-cat-0.png")
    assert "task-a (item 0), task-b (item 2)" in str(error)
    copied = pickle.loads(pickle.dumps(error))  # noqa: S301 (our own bytes)
    assert type(copied) is FileExistsError
    assert "task-b (item 2)" in str(copied)


def test_a_task_the_error_names_with_its_item_is_not_repeated() -> None:
    """An error of ``all_unrecorded`` names its tasks already: only the others are added."""
    error = JournalError("the journal failed; 1 task(s) ... recorded: task-a (item 0) - collect")
    left_unsettled(error, {0: "task-a", 1: "task-b"})
    assert str(error).count("task-a") == 1
    assert "1 created task(s)" in str(error)
    assert "task-b (item 1)" in str(error)
    unchanged = JournalError("task task-a (item 0) is recorded in the journal")
    assert str(left_unsettled(unchanged, {0: "task-a"})) == str(unchanged)


def test_an_error_without_a_message_gets_the_tasks_as_a_note() -> None:
    """An error whose ``str()`` is not its one message keeps its arguments as they were."""
    error = KeyError("slot")
    left_unsettled(error, {3: "task-c"})
    assert error.args == ("slot",)
    notes = getattr(error, "__notes__", [])
    assert any("task-c (item 3)" in note for note in notes)
