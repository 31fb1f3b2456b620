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
import os
import signal
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from zimage_async.emulator import Emulator, ManualClock

from ._cli import start
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
