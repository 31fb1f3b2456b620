r"""A command the CLI prints for the user to run again runs as printed, whatever it names.

Output lines are escaped and cut so that no server or file can drive the terminal; a
command line printed that way (a resume or collect command) named another folder or
journal when run: ``\t`` or ``\u200d`` inside shell quotes is taken literally, and a
cut command is another command. Such commands quote hidden characters the way the shell
reads them back (``$'...'``) and are never cut.
"""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

from zimage_async._cli_common import collect_commands, printable_command, say
from zimage_async._quoting import shell_line

FOLDERS = [
    pytest.param("family \U0001f468\u200d\U0001f469\u200d\U0001f467/out", id="zwj-emoji"),
    pytest.param("renders\tv2", id="tab"),
    pytest.param("a\nb 'quoted' \\ back", id="newline-quote-backslash"),
    pytest.param("esc\x1b[31mred", id="escape-sequence"),
    pytest.param("x" * 1003, id="long"),
]


def _read_back(line: str) -> list[str]:
    """The arguments bash reads from *line* (its words after the program's name)."""
    words = line.split(" ", 1)[1]
    done = subprocess.run(  # noqa: S603 - a fixed bash, arguments from the test
        ["/bin/bash", "-c", f"printf '%s\\0' {words}"],
        capture_output=True,
        timeout=30,
        check=True,
    )
    return done.stdout.decode().split("\0")[:-1]


@pytest.mark.skipif(sys.platform == "win32", reason="bash")
@pytest.mark.parametrize("folder", FOLDERS)
def test_a_printed_collect_command_runs_as_it_was_meant(
    folder: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Printed on stderr by say(), the command reads back as the arguments it was made of."""
    command = collect_commands("task-unified-1-abcd1234", folder, None)[0]
    say(f"collect it with:\n  {command}")
    stderr = capsys.readouterr().err
    printed = stderr.split("\n")[1].strip()
    assert _read_back(printed) == ["task", "task-unified-1-abcd1234", "-o", folder]
    assert "\x1b" not in stderr


@pytest.mark.parametrize("folder", FOLDERS)
def test_a_printed_resume_command_runs_as_it_was_meant(folder: str) -> None:
    """printable_command quotes for the shell too (its URLs still lose their password)."""
    line = printable_command(["batch", "p.txt", "-o", folder])
    assert _read_back(line) == ["batch", "p.txt", "-o", folder]


def test_plain_arguments_are_quoted_as_before() -> None:
    """Without hidden characters, the quoting is shlex's."""
    args = ["zimage", "task", "a b", "it's", "-o", "out/"]
    assert shell_line(args) == shlex.join(args)
