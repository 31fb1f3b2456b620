"""What `zimage batch` says of each item, and in its summary, in the command's own words.

An item's line (and its ``--json`` record) gave the library's advice for Python code
(``session.resubmit(error)``, ``resubmit_uncertain=True``, ``api_key=``), which no
option of the command follows; items saved by an earlier run were shown by absolute
paths beside this run's ``out/...``; items never sent were counted as failed.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from zimage_async.emulator import Emulator, FaultPlan

from ._cli import emulator_env, finished

#: Advice only a Python caller can follow: a method call, a keyword argument.
PYTHON_ADVICE = re.compile(r"session\.|handle\.|resubmit\(|\w+=True|api_key=|\w\(\)")


@pytest.fixture
async def quick() -> AsyncIterator[Emulator]:
    async with Emulator(task_duration=0.05) as emu:
        yield emu


def records(stdout: str) -> list[dict[str, Any]]:
    """Return the JSON objects the command printed, one a line."""
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


async def test_an_uncertain_item_names_the_batch_option_not_python_calls(
    quick: Emulator, tmp_path: Path
) -> None:
    """An uncertain item's line and record name --resubmit-uncertain, no Python call.

    Both in the run whose create lost its answer and in the rerun that reports it.
    """
    (tmp_path / "p.txt").write_text("a cat\n")
    quick.faults = FaultPlan.script("create", ["reset_after_create"])
    env = emulator_env(quick)
    args = ("batch", "p.txt", "-o", "out")
    for extra in ([], ["--json"]):  # the first run, then the rerun that reports it
        status, stdout, stderr = await finished(*args, *extra, env=env, cwd=tmp_path)
        assert status == 1, stderr
        if extra:
            (item, _summary) = records(stdout)
            assert item["error"]["type"] == "SubmissionUncertainError"
            text = item["error"]["message"]
        else:
            (text,) = [line for line in stdout.splitlines() if "line 1" in line]
        assert PYTHON_ADVICE.search(text) is None, text
        assert "--resubmit-uncertain" in text, text
    assert len(quick.ledger) == 1  # nothing was sent twice


async def test_an_uncertain_items_json_record_names_the_batch_option(
    quick: Emulator, tmp_path: Path
) -> None:
    """--json in the run whose create lost its answer: the record's advice is the option."""
    (tmp_path / "p.txt").write_text("a cat\n")
    quick.faults = FaultPlan.script("create", ["reset_after_create"])
    status, stdout, stderr = await finished(
        "batch", "p.txt", "-o", "out", "--json", env=emulator_env(quick), cwd=tmp_path
    )
    assert status == 1, stderr
    item = records(stdout)[0]
    text = item["error"]["message"]
    assert PYTHON_ADVICE.search(text) is None, text
    assert "--resubmit-uncertain" in text, text


async def test_a_refused_key_is_named_without_the_python_keyword(
    quick: Emulator, tmp_path: Path
) -> None:
    """A 403 that stops the batch: lines, records and messages name ZIMAGE_API_KEY only."""
    (tmp_path / "p.txt").write_text("a cat\na dog\na cow\n")
    quick.faults = FaultPlan.script("create", ["ok", "http_403"])
    env = emulator_env(quick)
    args = ("batch", "p.txt", "-o", "out", "--concurrency", "1")
    status, stdout, stderr = await finished(*args, env=env, cwd=tmp_path)
    assert status == 1, stderr
    assert "ZIMAGE_API_KEY" in stdout and "ZIMAGE_API_KEY" in stderr
    assert PYTHON_ADVICE.search(stdout + stderr) is None, stdout + stderr
    assert stderr.count("the batch stopped sending creates") == 1, stderr


async def test_items_saved_earlier_are_shown_under_the_output_folder_as_given(
    quick: Emulator, tmp_path: Path
) -> None:
    """A rerun shows an item saved by an earlier run as out/NAME, as it shows a new one."""
    prompts = tmp_path / "p.txt"
    prompts.write_text("a cat\n")
    env = emulator_env(quick)
    args = ("batch", "p.txt", "-o", "out")
    first = await finished(*args, env=env, cwd=tmp_path)
    assert first[0] == 0, first[2]
    prompts.write_text("a cat\na dog\n")
    status, stdout, stderr = await finished(*args, env=env, cwd=tmp_path)
    assert status == 0, stderr
    assert "saved line 1 (resumed): out/0001-a-cat-0.png" in stdout, stdout
    assert "saved line 2: out/0002-a-dog-0.png" in stdout, stdout
    status, stdout, stderr = await finished(*args, "--json", env=env, cwd=tmp_path)
    assert status == 0, stderr
    paths = [record["paths"] for record in records(stdout) if record["event"] == "item"]
    assert paths == [["out/0001-a-cat-0.png"], ["out/0002-a-dog-0.png"]], paths


async def test_items_never_sent_are_counted_as_not_sent_not_failed(
    quick: Emulator, tmp_path: Path
) -> None:
    """A batch stopped by a 403: its unsent items are "not sent", and a rerun sends them."""
    (tmp_path / "p.txt").write_text("a cat\na dog\na cow\na pig\n")
    quick.faults = FaultPlan.script("create", ["ok", "http_403", "ok", "http_403"])
    env = emulator_env(quick)
    args = ("batch", "p.txt", "--concurrency", "1")
    status, stdout, stderr = await finished(*args, "-o", "out", env=env, cwd=tmp_path)
    assert status == 1, stderr
    assert "4 item(s): 1 saved, 1 failed, 2 not sent " in stdout, stdout
    assert "run the same command again" in stderr and "2 item(s) not sent" in stderr, stderr
    assert "batch p.txt --concurrency 1 -o out" in stderr
    status, stdout, stderr = await finished(*args, "-o", "out2", "--json", env=env, cwd=tmp_path)
    assert status == 1, stderr
    summary = records(stdout)[-1]
    assert (summary["saved"], summary["failed"], summary["not_sent"]) == (1, 1, 2), summary
    status, stdout, stderr = await finished(*args, "-o", "out", env=env, cwd=tmp_path)
    assert status == 0, stderr
    assert "4 item(s): 4 saved, 0 failed (1 from an earlier run)" in stdout, stdout
