"""The command line with its standard output or error closed (``>&-``, ``2>&-``).

A closed stream is ``None`` in Python: the first write to it raised AttributeError (a
traceback, on the stream still open), and messages meant for stderr went to stdout,
into the middle of ``--json`` output. A closed stream is now the null device: what is
written to it is dropped, and no file the command opens takes its place.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ._cli import cli_env


def _run(redirect: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``zimage`` (no key: the in-process emulator) with *redirect* (``>&-``...)."""
    command = f'exec "$@" {redirect}'
    return subprocess.run(  # noqa: S603 - our own interpreter and module, fixed argv
        ["/bin/sh", "-c", command, "sh", sys.executable, "-m", "zimage_async", *args],
        capture_output=True,
        text=True,
        env=cli_env(XDG_STATE_HOME=str(cwd / "state")),
        cwd=cwd,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", ["batch", "generate"])
def test_a_closed_stdout_is_no_traceback(tmp_path: Path, command: str) -> None:
    what = ["batch", "prompts.txt"] if command == "batch" else ["generate", "a fox"]
    (tmp_path / "prompts.txt").write_text("a cat\na dog\n")
    done = _run(">&-", *what, "-o", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert len(list((tmp_path / "out").glob("*.png"))) == (2 if command == "batch" else 1)


@pytest.mark.parametrize("command", ["batch", "generate"])
def test_with_stderr_closed_json_output_is_only_json(tmp_path: Path, command: str) -> None:
    what = ["batch", "prompts.txt"] if command == "batch" else ["generate", "a fox"]
    (tmp_path / "prompts.txt").write_text("a cat\na dog\n")
    done = _run("2>&-", *what, "-o", "out", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stdout
    for line in done.stdout.splitlines():
        json.loads(line)  # every line of stdout is JSON: no message strayed there
