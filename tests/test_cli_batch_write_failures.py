"""`zimage batch` when the disk refuses a write: a message that says what to do, no traceback.

An image that cannot be written (here: a folder stands where it goes; a full disk acts
the same) ends the batch with exit 1, the path and the reason, and the command that
saves it once the trouble is fixed, without paying for the task again. A journal the
disk cannot hold is said to be unwritable, not to be some other program's file.
"""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
from pathlib import Path

from zimage_async.emulator import Emulator

from ._cli import cli_env, finished

FAST = ("--emulator-task-duration", "0")


async def test_an_image_that_cannot_be_written_ends_the_batch_with_a_message(
    tmp_path: Path,
) -> None:
    """Exit 1 naming the path and the reason; the rerun saves it and pays nothing twice."""
    (tmp_path / "p.txt").write_text("a cat\n")
    blocker = tmp_path / "out" / "0001-a-cat-0.png"
    blocker.mkdir(parents=True)
    async with Emulator(task_duration=0.05) as emu:
        env = cli_env(ZIMAGE_API_KEY=emu.api_key, ZIMAGE_BASE_URL=emu.base_url)
        status, _, stderr = await finished("batch", "p.txt", "-o", "out", env=env, cwd=tmp_path)
        assert status == 1, stderr
        assert "Traceback" not in stderr
        assert "0001-a-cat-0.png" in stderr
        assert "Is a directory" in stderr
        assert "zimage batch p.txt -o out" in stderr  # the command to run again
        assert len(emu.ledger) == 1

        blocker.rmdir()
        status, stdout, stderr = await finished(
            "batch", "p.txt", "-o", "out", env=env, cwd=tmp_path
        )
        assert status == 0, stderr
        assert blocker.is_file()
        assert len(emu.ledger) == 1, stdout  # the rerun saved the task it had paid for
    assert not list((tmp_path / "out").glob("*.part")), "no temporary file is left"


def _small_files() -> None:
    """In the child: files may not grow past 20,000 bytes (a disk that is full)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))


def test_a_journal_the_disk_cannot_hold_is_called_unwritable(tmp_path: Path) -> None:
    """SQLite's "disk I/O error" on a new journal is not "not a zimage journal"."""
    (tmp_path / "p.txt").write_text("a cat\n")
    done = subprocess.run(  # noqa: S603 - our own interpreter and module, fixed argv
        [sys.executable, "-m", "zimage_async", "batch", "p.txt", "-o", "out", *FAST],
        capture_output=True,
        text=True,
        # No bytecode is written under the limit: a cut-short .pyc would break later runs.
        env=cli_env(PYTHONDONTWRITEBYTECODE="1"),
        cwd=tmp_path,
        preexec_fn=_small_files,  # only sets a limit, before exec
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "not a zimage journal" not in done.stderr
    assert "cannot write the journal out/zimage-journal.sqlite" in done.stderr
    assert "disk I/O error" in done.stderr
