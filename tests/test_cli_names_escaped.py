r"""A file name with a newline (or another control character) is shown escaped on every line.

docs/cli.md: a file name is shown escaped, a newline as ``\n``. The messages' own line
breaks stay; a name's cannot forge a line (here a fake ``zimage: error:`` one).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image as PILImage

from zimage_async import Session
from zimage_async.emulator import Emulator

from ._cli import ended, start

#: What a hostile name tries to pass for: a line of its own.
FORGED = "zimage: error: forged"
#: A name holding a newline, then a forged message, and an ESC.
HOSTILE = f"evil\n{FORGED}\x1b[31m"
#: The same, as the command must show it.
ESCAPED = f"evil\\n{FORGED}\\x1b[31m"


def _unforged(*texts: str) -> None:
    """No line of *texts* is the forged one, or starts with the rest of the name."""
    for text in texts:
        for line in text.splitlines():
            assert not line.startswith((FORGED, "forged")), line
            assert "\x1b" not in line, line


@pytest.fixture
async def quick() -> AsyncIterator[Emulator]:
    async with Emulator(task_duration=0.05) as emu:
        yield emu


async def test_info_escapes_the_name_of_the_file_it_reads(tmp_path: Path) -> None:
    image = tmp_path / f"{HOSTILE}.png"
    PILImage.new("RGB", (4, 3)).save(image, format="PNG")
    status, stdout, stderr = await ended(await start(None, "info", image))
    assert status == 0, stderr
    assert stdout.splitlines()[0] == f"{tmp_path}/{ESCAPED}.png: image/png, 4 x 3"
    _unforged(stdout, stderr)


async def test_info_escapes_the_name_of_a_file_it_cannot_read(tmp_path: Path) -> None:
    missing = tmp_path / f"{HOSTILE}.png"
    status, stdout, stderr = await ended(await start(None, "info", missing))
    assert status == 2
    assert f"zimage: error: cannot read {tmp_path}/{ESCAPED}.png: " in stderr
    _unforged(stdout, stderr)


async def test_generate_escapes_the_saved_path(tmp_path: Path) -> None:
    """The path printed on stdout (no key: the in-process emulator)."""
    folder = tmp_path / HOSTILE
    status, stdout, stderr = await ended(
        await start(
            None, "generate", "a cat", "-o", f"{folder}/", "--emulator-task-duration", "0.05"
        )
    )
    assert status == 0, stderr
    [line] = stdout.splitlines()
    assert line.startswith(f"{tmp_path}/{ESCAPED}/task-")
    _unforged(stdout, stderr)


@pytest.mark.parametrize("command", ["generate", "task"])
async def test_a_refused_output_is_named_escaped(
    quick: Emulator, tmp_path: Path, command: str
) -> None:
    """-o under a regular file whose name holds a newline: the refusal shows it escaped."""
    (tmp_path / HOSTILE).write_text("a file\n")
    output = f"{HOSTILE}/x.png"
    if command == "generate":
        args: list[str | Path] = ["generate", "a cat", "-o", output, "--no-journal"]
    else:
        async with Session(api_key=quick.api_key, base_url=quick.base_url) as zs:
            handle = await zs.submit("a cat")
        args = ["task", handle.id, "-o", output]
    status, stdout, stderr = await ended(await start(quick, *args, cwd=tmp_path))
    assert status == 2, stderr
    assert f"zimage: error: -o {ESCAPED}/x.png: " in stderr
    _unforged(stdout, stderr)


@pytest.mark.parametrize("subcommand", ["list", "spend"])
async def test_tasks_escape_the_journal_name(tmp_path: Path, subcommand: str) -> None:
    journal = tmp_path / f"{HOSTILE}.sqlite"
    status, stdout, stderr = await ended(
        await start(None, "tasks", subcommand, "--journal", journal)
    )
    assert status == 0, stderr
    assert f"{ESCAPED}.sqlite" in stderr + stdout
    _unforged(stdout, stderr)


async def test_tasks_collect_escapes_its_output_folder(quick: Emulator, tmp_path: Path) -> None:
    (tmp_path / HOSTILE).write_text("a file\n")
    status, stdout, stderr = await ended(
        await start(quick, "tasks", "collect", "-o", tmp_path / HOSTILE / "sub")
    )
    assert status == 2, stderr
    assert f"{ESCAPED}/sub" in stderr
    _unforged(stdout, stderr)
