"""`zimage batch`: its options checked before anything is sent, and a closed stdout.

A contact sheet may not replace a file the batch needs (its journal, its prompt file,
an image it saves or saved); a refused ``--name`` or ``--size`` is a usage error naming
the option (exit 2, nothing sent); ``zimage batch ... | head -1`` ends quietly.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
from pathlib import Path

import pytest

from zimage_async.emulator import Emulator

from ._cli import cli_env, finished

FAST = ("--emulator-task-duration", "0")


async def zimage(*args: str | Path, cwd: Path) -> tuple[int, str, str]:
    """Run the command line on the in-process emulator, in *cwd*."""
    return await finished(*args, cwd=cwd)


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


async def test_a_closed_stdout_ends_the_batch_quietly(tmp_path: Path) -> None:
    """`zimage batch ... | head -1`: no traceback; the journal lets a rerun finish it."""
    prompts = tmp_path / "p.txt"
    prompts.write_text("".join(f"prompt {n}\n" for n in range(1, 11)))
    async with Emulator(task_duration=0.05) as emu:
        env = cli_env(ZIMAGE_API_KEY=emu.api_key, ZIMAGE_BASE_URL=emu.base_url)
        args = ["-m", "zimage_async", "batch", str(prompts), "-o", str(tmp_path / "out")]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            "--concurrency",
            "2",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        assert process.stdout is not None and process.stderr is not None
        first = await asyncio.wait_for(process.stdout.readline(), timeout=60)
        assert b"saved line" in first
        process.stdout.feed_eof()
        transport = process._transport  # type: ignore[attr-defined]
        transport.get_pipe_transport(1).close()  # the reader goes away, as head does
        stderr = await asyncio.wait_for(process.stderr.read(), timeout=60)
        status = await asyncio.wait_for(process.wait(), timeout=60)
        assert "Traceback" not in stderr.decode(), stderr.decode()
        assert "BrokenPipeError" not in stderr.decode()
        assert status == 1
        with contextlib.closing(sqlite3.connect(tmp_path / "out" / "zimage-journal.sqlite")) as db:
            leased = db.execute(
                "select count(*) from zimage_batch_items where claimed_by is not null "
                "and not settled"
            ).fetchone()[0]
        assert leased == 0
        rerun = await asyncio.create_subprocess_exec(
            sys.executable, *args, stdout=asyncio.subprocess.PIPE, env=env
        )
        await asyncio.wait_for(rerun.communicate(), timeout=60)
        assert rerun.returncode == 0
        assert len(images(tmp_path / "out")) == 10
        assert len(emu.ledger) == 10  # nothing created twice
