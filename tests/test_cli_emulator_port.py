"""`zimage emulator` checks --port: 0 to 65535, else a usage error."""

from __future__ import annotations

import pytest

from ._cli import run_keyless

zimage = run_keyless


@pytest.mark.parametrize("port", ["99999", "65536", "-1", "eighty"])
def test_an_emulator_port_out_of_range_is_a_usage_error(port: str) -> None:
    """--port outside 0-65535: exit 2 naming --port, no traceback."""
    done = zimage("emulator", "--port", port)
    assert done.returncode == 2, done.stderr
    assert "--port" in done.stderr
    assert "Traceback" not in done.stderr
