"""What the command says when Ctrl-C stops it, and what a rerun says after such a stop.

`zimage generate` stopped during its create said "interrupted: interrupted while
creating the task". `zimage batch --json` stopped with a create on its way printed no
record for that item, nor for the items it never sent; every item gets one record now.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

from zimage_async.emulator import Emulator, FaultPlan, FaultRule

from ._cli import emulator_env, ended, finished, start
from .conftest import until


def records(stdout: str) -> list[dict[str, Any]]:
    """Return the JSON objects the command printed, one a line."""
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


async def test_ctrl_c_during_the_create_does_not_say_interrupted_twice(tmp_path: Path) -> None:
    """The message of a generate stopped while creating says "interrupted" once."""
    async with Emulator(task_duration=0.05) as emu:
        emu.faults = FaultPlan.script("create", [FaultRule(kind="slow", delay_seconds=30)])
        process = await start(
            emu, "generate", "a cat", "-o", "out/", "--journal", "j.sqlite", cwd=tmp_path
        )
        await until(lambda: emu.faults_injected.get("slow", 0) >= 1, deadline=30)
        process.send_signal(signal.SIGINT)
        status, _, stderr = await ended(process)
    assert status == 130, stderr
    assert stderr.count("interrupted") == 1, stderr
    assert "--resubmit-uncertain" in stderr, stderr


async def test_every_item_of_an_interrupted_batch_gets_one_json_record(tmp_path: Path) -> None:
    """Ctrl-C with a create on its way: one record per item, the cut-off one uncertain.

    The uncertain record gives the create's key and the command that sends it again;
    the items never sent are "not_sent"; then the summary.
    """
    (tmp_path / "p.txt").write_text("a cat\na dog\na cow\n")
    plan = FaultPlan.script("create", ["ok", FaultRule(kind="slow", delay_seconds=30)])
    async with Emulator(task_duration=0.05, faults=plan) as emu:
        args = ("batch", "p.txt", "-o", "out", "--concurrency", "1", "--json")
        process = await start(emu, *args, cwd=tmp_path)
        await until(lambda: emu.faults_injected.get("slow", 0) >= 1, deadline=30)
        await asyncio.sleep(0.3)
        process.send_signal(signal.SIGINT)
        status, stdout, stderr = await ended(process)
    assert status == 130, stderr
    *items, summary = records(stdout)
    assert summary["event"] == "summary" and summary["interrupted"], summary
    assert sorted(item["index"] for item in items) == [0, 1, 2], items
    by_index = {item["index"]: item for item in items}
    assert by_index[0]["status"] == "saved"
    cut = by_index[1]
    assert cut["status"] == "uncertain", cut
    assert cut["error"]["type"] == "Interrupted", cut
    assert cut["idempotency_key"], cut
    assert (
        "batch p.txt -o out --concurrency 1 --json --resubmit-uncertain"
        in (cut["error"]["message"])
    ), cut
    assert by_index[2]["status"] == "not_sent", by_index[2]
    assert "run the same command again" in by_index[2]["error"]["message"]


async def test_items_with_running_tasks_get_an_interrupted_record(tmp_path: Path) -> None:
    """Ctrl-C while tasks run: each item's record names its task, which a rerun resumes."""
    (tmp_path / "p.txt").write_text("a cat\na dog\n")
    async with Emulator(task_duration=5.0) as emu:
        args = ("batch", "p.txt", "-o", "out", "--json")
        process = await start(emu, *args, cwd=tmp_path)
        await until(
            lambda: len(emu.ledger) >= 2 and emu.request_counts.get("task", 0) >= 2, deadline=30
        )
        process.send_signal(signal.SIGINT)
        status, stdout, stderr = await ended(process)
        tasks = sorted(entry.task_id for entry in emu.ledger)
    assert status == 130, stderr
    *items, _summary = records(stdout)
    assert [item["status"] for item in items] == ["interrupted", "interrupted"], items
    assert sorted(item["task_id"] for item in items) == tasks
    for item in items:
        assert "interrupted: interrupted" not in item["error"]["message"]
        assert "run the same command again" in item["error"]["message"], item


async def test_a_rerun_after_an_orderly_stop_takes_nothing_over(tmp_path: Path) -> None:
    """Ctrl-C gives the items back: the rerun warns of no takeover of another's claims."""
    (tmp_path / "p.txt").write_text("a cat\na dog\n")
    async with Emulator(task_duration=3.0) as emu:
        args = ("batch", "p.txt", "-o", "out")
        process = await start(emu, *args, cwd=tmp_path)
        await until(
            lambda: len(emu.ledger) >= 2 and emu.request_counts.get("task", 0) >= 2, deadline=30
        )
        process.send_signal(signal.SIGINT)
        status, _, stderr = await ended(process)
        assert status == 130, stderr
        status, _, stderr = await finished(*args, env=emulator_env(emu), cwd=tmp_path)
    assert status == 0, stderr
    assert "taking over" not in stderr, stderr
