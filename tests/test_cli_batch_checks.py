"""`zimage batch`: its options checked before anything is sent.

A contact sheet may not replace a file the batch needs (its journal, its prompt file,
an image it saves or saved); a refused ``--name`` or ``--size`` is a usage error naming
the option (exit 2, nothing sent).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from ._cli import cli_env

FAST = ("--emulator-task-duration", "0")


async def zimage(*args: str | Path, cwd: Path) -> tuple[int, str, str]:
    """Run the command line on the in-process emulator, in *cwd*."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "zimage_async",
        *map(str, args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(),
        cwd=cwd,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, stdout.decode(), stderr.decode()


def images(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.png")) if folder.is_dir() else []


@pytest.mark.parametrize(
    ("options", "sheet"),
    [
        pytest.param(["--journal", "out/run.png"], "out/run.png", id="the-journal"),
        pytest.param([], "p.png", id="the-prompt-file"),
        pytest.param([], "out/0001-a-cat-0.png", id="an-image-of-the-batch"),
        pytest.param([], "./out/../out/0002-a-dog-0.webp", id="an-image-by-another-path"),
        pytest.param(["--name", "{number}-cat-{index}"], "out/2-cat-0.png", id="a-named-image"),
    ],
)
async def test_a_contact_sheet_that_would_replace_a_batch_file_is_refused(
    tmp_path: Path, options: list[str], sheet: str
) -> None:
    """The sheet names the journal, the prompt file or an image name: exit 2, nothing sent."""
    (tmp_path / "p.png").write_text("a cat\na dog\n")
    status, _, stderr = await zimage(
        "batch", "p.png", "-o", "out", *options, "--contact-sheet", sheet, *FAST, cwd=tmp_path
    )
    assert status == 2, stderr
    assert "--contact-sheet" in stderr
    assert images(tmp_path / "out") == []
    assert (tmp_path / "p.png").read_text() == "a cat\na dog\n"


async def test_a_contact_sheet_over_an_image_the_journal_saved_is_refused(tmp_path: Path) -> None:
    """An image saved by an earlier run, under other names, is not replaced."""
    (tmp_path / "p.txt").write_text("a cat\na dog\n")
    status, _, stderr = await zimage("batch", "p.txt", "-o", "out", *FAST, cwd=tmp_path)
    assert status == 0, stderr
    saved = tmp_path / "out" / "0001-a-cat-0.png"
    before = saved.read_bytes()
    status, _, stderr = await zimage(
        "batch",
        "p.txt",
        "-o",
        "out",
        "--name",
        "img{number}x{index}",
        "--contact-sheet",
        "out/0001-a-cat-0.png",
        *FAST,
        cwd=tmp_path,
    )
    assert status == 2, stderr
    assert "--contact-sheet" in stderr
    assert saved.read_bytes() == before


async def test_a_contact_sheet_elsewhere_is_written(tmp_path: Path) -> None:
    """A sheet beside the images, under a name the batch never gives, is written."""
    (tmp_path / "p.txt").write_text("a cat\na dog\n")
    status, _, stderr = await zimage(
        "batch", "p.txt", "-o", "out", "--contact-sheet", "out/sheet.png", *FAST, cwd=tmp_path
    )
    assert status == 0, stderr
    assert images(tmp_path / "out") == ["0001-a-cat-0.png", "0002-a-dog-0.png", "sheet.png"]


@pytest.mark.parametrize("name", ["{seed:c}", "{bogus}", "{slug}"])
async def test_a_refused_name_template_is_a_usage_error(tmp_path: Path, name: str) -> None:
    """--name refused (bad, unknown field, two lines one name): exit 2, as generate."""
    (tmp_path / "p.txt").write_text("a cat\na dog\na cat\n")
    status, _, stderr = await zimage(
        "batch", "p.txt", "-o", "out", "--name", name, *FAST, cwd=tmp_path
    )
    assert status == 2, stderr
    assert "--name" in stderr
    assert images(tmp_path / "out") == []


async def test_a_bad_size_option_is_named_not_blamed_on_the_file(tmp_path: Path) -> None:
    """--size bogus: exit 2, the message names --size, not the file's line 1."""
    (tmp_path / "p.txt").write_text("a cat\n")
    status, _, stderr = await zimage(
        "batch", "p.txt", "-o", "out", "--size", "bogus", *FAST, cwd=tmp_path
    )
    assert status == 2, stderr
    assert "--size" in stderr
    assert "line 1" not in stderr
