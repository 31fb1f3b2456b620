"""``zimage generate`` and ``zimage task``: progress, JSON, verbosity, Ctrl-C, output paths."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from zimage_async.emulator import Emulator, ManualClock

from ._cli import cli_env, created_and_polled, start

FAST = ["--emulator-task-duration", "0.05"]
#: Long enough for the progress display to show a running task.
SLOW = ["--emulator-task-duration", "0.5"]


def zimage(*args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the command line; without ZIMAGE_API_KEY in *env*, on the in-process emulator."""
    return subprocess.run(  # noqa: S603 - our own interpreter and module, fixed argv
        [sys.executable, "-m", "zimage_async", *map(str, args)],
        capture_output=True,
        text=True,
        env=cli_env(**env),
        timeout=60,
        check=False,
    )


@pytest.fixture
async def frozen() -> AsyncIterator[Emulator]:
    """An emulator in the test process whose tasks never finish (its clock stands still)."""
    async with Emulator(clock=ManualClock(start=time.time()), task_duration=5.0) as emu:
        yield emu


def test_generate_json_prints_the_task_and_its_paths(tmp_path: Path) -> None:
    """`generate --json` prints one JSON object with the task id, status and paths."""
    done = zimage("generate", "a cat", "--seed", "7", "-o", tmp_path, "--json", *FAST)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["status"] == "completed"
    assert record["paths"] == [str(tmp_path / f"{record['task_id']}-0.png")]
    assert Path(record["paths"][0]).is_file()


def test_verbose_before_the_command_is_accepted_and_says_created_once(tmp_path: Path) -> None:
    """`zimage -v generate` works, and the created-task line appears only once."""
    done = zimage("-v", "generate", "a cat", "-o", tmp_path, *FAST)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("created task") == 1


def test_generate_shows_progress_on_a_terminal(tmp_path: Path) -> None:
    """With stderr on a terminal, generate shows the task's status and progress."""
    leader, follower = pty.openpty()
    with subprocess.Popen(  # noqa: S603 - our own interpreter and module, fixed argv
        [sys.executable, "-m", "zimage_async", "generate", "a cat", "-o", str(tmp_path), *SLOW],
        stdout=subprocess.PIPE,
        stderr=follower,
        env=cli_env(COLUMNS="100"),
    ) as process:
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            shown += chunk
        assert process.wait(timeout=60) == 0
    os.close(leader)
    text = shown.decode(errors="replace")
    assert "completed" in text
    assert "100%" in text


def test_generate_refuses_an_output_name_with_another_suffix(tmp_path: Path) -> None:
    """`-o foo.gif` exits 2 naming the rule, and creates nothing."""
    done = zimage("generate", "a cat", "-o", tmp_path / "foo.gif", *FAST)
    assert done.returncode == 2
    assert ".png, .jpg, .jpeg or .webp" in done.stderr
    assert not (tmp_path / "foo.gif").exists()
    assert "emulator at" not in done.stderr


def test_a_trailing_slash_makes_a_dotted_name_a_directory(tmp_path: Path) -> None:
    """`-o out.d/` is a directory, as the refusal of `-o out.d` suggests."""
    done = zimage("generate", "a cat", "-o", f"{tmp_path / 'out.d'}/", *FAST)
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "out.d").glob("task-*.png"))) == 1


def test_task_without_a_key_exits_2_instead_of_starting_an_emulator() -> None:
    """`zimage task ID` with no key says to set ZIMAGE_API_KEY, and starts nothing."""
    done = zimage("task", "task-unified-1-abc")
    assert done.returncode == 2
    assert "ZIMAGE_API_KEY" in done.stderr and "ZIMAGE_BASE_URL" in done.stderr
    assert "emulator at" not in done.stderr


async def test_task_json_prints_the_task(frozen: Emulator) -> None:
    """`zimage task ID --json` prints the task's id, status and progress as JSON."""
    created = await start(frozen, "generate", "a cat")
    task_id = await created_and_polled(frozen)
    created.send_signal(signal.SIGINT)
    await created.communicate()
    shown = await start(frozen, "task", task_id, "--json")
    stdout, stderr = await shown.communicate()
    assert shown.returncode == 0, stderr.decode()
    record = json.loads(stdout)
    assert (record["id"], record["status"], record["error"]) == (task_id, "pending", None)


async def test_a_loopback_base_url_is_not_called_billed(frozen: Emulator, tmp_path: Path) -> None:
    """A loopback ZIMAGE_BASE_URL is announced without the billing warning."""
    process = await start(frozen, "generate", "a cat", "-o", tmp_path)
    await created_and_polled(frozen)
    process.send_signal(signal.SIGINT)
    _, stderr = await process.communicate()
    assert "billed)" not in stderr.decode()
    assert "loopback" in stderr.decode()


async def test_ctrl_c_prints_the_command_that_collects_the_task(
    frozen: Emulator, tmp_path: Path
) -> None:
    """SIGINT while waiting exits 130 and prints `zimage task ID -o DIR`."""
    out = tmp_path / "out"
    process = await start(frozen, "generate", "a cat", "-o", out)
    task_id = await created_and_polled(frozen)
    process.send_signal(signal.SIGINT)
    _, stderr = await process.communicate()
    assert process.returncode == 130
    assert f"zimage task {task_id} -o {out}" in stderr.decode()
