"""`zimage batch` stopped by the disk or by Ctrl-C: a message that says what to do.

An image the disk cannot hold (here: a limit on the size of the process's files) ends
the batch with exit 1, the path and the reason, and the command that saves it once the
trouble is fixed, without paying for the task again. A journal the
disk cannot hold is said to be unwritable, not to be some other program's file.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from zimage_async.emulator import Emulator, FaultPlan, FaultRule

from ._cli import cli_env, finished, start
from .conftest import until

FAST = ("--emulator-task-duration", "0")


async def test_an_image_the_disk_cannot_hold_ends_the_batch_with_a_message(
    tmp_path: Path,
) -> None:
    """Exit 1 naming the file and the reason; the rerun saves it and pays nothing twice."""
    # Seed 42 at 1536x1536 makes a placeholder of about 100 KB, over the 64 KiB limit;
    # the journal stays under it.
    line = '{"prompt": "a dog", "seed": 42, "size": "1536x1536"}\n'
    (tmp_path / "p.jsonl").write_text(line)
    async with Emulator(task_duration=0.05) as emu:
        env = cli_env(ZIMAGE_API_KEY=emu.api_key, ZIMAGE_BASE_URL=emu.base_url)
        status, _, stderr = await _run_small("batch", "p.jsonl", "-o", "out", env=env, cwd=tmp_path)
        assert status == 1, stderr
        assert "Traceback" not in stderr
        assert "a file could not be written: [Errno 27] File too large" in stderr
        assert "'out'" in stderr  # the folder it was writing in, not its removed temp file
        assert ".zimage-" not in stderr
        assert "zimage batch p.jsonl -o out" in stderr  # the command to run again
        assert len(emu.ledger) == 1
        assert not list((tmp_path / "out").glob("*.png"))

        status, stdout, stderr = await finished(
            "batch", "p.jsonl", "-o", "out", env=env, cwd=tmp_path
        )
        assert status == 0, stderr
        assert len(emu.ledger) == 1, stdout  # the rerun saved the task it had paid for
    assert len(list((tmp_path / "out").glob("*.png"))) == 1
    assert not list((tmp_path / "out").glob("*.part")), "no temporary file is left"


#: Run the command line where no file may grow past argv[1] bytes (a full disk): a write
#: past it fails with EFBIG (SIGXFSZ ignored).
_SMALL_FILES = """
import resource, runpy, signal, sys
limit = int(sys.argv.pop(1))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
sys.argv[0] = "zimage"
runpy.run_module("zimage_async", run_name="__main__")
"""


async def _run_small(
    *args: str, env: dict[str, str], cwd: Path, limit: int = 65_536
) -> tuple[int, str, str]:
    """Run the command line where no file may grow past *limit* bytes; return its outcome."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _SMALL_FILES,
        str(limit),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        # No bytecode is written under the limit: a cut-short .pyc would break later runs.
        env={**env, "PYTHONDONTWRITEBYTECODE": "1"},
        cwd=cwd,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, stdout.decode(), stderr.decode()


async def test_a_journal_the_disk_cannot_hold_is_called_unwritable(tmp_path: Path) -> None:
    """SQLite's "disk I/O error" on a new journal is not "not a zimage journal"."""
    (tmp_path / "p.txt").write_text("a cat\n")
    status, _, stderr = await _run_small(
        "batch", "p.txt", "-o", "out", *FAST, env=cli_env(), cwd=tmp_path, limit=20_000
    )
    assert status == 2, stderr
    assert "Traceback" not in stderr
    assert "not a zimage journal" not in stderr
    assert "cannot write the journal out/zimage-journal.sqlite" in stderr
    assert "disk I/O error" in stderr


async def test_ctrl_c_with_a_create_cut_off_says_how_to_send_it_again(tmp_path: Path) -> None:
    """Interrupted while a create waits to retry after a 429: the message names the option."""
    (tmp_path / "p.txt").write_text("a cat\na dog\n")
    plan = FaultPlan.script("create", [FaultRule(kind="http_429", retry_after_seconds=20)])
    async with Emulator(task_duration=0.05, faults=plan) as emu:
        args = ("batch", "p.txt", "-o", "out", "--concurrency", "1")
        process = await start(emu, *args, cwd=tmp_path)
        await until(lambda: emu.request_counts.get("create", 0) >= 1, deadline=20)
        await asyncio.sleep(0.5)  # answered 429: waiting to send it again
        process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 130, stderr.decode()
        assert "--resubmit-uncertain" in stderr.decode()
        env = cli_env(ZIMAGE_API_KEY=emu.api_key, ZIMAGE_BASE_URL=emu.base_url)
        status, _, err = await finished(*args, "--resubmit-uncertain", env=env, cwd=tmp_path)
        assert status == 0, err
        assert sorted(str(entry.request_body["prompt"]) for entry in emu.ledger) == [
            "a cat",
            "a dog",
        ]


async def test_a_batch_left_with_uncertain_creates_names_the_option_that_resends_them(
    tmp_path: Path,
) -> None:
    """Creates whose answer was lost: the rerun command shown carries --resubmit-uncertain.

    It said to run the same command again, which leaves uncertain creates as they are: a
    user following it made no progress, run after run.
    """
    (tmp_path / "p.txt").write_text("a cat\n")
    plan = FaultPlan.script("create", ["reset_after_create"])
    async with Emulator(task_duration=0.05, faults=plan) as emu:
        env = cli_env(ZIMAGE_API_KEY=emu.api_key, ZIMAGE_BASE_URL=emu.base_url)
        args = ("batch", "p.txt", "-o", "out")
        for _ in range(2):  # the first run, then the rerun it advises
            status, _, stderr = await finished(*args, env=env, cwd=tmp_path)
            assert status == 1, stderr
            assert "batch p.txt -o out --resubmit-uncertain" in stderr, stderr
        status, _, stderr = await finished(*args, "--resubmit-uncertain", env=env, cwd=tmp_path)
        assert status == 0, stderr
