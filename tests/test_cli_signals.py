"""Repeated Ctrl-C (or SIGTERM) to ``zimage batch``: the cleanup the first one starts.

``timeout N zimage batch ...`` delivers its signal twice (to the command and to its
process group), and an impatient user presses Ctrl-C twice: the second must not cut
the batch's release of its items, or a rerun waits for their leases to lapse. The
tests hold the journal's write lock while they signal, so that the command is still
giving its items back when the second signal comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import sqlite3
import subprocess
import sys
import termios
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from zimage_async.emulator import Emulator, ManualClock

from ._cli import cli_env, start
from .conftest import until

ITEMS = 3
#: The pause between signals: the command reaches its release of the items at once,
#: and the release waits on the test's lock for up to 5 s.
GAP = 0.5


@pytest.fixture
async def frozen() -> AsyncIterator[Emulator]:
    """An emulator whose tasks never finish while the test runs (its clock stands still)."""
    async with Emulator(clock=ManualClock(start=time.time()), task_duration=1.0, seed=3) as emu:
        yield emu


@contextlib.contextmanager
def write_locked(journal: Path) -> Iterator[None]:
    """Hold *journal*'s write lock for the block: the command's writes wait for it."""
    db = sqlite3.connect(journal, isolation_level=None, timeout=10)
    try:
        db.execute("BEGIN EXCLUSIVE")
        yield
        db.execute("ROLLBACK")
    finally:
        db.close()


def leases(journal: Path) -> list[tuple[int, str | None]]:
    """Return each item's index and the worker holding its lease (None: free)."""
    db = sqlite3.connect(journal)
    try:
        rows = db.execute("SELECT idx, claimed_by FROM zimage_batch_items ORDER BY idx")
        return [(int(idx), by) for idx, by in rows]
    finally:
        db.close()


async def running_batch(emu: Emulator, tmp_path: Path) -> tuple[asyncio.subprocess.Process, Path]:
    """Start a batch of ITEMS items and wait until every one has a task being polled."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"prompt {n}\n" for n in range(ITEMS)))
    process = await start(
        emu, "batch", prompts, "-o", tmp_path / "out", "--concurrency", str(ITEMS), "--json"
    )
    await until(
        lambda: len(emu.ledger) >= ITEMS and emu.request_counts.get("task", 0) >= ITEMS,
        deadline=30,
    )
    return process, tmp_path / "out" / "zimage-journal.sqlite"


async def finished(process: asyncio.subprocess.Process) -> str:
    """Wait (bounded) for the command to exit; return its stderr."""
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    return stderr.decode()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_a_second_signal_lets_the_batch_give_its_items_back(
    frozen: Emulator, tmp_path: Path, signum: signal.Signals
) -> None:
    """The second signal says the cleanup is finishing; every item's lease is released."""
    process, journal = await running_batch(frozen, tmp_path)
    assert all(by is not None for _, by in leases(journal))
    with write_locked(journal):
        process.send_signal(signum)
        await asyncio.sleep(GAP)  # the command is now releasing its items, held by the lock
        process.send_signal(signum)
        await asyncio.sleep(GAP)
    stderr = await finished(process)
    assert process.returncode == 130, stderr
    assert leases(journal) == [(n, None) for n in range(ITEMS)]
    assert "once more to exit at once" in stderr
    assert "Run the same command again" in stderr


async def test_a_third_signal_exits_at_once_and_says_what_stays_leased(
    frozen: Emulator, tmp_path: Path
) -> None:
    """A third Ctrl-C ends the command while its release still waits; it says so."""
    process, journal = await running_batch(frozen, tmp_path)
    with write_locked(journal):
        for _ in range(3):
            process.send_signal(signal.SIGINT)
            await asyncio.sleep(GAP)
        stderr = await finished(process)  # the lock is still held: the release cannot end
    assert process.returncode == 130, stderr
    assert "exiting at once" in stderr
    assert "stay leased" in stderr and "--lease" in stderr
    assert any(by is not None for _, by in leases(journal))


async def test_ctrl_c_stops_a_batch_reading_its_prompts_from_a_slow_pipe(
    frozen: Emulator, tmp_path: Path
) -> None:
    """The prompt file is a pipe whose writer waits: one Ctrl-C ends the command.

    The file was read on the event loop, which held the signal handlers: the command
    ignored every Ctrl-C and SIGTERM until the writer had finished.
    """
    pipe = tmp_path / "prompts.fifo"
    os.mkfifo(pipe)
    process = await start(frozen, "batch", pipe, "-o", tmp_path / "out")
    writer = -1
    try:
        for _ in range(300):  # the command opens the pipe for reading: then it can be written
            with contextlib.suppress(OSError):
                writer = os.open(pipe, os.O_WRONLY | os.O_NONBLOCK)
                break
            await asyncio.sleep(0.05)
        assert writer >= 0, "the command never opened its prompt file"
        os.write(writer, b"a cat\n")  # then nothing more, and the pipe stays open
        await asyncio.sleep(0.5)
        process.send_signal(signal.SIGINT)
        stderr = await finished(process)
        assert process.returncode == 130, stderr
        assert "Traceback" not in stderr
        assert not frozen.ledger  # nothing was sent
    finally:
        if writer >= 0:
            os.close(writer)
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_hangup_stops_the_batch_in_order_like_ctrl_c(
    frozen: Emulator, tmp_path: Path
) -> None:
    """SIGHUP (the terminal or the ssh session closed): the items are given back.

    It killed the command at once (status 129), its items leased until their lease ran out.
    """
    process, journal = await running_batch(frozen, tmp_path)
    process.send_signal(signal.SIGHUP)
    stderr = await finished(process)
    assert process.returncode == 130, stderr
    assert leases(journal) == [(n, None) for n in range(ITEMS)]


async def test_items_that_cannot_be_given_back_are_said_to_stay_leased(
    frozen: Emulator, tmp_path: Path
) -> None:
    """One Ctrl-C while another process holds the journal: the command says what stays.

    The give-back waits at most 5 s; it then ended silently, and the rerun waited for
    the leases without a word on why.
    """
    process, journal = await running_batch(frozen, tmp_path)
    with write_locked(journal):  # held throughout: the journal's writes wait up to 30 s
        process.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(process.communicate(), timeout=90)
    stderr = err.decode()
    assert process.returncode == 130, stderr
    assert "stay leased until their lease runs out (60 s)" in stderr, stderr


async def test_under_nohup_a_hangup_leaves_the_batch_running(tmp_path: Path) -> None:
    """SIGHUP ignored by the caller (``nohup``) stays ignored: the batch runs to its end."""
    (tmp_path / "p.txt").write_text("".join(f"prompt {n}\n" for n in range(4)))
    async with Emulator(task_duration=1.0) as emu:
        env = cli_env(ZIMAGE_API_KEY=emu.api_key, ZIMAGE_BASE_URL=emu.base_url)
        process = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            'trap "" HUP; exec "$@"',
            "sh",
            sys.executable,
            "-m",
            "zimage_async",
            "batch",
            "p.txt",
            "-o",
            "out",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=tmp_path,
        )
        await until(lambda: len(emu.ledger) >= 1, deadline=30)
        process.send_signal(signal.SIGHUP)
        stderr = await finished(process)
    assert process.returncode == 0, stderr
    assert len(list((tmp_path / "out").glob("*.png"))) == 4


def test_a_terminal_that_hangs_up_stops_the_batch_in_order(tmp_path: Path) -> None:
    """The batch's terminal closes (a real hang-up): status 130, items given back.

    Its live display's last write to the closed terminal failed (EIO): a traceback and
    status 1.
    """
    (tmp_path / "p.txt").write_text("".join(f"prompt number {n}\n" for n in range(40)))
    env = cli_env(XDG_STATE_HOME=str(tmp_path / "state"), TERM="xterm")
    controller, terminal = os.openpty()

    def own_terminal() -> None:  # the child's controlling terminal: its close is a hang-up
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    args = ["batch", "p.txt", "-o", "out", "--emulator", "--concurrency", "8", "--lease", "600"]
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "zimage_async", *args],
        env=env,
        cwd=tmp_path,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
        preexec_fn=own_terminal,  # only an ioctl: safe between fork and exec
    )
    os.close(terminal)
    seen: list[bytes] = []

    def drain() -> None:
        with contextlib.suppress(OSError):
            while data := os.read(controller, 65536):
                seen.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        for _ in range(300):  # until the batch has saved something (30 s at most)
            if list((tmp_path / "out").glob("*.png")):
                break
            time.sleep(0.1)
        os.close(controller)  # the terminal window closes
        status = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert status == 130, b"".join(seen).decode(errors="replace")[-2000:]
    leases_left = [by for _, by in leases(tmp_path / "out" / "zimage-journal.sqlite") if by]
    assert leases_left == []
