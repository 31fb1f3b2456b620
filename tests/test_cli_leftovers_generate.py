"""`zimage generate --json` stopped by Ctrl-C while its create is on its way.

It printed nothing on stdout: a program reading the record got no word of a create
that may have made (and billed) a task. It now prints one record: interrupted, the
create's outcome unknown, its idempotency key, and the command that sends it again
under that key, as the message on stderr says; the exit status is 130, as for any
Ctrl-C.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from zimage_async.emulator import Emulator, FaultPlan, FaultRule

from ._cli import emulator_env, ended, finished, start
from .conftest import until


async def _interrupted_create(emu: Emulator, tmp_path: Path, *options: str) -> tuple[int, str, str]:
    """Run `zimage generate --json` and press Ctrl-C while its create waits for its answer."""
    emu.faults = FaultPlan.script("create", [FaultRule(kind="slow", delay_seconds=30)])
    process = await start(emu, "generate", "a cat", "-o", "out/", "--json", *options, cwd=tmp_path)
    await until(lambda: emu.faults_injected.get("slow", 0) >= 1, deadline=30)
    process.send_signal(signal.SIGINT)
    return await ended(process)


async def test_ctrl_c_during_the_create_prints_one_uncertain_record(tmp_path: Path) -> None:
    """One JSON record: interrupted, outcome unknown, the journal's key and the resend command.

    Exit 130. The key is the one the journal lists for the create, which
    `zimage tasks collect --resubmit-uncertain` sends again.
    """
    async with Emulator(task_duration=0.05) as emu:
        status, stdout, stderr = await _interrupted_create(emu, tmp_path, "--journal", "j.sqlite")
        listed = await finished(
            "tasks", "list", "--journal", "j.sqlite", "--json", env=emulator_env(emu), cwd=tmp_path
        )
    assert status == 130, stderr
    [line] = stdout.splitlines()
    record = json.loads(line)
    [journaled] = json.loads(listed[1])["records"]
    assert journaled["state"] in ("submitting", "uncertain"), journaled
    assert record["status"] == "uncertain", record
    assert record["task_id"] is None and record["paths"] == []
    assert record["idempotency_key"] == journaled["key"], (record, journaled)
    assert record["error"]["type"] == "Interrupted", record
    message = record["error"]["message"]
    assert message.startswith("interrupted while creating the task"), message
    assert "may exist" in message and journaled["key"] in message, message
    assert "zimage tasks collect -o out/ --resubmit-uncertain --journal j.sqlite" in message, (
        message
    )
    assert stderr.count("interrupted") == 1, stderr  # the message on stderr, as before
    assert journaled["key"] in stderr, stderr


async def test_without_a_journal_the_record_says_nothing_can_send_it_again(
    tmp_path: Path,
) -> None:
    """--no-journal: the record still gives the key, and says that no command can resend it."""
    async with Emulator(task_duration=0.05) as emu:
        status, stdout, stderr = await _interrupted_create(emu, tmp_path, "--no-journal")
    assert status == 130, stderr
    [line] = stdout.splitlines()
    record = json.loads(line)
    assert record["status"] == "uncertain" and record["task_id"] is None, record
    assert record["error"]["type"] == "Interrupted", record
    key = record["idempotency_key"]
    assert key and key in record["error"]["message"], record
    assert "no command can collect it" in record["error"]["message"], record
    assert "--resubmit-uncertain" not in record["error"]["message"].split("Without")[0]
