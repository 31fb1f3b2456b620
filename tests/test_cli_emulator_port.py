"""`zimage emulator` checks --port: 0 to 65535, else a usage error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ._cli import cli_env


def zimage(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the command line to its end (bounded in time)."""
    return subprocess.run(  # noqa: S603 - our own interpreter and module, fixed argv
        [sys.executable, "-m", "zimage_async", *map(str, args)],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("port", ["99999", "65536", "-1", "eighty"])
def test_an_emulator_port_out_of_range_is_a_usage_error(port: str) -> None:
    """--port outside 0-65535: exit 2 naming --port, no traceback."""
    done = zimage("emulator", "--port", port)
    assert done.returncode == 2, done.stderr
    assert "--port" in done.stderr
    assert "Traceback" not in done.stderr
