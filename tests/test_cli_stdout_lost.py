"""A standard output that cannot be written (a full disk, a reader gone): no traceback.

The command exits 1 with a message on stderr; `zimage generate`, whose image is already
saved and billed when it prints, names the task and the saved file there instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ._cli import redirected

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")

FAST = ["--emulator-task-duration", "0.05"]


@pytest.mark.parametrize("json", [True, False], ids=["json", "paths"])
async def test_generate_names_the_saved_image_when_stdout_is_full(
    tmp_path: Path, json: bool
) -> None:
    extra = ["--json"] if json else []
    status, stderr = await redirected(
        None, "> /dev/full", "generate", "a cat", "-o", "out/", *FAST, *extra, cwd=tmp_path
    )
    assert status == 1, stderr
    assert "Traceback" not in stderr
    [saved] = (tmp_path / "out").glob("*.png")
    task_id = saved.name.removesuffix("-0.png")
    assert "zimage: error: cannot write to stdout: No space left on device" in stderr
    assert f"task {task_id}" in stderr
    assert f"out/{saved.name}" in stderr


async def test_generate_names_the_saved_image_when_stdouts_reader_is_gone(
    tmp_path: Path,
) -> None:
    """`zimage generate ... | true`: the reader left before the path was printed."""
    _, stderr = await redirected(
        None, "| true", "generate", "a cat", "-o", "out/", *FAST, cwd=tmp_path
    )
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr
    [saved] = (tmp_path / "out").glob("*.png")
    assert f"out/{saved.name}" in stderr


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["tasks", "list", "--all", "--json"], id="tasks-list"),
        pytest.param(["tasks", "spend"], id="tasks-spend"),
        pytest.param(["info", "image.png"], id="info"),
    ],
)
async def test_other_commands_say_stdout_is_full(tmp_path: Path, args: list[str]) -> None:
    from PIL import Image as PILImage

    PILImage.new("RGB", (2, 2)).save(tmp_path / "image.png")
    status, stderr = await redirected(None, "> /dev/full", *args, cwd=tmp_path)
    assert status == 1, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    assert "zimage: error: cannot write to stdout: No space left on device" in stderr
