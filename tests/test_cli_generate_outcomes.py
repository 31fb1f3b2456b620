"""What `zimage generate` says when its task gives no image, or its create is in doubt.

Each outcome names what the user can do with the command line, never the Python API: a
task that completed without an image has nothing to collect; a create whose answer was
lost is in the journal, and ``zimage tasks collect --resubmit-uncertain`` sends it again
with its own key; a create cut off with ``--no-journal`` is recorded nowhere. Library
warnings come out in the command's own form (``zimage: warning: ...``), and ``--json``
prints a record for every outcome, an interruption included.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from zimage_async.emulator import Emulator, FaultPlan, FaultRule, ManualClock

from ._cli import created_and_polled, ended, start
from .conftest import until

#: A create billed whose answer is lost: a proxy's HTML 502 page after the task was made.
LOST_ANSWER = ["html_5xx_after_create"]


@pytest.fixture
async def quick() -> AsyncIterator[Emulator]:
    async with Emulator(task_duration=0.05) as emu:
        yield emu


def _lines_are_the_commands(stderr: str) -> None:
    """Every line of *stderr* is a message of the command or a command it prints."""
    for line in stderr.splitlines():
        assert line.startswith(("zimage: ", "  zimage ", "or ", "and ")), line


@pytest.mark.parametrize("directive", ["empty", "missing", "null"])
async def test_a_task_that_completed_without_an_image_is_not_said_to_be_collectable(
    quick: Emulator, tmp_path: Path, directive: str
) -> None:
    """No `keeps running`, no collect commands: collecting it again would not help."""
    prompt = f"a cat [[results:{directive}]]"
    journal = tmp_path / "j.sqlite"
    process = await start(
        quick, "generate", prompt, "-o", tmp_path / "out", "--journal", journal, "--json"
    )
    status, stdout, stderr = await ended(process)
    assert status == 1, stderr
    task_id = quick.ledger[0].task_id
    assert "NoResultsError" in stderr
    assert f"task {task_id} completed without any image" in stderr
    assert "will not help" in stderr
    assert "keeps running" not in stderr
    assert "zimage task " not in stderr and "tasks collect" not in stderr
    record = json.loads(stdout)
    assert (record["task_id"], record["paths"]) == (task_id, [])
    assert record["error"]["type"] == "NoResultsError"
    _lines_are_the_commands(stderr)


async def test_a_create_whose_answer_was_lost_gives_the_command_that_recovers_it(
    quick: Emulator, tmp_path: Path
) -> None:
    """The CLI's remedy, not `session.resubmit(error)`; --json prints the uncertain create."""
    quick.faults = FaultPlan.script("create", LOST_ANSWER)
    out = tmp_path / "out"
    args = ["generate", "a cat", "-o", "out/", "--journal", "j.sqlite", "--json"]
    status, stdout, stderr = await ended(await start(quick, *args, cwd=tmp_path))
    assert status == 1, stderr
    assert "Traceback" not in stderr
    assert "session.resubmit" not in stderr and "resubmit(error)" not in stderr
    assert "zimage tasks collect -o out/ --resubmit-uncertain --journal j.sqlite\n" in stderr
    assert "uncertain" in stderr
    _lines_are_the_commands(stderr)
    record = json.loads(stdout)
    assert record["status"] == "uncertain"
    assert record["task_id"] is None and record["paths"] == []
    assert record["error"]["type"] == "SubmissionUncertainError"
    assert "session.resubmit" not in record["error"]["message"]
    listed = await ended(
        await start(quick, "tasks", "list", "--journal", "j.sqlite", "--json", cwd=tmp_path)
    )
    [row] = json.loads(listed[1])["records"]
    assert (row["key"], row["state"]) == (record["idempotency_key"], "uncertain")

    # The advice, followed: the task the first create made is saved, and billed once.
    again = ["tasks", "collect", "-o", "out", "--journal", "j.sqlite", "--resubmit-uncertain"]
    status, stdout, stderr = await ended(await start(quick, *again, cwd=tmp_path))
    assert status == 0, stderr
    assert len(list(out.glob("*.png"))) == 1
    assert len(quick.ledger) == 1


async def test_a_create_whose_answer_was_lost_without_a_journal_says_nothing_records_it(
    quick: Emulator, tmp_path: Path
) -> None:
    """--no-journal: no command can resend it; the user is told so, and the key is printed."""
    quick.faults = FaultPlan.script("create", LOST_ANSWER)
    args: list[str | Path] = ["generate", "a cat", "-o", tmp_path, "--no-journal", "--json"]
    status, stdout, stderr = await ended(await start(quick, *args))
    assert status == 1, stderr
    assert "session.resubmit" not in stderr
    assert "--no-journal" in stderr
    record = json.loads(stdout)
    assert record["status"] == "uncertain"
    assert record["idempotency_key"]
    _lines_are_the_commands(stderr)


async def test_ctrl_c_during_a_create_without_a_journal_is_told_in_the_commands_words(
    tmp_path: Path,
) -> None:
    """No raw log line asking for `idempotency_key=`: a `zimage:` message about --no-journal."""
    async with Emulator(task_duration=0.05) as emu:
        emu.faults = FaultPlan.script("create", [FaultRule(kind="slow", delay_seconds=30)])
        process = await start(emu, "generate", "a cat", "-o", tmp_path, "--no-journal")
        await until(lambda: emu.faults_injected.get("slow", 0) >= 1, deadline=30)
        await asyncio.sleep(0.2)  # the request is out: the emulator holds it
        process.send_signal(signal.SIGINT)
        status, _, stderr = await ended(process)
    assert status == 130, stderr
    assert "idempotency_key" not in stderr
    assert "--no-journal" in stderr
    assert "zimage-emulator-key" not in stderr
    _lines_are_the_commands(stderr)


async def test_library_warnings_are_shown_in_the_commands_form(tmp_path: Path) -> None:
    """A warning of the library reaches stderr as `zimage: warning: ...`, not a raw line."""
    async with Emulator(task_duration=0.05, image_format="webp") as emu:
        args: list[str | Path] = ["generate", "a cat", "-o", tmp_path / "fox.png", "--no-journal"]
        status, stdout, stderr = await ended(await start(emu, *args))
    assert status == 0, stderr
    assert stdout.strip() == str(tmp_path / "fox.webp")
    [warning] = [line for line in stderr.splitlines() if "image/webp" in line]
    assert warning.startswith("zimage: warning: task ")
    _lines_are_the_commands(stderr)


async def test_ctrl_c_while_waiting_prints_the_json_record_of_the_billed_task(
    tmp_path: Path,
) -> None:
    """`generate --json`, interrupted once its task exists: the record is on stdout."""
    async with Emulator(clock=ManualClock(start=time.time()), task_duration=5.0) as emu:
        process = await start(emu, "generate", "a cat", "-o", tmp_path, "--json")
        task_id = await created_and_polled(emu)
        process.send_signal(signal.SIGINT)
        status, stdout, stderr = await ended(process)
    assert status == 130, stderr
    record = json.loads(stdout)
    assert (record["task_id"], record["paths"]) == (task_id, [])
    assert record["status"] == "pending"
    assert record["error"]["type"] == "Interrupted"
    assert f"zimage task {task_id} -o {tmp_path}" in record["error"]["message"]


async def test_a_download_that_gave_up_gets_the_collect_advice_once(tmp_path: Path) -> None:
    """The library's own "collect it later" note is left out: the command gives its own."""
    plan = FaultPlan(rules=(FaultRule(kind="http_500", endpoint="image", rate=1.0),))
    async with Emulator(task_duration=0.05, faults=plan) as emu:
        out = tmp_path / "out"
        process = await start(emu, "generate", "a cat", "-o", out, "--no-journal")
        status, _, stderr = await ended(process)
        task_id = emu.ledger[0].task_id
    assert status == 1, stderr
    assert "ImageDownloadError" in stderr
    assert "is billed" not in stderr  # the library's note, in the Python API's words
    assert stderr.count(f"zimage task {task_id}") == 1, stderr
    assert f"zimage task {task_id} -o {out}" in stderr
