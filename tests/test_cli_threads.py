"""Blocking work of the command line, off its event loop, stopped cleanly by Ctrl-C.

A contact sheet drawn when Ctrl-C came was abandoned mid-write: the command exited and
left its ``.zimage-*.part`` file beside the sheet. The drawing is now told to stop and
given a moment to clean up before the command exits.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from zimage_async._cli_threads import off_the_loop
from zimage_async._contact_sheet import make_contact_sheet


async def test_a_cancelled_wait_tells_the_work_to_stop_and_lets_it_clean_up(
    tmp_path: Path,
) -> None:
    part = tmp_path / ".zimage-sheet.part"
    stop = threading.Event()
    ended = threading.Event()

    def draw() -> Path:
        part.write_bytes(b"half a sheet")
        try:
            for _ in range(1000):  # 10 s at most
                if stop.is_set():
                    raise InterruptedError("stopped")
                time.sleep(0.01)
            return part
        finally:
            part.unlink(missing_ok=True)
            ended.set()

    waiting = asyncio.ensure_future(off_the_loop(draw, stop=stop))
    await asyncio.sleep(0.2)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert ended.is_set()  # it had cleaned up when the wait ended
    assert not part.exists()


def test_a_stopped_contact_sheet_writes_nothing(tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    Image.new("RGB", (8, 8), "red").save(image)
    stop = threading.Event()
    stop.set()
    with pytest.raises(InterruptedError):
        make_contact_sheet([image], tmp_path / "sheet.png", stop=stop)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


async def test_an_abandoned_read_that_fails_later_logs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A read abandoned by Ctrl-C that then fails: no "exception was never retrieved"."""
    release, ended = threading.Event(), threading.Event()

    def read() -> str:
        try:
            release.wait(10)
            raise ValueError("the pipe's writer went away")
        finally:
            ended.set()

    waiting = asyncio.ensure_future(off_the_loop(read))
    await asyncio.sleep(0.1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    release.set()
    assert ended.wait(10)
    await asyncio.sleep(0.1)  # the thread's outcome reaches the loop
    del waiting
    gc.collect()
    assert "never retrieved" not in caplog.text
