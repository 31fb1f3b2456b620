"""`zimage generate`: its output checked before the billed create, and failures after it.

Once a task exists it is billed: whatever then fails (a download, a file that cannot be
written), the command says how to collect it, without a traceback. An output location
that cannot be written is refused before the create (exit 2, nothing sent).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from zimage_async.emulator import Emulator, FaultPlan, FaultRule, ManualClock

from ._cli import created_and_polled, start
from .test_cli_display import hostile, zimage

__all__ = ["hostile"]  # the fixture of a server sending hostile strings


async def finished(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
    """Wait for *process* to end; return its status, stdout and stderr."""
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, stdout.decode(), stderr.decode()


@pytest.fixture
async def frozen() -> AsyncIterator[tuple[Emulator, ManualClock]]:
    """An emulator whose tasks finish only when its clock is advanced."""
    clock = ManualClock(start=time.time())
    async with Emulator(clock=clock, task_duration=1.0) as emu:
        yield emu, clock


async def test_a_download_failure_after_the_create_says_how_to_collect(tmp_path: Path) -> None:
    """The image host answers 500: exit 1, the error, and the commands that collect it."""
    async with Emulator(task_duration=0.05) as emu:
        emu.faults = FaultPlan.random(FaultRule(kind="http_500", endpoint="image"))
        process = await start(emu, "generate", "a cat", "-o", tmp_path, "--no-journal")
        status, _, stderr = await finished(process)
        task_id = emu.ledger[0].task_id
    assert status == 1
    assert "ImageDownloadError" in stderr
    assert f"zimage task {task_id} -o {tmp_path}" in stderr
    assert "keeps running" in stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize("hostile", ["failmsg"], indirect=True)
async def test_a_failed_task_prints_no_collect_hint(hostile: str, tmp_path: Path) -> None:
    """A task that failed has nothing to collect: its error, and no hint."""
    status, _, stderr = await zimage(
        "generate", "a cat", "-o", tmp_path, "--no-journal", base_url=hostile
    )
    assert status == 1
    assert "TaskFailedError" in stderr
    assert "zimage task " not in stderr and "keeps running" not in stderr


@pytest.mark.parametrize(
    "output",
    [
        pytest.param("file/x.png", id="parent-is-a-file"),
        pytest.param("a" * 300 + ".png", id="name-too-long"),
        # 255 bytes: a task of several images (-<n>), or a JPEG (.jpeg), would not fit
        pytest.param("a" * 251 + ".png", id="name-too-long-for-its-variants"),
        pytest.param("file/sub/", id="folder-under-a-file"),
    ],
)
async def test_an_output_that_cannot_be_written_is_refused_before_the_create(
    frozen: tuple[Emulator, ManualClock], tmp_path: Path, output: str
) -> None:
    """-o under a regular file, or a name too long: exit 2, no create, no traceback."""
    emu, _ = frozen
    (tmp_path / "file").write_text("not a folder\n")
    process = await start(emu, "generate", "a cat", "-o", output, "--no-journal", cwd=tmp_path)
    status, _, stderr = await finished(process)
    assert status == 2, stderr
    assert "Traceback" not in stderr
    assert "-o" in stderr
    assert emu.request_counts.get("create", 0) == 0
    assert not emu.ledger


async def test_a_file_error_after_the_create_says_how_to_collect(
    frozen: tuple[Emulator, ManualClock], tmp_path: Path
) -> None:
    """The folder becomes a file while the task runs: exit 1, the error and the hint."""
    emu, clock = frozen
    out = tmp_path / "out"
    out.mkdir()
    process = await start(emu, "generate", "a cat", "-o", f"{out}/", "--no-journal")
    task_id = await created_and_polled(emu)
    out.rmdir()
    out.write_text("now a file\n")
    clock.advance(5.0)
    status, _, stderr = await finished(process)
    assert status == 1
    assert "Traceback" not in stderr
    assert "error:" in stderr and str(out) in stderr
    assert f"zimage task {task_id} -o {out}/" in stderr


async def test_ctrl_c_during_the_create_names_the_output_folder_to_collect_into(
    tmp_path: Path,
) -> None:
    """-o out/fox.png, interrupted while creating: the command to collect says -o out.

    It said ``-o .``: the image would have been saved in the current folder instead.
    """
    async with Emulator(task_duration=0.05) as emu:
        emu.faults = FaultPlan.script("create", [FaultRule(kind="slow", delay_seconds=30)])
        process = await start(
            emu, "generate", "a cat", "-o", "out/fox.png", "--journal", "j.sqlite", cwd=tmp_path
        )
        await asyncio.sleep(2.0)  # the create is on its way: the emulator holds it
        process.send_signal(signal.SIGINT)
        status, _, stderr = await finished(process)
    assert status == 130, stderr
    assert "collect -o out --resubmit-uncertain" in stderr, stderr
    assert "-o . " not in stderr and not stderr.rstrip().endswith("-o .")
