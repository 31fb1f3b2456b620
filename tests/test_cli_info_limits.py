"""`zimage info` reads only a regular file, of at most MAX_INFO_BYTES."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zimage_async._cli_info import MAX_INFO_BYTES

from ._cli import run_keyless

zimage = run_keyless


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero here")
def test_info_refuses_a_device() -> None:
    """/dev/zero is no regular file: exit 2 at once, nothing read."""
    done = zimage("info", "/dev/zero")
    assert done.returncode == 2
    assert "not a regular file" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_info_refuses_a_named_pipe(tmp_path: Path) -> None:
    """A FIFO would block the read: refused without opening it."""
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    done = zimage("info", fifo)
    assert done.returncode == 2
    assert "not a regular file" in done.stderr


def test_info_refuses_a_file_over_the_cap(tmp_path: Path) -> None:
    """A file larger than MAX_INFO_BYTES: exit 2, saying the cap."""
    big = tmp_path / "big.png"
    with big.open("wb") as file:
        file.write(b"\x89PNG\r\n\x1a\n")
        file.truncate(MAX_INFO_BYTES + 1)  # sparse: nothing written on most file systems
    done = zimage("info", big)
    assert done.returncode == 2
    assert "MiB" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_cap_is_in_the_help() -> None:
    """`zimage info --help` says how large a file it reads."""
    done = zimage("info", "--help")
    assert done.returncode == 0
    assert f"{MAX_INFO_BYTES // 2**20} MiB" in " ".join(done.stdout.split())
