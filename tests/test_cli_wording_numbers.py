"""Number options take ASCII digits only, as their help and the docs write them.

Python's ``int()`` and ``float()`` read other scripts' digits (Arabic-Indic U+0663,
full-width U+FF13) and ``1_0`` as numbers: ``--seed`` given the Arabic-Indic 3 made a
task with seed 3. Such values are refused with exit 2, naming the option and the rule,
before any request.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from zimage_async.emulator import Emulator

from ._cli import cli_env, emulator_env, finished


@pytest.fixture
async def quick() -> AsyncIterator[Emulator]:
    async with Emulator(task_duration=0.05) as emu:
        yield emu


@pytest.mark.parametrize(
    ("args", "option"),
    [
        pytest.param(["generate", "a cat", "--seed", "\u0663"], "--seed", id="seed-arabic"),
        pytest.param(["generate", "a cat", "--seed", "\uff13"], "--seed", id="seed-fullwidth"),
        pytest.param(["generate", "a cat", "--seed", "1_0"], "--seed", id="seed-underscore"),
        pytest.param(["generate", "a cat", "--timeout", "\u0663"], "--timeout", id="timeout"),
        pytest.param(
            ["batch", "p.txt", "-o", "out", "--concurrency", "\u0663"],
            "--concurrency",
            id="concurrency",
        ),
        pytest.param(
            ["batch", "p.txt", "-o", "out", "--lease", "\uff16\uff10"], "--lease", id="lease"
        ),
        pytest.param(
            ["tasks", "collect", "-o", "out", "--concurrency", "\uff13"],
            "--concurrency",
            id="collect-concurrency",
        ),
    ],
)
async def test_a_number_in_other_digits_is_refused_naming_the_option(
    quick: Emulator, tmp_path: Path, args: list[str], option: str
) -> None:
    """Non-ASCII digits (or 1_0): exit 2, the option and "ASCII digits" named, nothing sent."""
    (tmp_path / "p.txt").write_text("a cat\n")
    status, stdout, stderr = await finished(
        *args, "--journal", "j.sqlite", env=emulator_env(quick), cwd=tmp_path
    )
    assert status == 2, stderr
    assert f"argument {option}: " in stderr, stderr
    assert "ASCII digits" in stderr, stderr
    assert "Traceback" not in stderr
    assert not quick.ledger
    assert not stdout


def test_an_emulator_port_in_other_digits_is_refused() -> None:
    """`zimage emulator --port` in full-width digits: exit 2, naming the rule; no server."""
    done = subprocess.run(
        [sys.executable, "-m", "zimage_async", "emulator", "--port", "\uff18\uff10\uff10\uff10"],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=15,  # a server that started would run until killed here
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "argument --port: " in done.stderr and "ASCII digits" in done.stderr, done.stderr
