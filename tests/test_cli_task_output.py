"""`zimage task ID -o PATH`: the output checked before any request, failures told, --json kept.

``-o`` is "as for generate": a path whose images could not be written is refused with
exit 2 and a message before the task is even looked at (it was a traceback), and a file
that cannot be written once the task is done ends with exit 1 and the error. With
``--json``, the task's record is printed whatever the outcome, as ``--wait --json`` does.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from zimage_async import Session
from zimage_async.emulator import Emulator, ManualClock

from ._cli import ended, start
from .conftest import until


async def _task(emu: Emulator, prompt: str = "a cat") -> str:
    """Create a task at *emu* (with no journal); return its id."""
    async with Session(api_key=emu.api_key, base_url=emu.base_url) as zs:
        handle = await zs.submit(prompt)
    return handle.id


@pytest.fixture
async def quick() -> AsyncIterator[Emulator]:
    async with Emulator(task_duration=0.05) as emu:
        yield emu


@pytest.mark.parametrize(
    "output",
    [
        pytest.param("afile/x.png", id="name-under-a-file"),
        pytest.param("afile/", id="folder-that-is-a-file"),
        pytest.param("afile/sub/", id="folder-under-a-file"),
        pytest.param("/proc/x.png", id="folder-that-takes-no-file"),
    ],
)
async def test_an_output_that_cannot_be_written_is_refused_before_any_request(
    quick: Emulator, tmp_path: Path, output: str
) -> None:
    """Exit 2 with a message naming -o, no traceback, and the task is not even looked at."""
    task_id = await _task(quick)
    (tmp_path / "afile").write_text("a file, not a folder\n")
    polls = quick.request_counts.get("task", 0)
    process = await start(quick, "task", task_id, "-o", output, "--json", cwd=tmp_path)
    status, stdout, stderr = await ended(process)
    assert status == 2, stderr
    assert "Traceback" not in stderr
    assert f"zimage: error: -o {output}: " in stderr
    assert stdout == ""
    assert quick.request_counts.get("task", 0) == polls


async def test_a_file_that_cannot_be_written_after_the_wait_is_told_without_a_traceback(
    tmp_path: Path,
) -> None:
    """The folder becomes a file while the task runs: exit 1, the error, the JSON record."""
    clock = ManualClock(start=time.time())
    async with Emulator(clock=clock, task_duration=1.0) as emu:
        task_id = await _task(emu)
        out = tmp_path / "out"
        out.mkdir()
        process = await start(emu, "task", task_id, "-o", f"{out}/", "--json")
        await until(lambda: emu.request_counts.get("task", 0) >= 1, deadline=30)
        out.rmdir()
        out.write_text("now a file\n")
        clock.advance(5.0)
        status, stdout, stderr = await ended(process)
    assert status == 1, stderr
    assert "Traceback" not in stderr
    assert f"zimage: error: cannot save the image(s) of task {task_id}: " in stderr
    record = json.loads(stdout)
    assert (record["id"], record["status"], record["paths"]) == (task_id, "completed", [])


@pytest.mark.parametrize(
    ("prompt", "error"),
    [
        pytest.param("a cat [[fail:service_error]]", {"code": "service_error"}, id="failed"),
        pytest.param("a cat [[results:empty]]", None, id="no-image-link"),
    ],
)
async def test_task_o_json_prints_the_record_of_a_task_that_gave_no_image(
    quick: Emulator, tmp_path: Path, prompt: str, error: dict[str, str] | None
) -> None:
    """`task ID -o out/ --json` prints the task's record (it printed nothing), and exits 1."""
    task_id = await _task(quick, prompt)
    process = await start(quick, "task", task_id, "-o", tmp_path / "out", "--json")
    status, stdout, stderr = await ended(process)
    assert status == 1, stderr
    record = json.loads(stdout)
    assert record["id"] == task_id
    assert record["paths"] == []
    if error is None:
        assert (record["status"], record["error"], record["image_links"]) == ("completed", None, 0)
    else:
        assert record["status"] == "failed"
        assert record["error"]["code"] == error["code"]
    assert "Traceback" not in stderr
