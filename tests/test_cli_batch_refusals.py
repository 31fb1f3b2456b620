r"""``zimage batch`` refuses, before any create, what the library refuses, and says so right.

Each test runs the command line without a key (the in-process emulator), as a user
would; a refusal must come before anything is billed (exit 2, no image made).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

from ._cli import finished

FAST = ["--emulator-task-duration", "0.05"]


class Done(NamedTuple):
    """How a run of the command line ended."""

    returncode: int
    stdout: str
    stderr: str


async def zimage(*args: str | Path, cwd: Path) -> Done:
    """Run the command line without an API key (so on the in-process emulator)."""
    return Done(*await finished(*args, *FAST, cwd=cwd))


async def test_an_output_folder_named_like_an_image_is_refused(tmp_path: Path) -> None:
    """``-o shots.png`` (no such folder) is taken for a typo, as the library takes it."""
    (tmp_path / "one.txt").write_text("a cat\n")
    done = await zimage("batch", "one.txt", "-o", "shots.png", cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "zimage: error: cannot write to the output directory shots.png: " in done.stderr
    assert "ends in an image extension" in done.stderr
    assert not (tmp_path / "shots.png").exists()  # nothing made, nothing sent


async def test_an_existing_folder_named_like_an_image_is_used(tmp_path: Path) -> None:
    (tmp_path / "one.txt").write_text("a cat\n")
    (tmp_path / "shots.png").mkdir()
    done = await zimage("batch", "one.txt", "-o", "shots.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert list((tmp_path / "shots.png").glob("*.png"))


async def test_a_newline_in_the_output_folder_is_escaped_in_the_summary(tmp_path: Path) -> None:
    """The summary lines name the folder and the journal escaped: no line is forged."""
    (tmp_path / "one.txt").write_text("a cat\n")
    folder = "d1\nFAKE: 0 failed"
    done = await zimage("batch", "one.txt", "-o", folder, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = (done.stdout + done.stderr).splitlines()
    assert not [line for line in lines if line.startswith("FAKE")], lines
    assert any("images in d1\\nFAKE: 0 failed" in line for line in lines), lines


async def test_a_refused_output_folder_still_ends_json_with_its_summary(tmp_path: Path) -> None:
    """``--json``: an -o that is a file gets the summary record with its error."""
    (tmp_path / "one.txt").write_text("a cat\n")
    (tmp_path / "afile").write_text("not a folder\n")
    done = await zimage("batch", "one.txt", "-o", "afile", "--json", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    [line] = done.stdout.splitlines()
    record = json.loads(line)
    assert record["event"] == "summary" and record["worker"] is None
    assert record["saved"] == 0 and record["error"]["type"] == "UsageError"
    assert "afile" in record["error"]["message"]


async def test_a_name_clash_names_the_lines_of_the_two_items(tmp_path: Path) -> None:
    """Two prompts on lines 3 and 5 that the template names alike: the error says 3 and 5."""
    (tmp_path / "dup.txt").write_text("# comment\n\na cat\n# x\na cat\n")
    done = await zimage("batch", "dup.txt", "-o", "out", "--name", "{slug}", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "gives lines 3 and 5 the same file name" in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()


async def test_a_jsonl_row_giving_a_field_twice_is_refused(tmp_path: Path) -> None:
    """``{"prompt": "a cat", "prompt": "a dog"}``: which one to bill? Neither: refused."""
    (tmp_path / "rows.jsonl").write_text(
        '{"prompt": "a cat", "seed": 5}\n{"prompt": "a cat", "prompt": "a dog"}\n'
    )
    done = await zimage("batch", "rows.jsonl", "-o", "out", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "rows.jsonl line 2" in done.stderr and "'prompt'" in done.stderr, done.stderr
    assert "twice" in done.stderr
    assert not (tmp_path / "out").exists()


async def test_an_infinite_spend_limit_is_refused_as_generate_refuses_it(tmp_path: Path) -> None:
    """``--max-credits inf`` is no limit: batch refuses it before anything, like generate."""
    (tmp_path / "one.txt").write_text("a cat\n")
    for command in (["batch", "one.txt", "-o", "out"], ["generate", "a cat", "-o", "out/"]):
        done = await zimage(*command, "--max-credits", "inf", cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert "--max-credits" in done.stderr and "credits >= 0" in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()


async def test_the_task_command_offers_no_spend_limit_in_its_help(tmp_path: Path) -> None:
    """``zimage task`` has no --max-credits: its --no-journal help does not name one."""
    done = await zimage("task", "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "--no-journal" in done.stdout and "--max-credits" not in done.stdout
