"""Defects a review of the command line found: each test names the promise it checks.

A second signal while the stop still finishes, Ctrl-C while the command is still
loading, and the hidden ``--emulator-task-duration`` given a number that is no duration.
The batch's defects are in ``test_cli_review_batch.py``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from zimage_async._journal import open_journal

from ._cli import cli_env, start
from .test_cli_signals import write_locked

#: The pause between the command's last word and the next signal: no assert rests on it.
GAP = 0.5


async def read_until(stream: asyncio.StreamReader, text: str, seen: list[str]) -> None:
    """Read lines of *stream* into *seen* until one holds *text* (30 s at most)."""

    async def reading() -> None:
        while not any(text in line for line in seen):
            line = await stream.readline()
            assert line, f"the stream ended before {text!r}: {''.join(seen)}"
            seen.append(line.decode())

    await asyncio.wait_for(reading(), timeout=30)


# -- 1. a second signal while the stop finishes ----------------------------------------


async def stopped_while_the_journal_waits(
    tmp_path: Path, signum: signal.Signals, more: int
) -> tuple[int, str]:
    """Stop a `generate` whose journal write waits for a lock; send *more* signals after.

    They come once the stop has said its last word, while the journal's thread still
    waits for the lock (the exit waits for it). Return the status and stderr.
    """
    journal = tmp_path / "j.sqlite"
    async with await open_journal(journal):  # made: the command opens it without a write
        pass
    seen: list[str] = []
    with write_locked(journal):  # the command's first journal write waits for it
        process = await start(
            None, "generate", "a cat", "-o", tmp_path / "out/", "--journal", journal
        )
        try:
            assert process.stderr is not None
            await read_until(process.stderr, "in-process emulator", seen)
            await asyncio.sleep(GAP)  # the command now waits for the journal
            process.send_signal(signum)
            await read_until(process.stderr, "interrupted", seen)
            for _ in range(more):
                await asyncio.sleep(GAP)  # the stop has said all; its journal write waits
                process.send_signal(signum)
            await asyncio.sleep(GAP)
        except BaseException:
            process.kill()
            await process.wait()
            raise
        if more >= 2:  # exits at once, while the lock is still held
            _, rest = await asyncio.wait_for(process.communicate(), timeout=60)
    if more < 2:
        _, rest = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, "".join(seen) + rest.decode()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_a_second_signal_after_the_last_word_does_not_kill_the_stop(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """A second signal after the stop's last message lets the stop end: exit 130, quietly.

    The command's journal write still waits for another process's lock when its stop
    has said everything: a second SIGTERM then killed it (status 143, -15 here), a second
    Ctrl-C printed a traceback. It must say the stop goes on, and end with 130.
    """
    status, stderr = await stopped_while_the_journal_waits(tmp_path, signum, 1)
    assert status == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert "still stopping; press Ctrl-C once more to exit at once" in stderr, stderr


async def test_a_third_signal_after_the_last_word_exits_at_once(tmp_path: Path) -> None:
    """A third SIGTERM, the journal's lock still held, exits at once with 130, as documented."""
    status, stderr = await stopped_while_the_journal_waits(tmp_path, signal.SIGTERM, 2)
    assert status == 130, stderr
    assert "exiting at once" in stderr, stderr
    assert "Traceback" not in stderr, stderr


#: A ``sitecustomize`` whose object sends the process a second SIGTERM as Python tears
#: its modules down, the last moment of the process, after the command's stop.
SIGNAL_AT_TEARDOWN = """
import os, signal

class _Late:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)

late = _Late()
"""


async def test_a_second_signal_as_python_exits_keeps_the_status_130(tmp_path: Path) -> None:
    """A second SIGTERM in Python's own teardown, after the stop: still 130, not 143.

    Python gives the signals back to the system as it tears its modules down: a second
    SIGTERM then killed the process (status 143, -15 here) although its stop was over.
    """
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SIGNAL_AT_TEARDOWN)
    path = os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))
    process = await start(
        None,
        "generate",
        "a cat",
        "-o",
        tmp_path / "out/",
        "--no-journal",
        "--emulator-task-duration",
        "600",
        env={"PYTHONPATH": path},
    )
    seen: list[str] = []
    try:
        assert process.stderr is not None
        await read_until(process.stderr, "waiting", seen)
        process.send_signal(signal.SIGTERM)
        _, rest = await asyncio.wait_for(process.communicate(), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    stderr = "".join(seen) + rest.decode()
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr, stderr


# -- 2. Ctrl-C while the command is still loading ----------------------------------------

#: A ``sitecustomize`` that sends the process SIGINT when it imports one module: the
#: Ctrl-C lands in the middle of the command's loading, at a known point.
INTERRUPTING_IMPORT = """
import os, signal, sys

class _Interrupt:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name == os.environ.get("ZIMAGE_TEST_INTERRUPT_AT"):
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, _Interrupt)
"""

#: How the console script ``zimage`` runs the command (its entry point), and ``-m``.
ENTRY_POINT = ["-c", "import sys; from zimage_async._cli import main; sys.exit(main())"]
MODULE = ["-m", "zimage_async"]


def interrupted_while_loading(
    tmp_path: Path, module: str, how: list[str], *args: str
) -> subprocess.CompletedProcess[str]:
    """Run the command with *args*; Ctrl-C comes as it imports *module* (30 s at most)."""
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(INTERRUPTING_IMPORT)
    path = os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))
    return subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, *how, *args],
        capture_output=True,
        text=True,
        env=cli_env(PYTHONPATH=path, ZIMAGE_TEST_INTERRUPT_AT=module),
        cwd=tmp_path,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("how", [ENTRY_POINT, MODULE], ids=["entry-point", "module"])
@pytest.mark.parametrize(
    ("module", "args"),
    [
        pytest.param("zimage_async._cli_batch", ["--version"], id="the-commands-modules"),
        pytest.param("zimage_async.emulator", ["emulator", "--port", "0"], id="in-main"),
    ],
)
def test_ctrl_c_while_the_command_loads_exits_130_quietly(
    tmp_path: Path, how: list[str], module: str, args: list[str]
) -> None:
    """Ctrl-C while the command imports its modules: exit 130, no traceback, one line at most."""
    done = interrupted_while_loading(tmp_path, module, how, *args)
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr
    assert len(done.stderr.splitlines()) <= 1, done.stderr


@pytest.mark.xfail(
    strict=True,
    reason="the package's own import (zimage_async/__init__.py) runs before any code of the "
    "command: quiet needs an entry point outside the package, or a package that imports lazily",
)
@pytest.mark.parametrize("how", [ENTRY_POINT, MODULE], ids=["entry-point", "module"])
def test_ctrl_c_while_the_package_loads_exits_130_quietly(tmp_path: Path, how: list[str]) -> None:
    """Ctrl-C while Python imports the package itself: exit 130, no traceback."""
    done = interrupted_while_loading(tmp_path, "zimage_async._batch", how, "--version")
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr, done.stderr


# -- 4. the hidden --emulator-task-duration ------------------------------------------------


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "soon"])
def test_an_emulator_task_duration_that_is_no_duration_is_a_usage_error(
    tmp_path: Path, value: str
) -> None:
    """--emulator-task-duration takes a finite number of seconds >= 0; else exit 2, named.

    -1, nan and inf reached the emulator, whose refusal ended the command with a traceback.
    """
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [
            *(sys.executable, "-m", "zimage_async", "generate", "a cat", "--emulator"),
            *("--no-journal", f"--emulator-task-duration={value}", "-o", str(tmp_path / "out/")),
        ],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "--emulator-task-duration" in done.stderr, done.stderr
    assert "a finite number of seconds >= 0" in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()
