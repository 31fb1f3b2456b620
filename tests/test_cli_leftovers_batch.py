"""Plain `zimage batch` output stopped by Ctrl-C: a line for each item that was in flight.

The per-item lines named the saved and failed items only; the items in flight when
Ctrl-C came (a task still running, a create on its way) were left to the closing
message's counts. Each now gets a line as the others do: its count, its line in the
file, its task, "INTERRUPTED" and what running the same command again does for it.
"""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

from zimage_async.emulator import Emulator, FaultPlan, FaultRule

from ._cli import ended, start
from .conftest import until

#: A per-item line of the plain output: its count, verdict, line and task, then the text.
ITEM_LINE = re.compile(r"\[(\d+)/(\d+)\] (\S+(?: SENT)?) line (\d+)(?: \(task (\S+)\))?: (.*)")


async def test_each_item_in_flight_at_ctrl_c_gets_a_line(tmp_path: Path) -> None:
    """Running tasks and a create on its way each get an INTERRUPTED line saying what a rerun does.

    Lines 1 and 2 have tasks still running (a rerun resumes them, not paying again);
    line 3's create was on its way (--resubmit-uncertain sends it again under its key);
    line 5 was never sent: no line, the closing message counts it.
    """
    (tmp_path / "p.txt").write_text("a cat\na dog\na cow\n# skipped\na pig\n")
    plan = FaultPlan.script("create", ["ok", "ok", FaultRule(kind="slow", delay_seconds=30)])
    async with Emulator(task_duration=30.0, faults=plan) as emu:
        args = ("batch", "p.txt", "-o", "out", "--concurrency", "3")
        process = await start(emu, *args, cwd=tmp_path)
        await until(
            lambda: (
                emu.faults_injected.get("slow", 0) >= 1 and emu.request_counts.get("task", 0) >= 2
            ),
            deadline=30,
        )
        await asyncio.sleep(0.3)
        process.send_signal(signal.SIGINT)
        status, stdout, stderr = await ended(process)
        tasks = sorted(entry.task_id for entry in emu.ledger[:2])
    assert status == 130, stderr
    lines = [ITEM_LINE.fullmatch(line) for line in stdout.splitlines()]
    assert all(lines), stdout
    parsed = [m.groups() for m in lines if m is not None]
    assert [(count, total) for count, total, *_ in parsed] == [("1", "4"), ("2", "4"), ("3", "4")]
    by_line = {int(number): (verdict, task, text) for _, _, verdict, number, task, text in parsed}
    assert sorted(by_line) == [1, 2, 3], stdout
    assert {verdict for verdict, _, _ in by_line.values()} == {"INTERRUPTED"}, stdout
    assert sorted(by_line[n][1] for n in (1, 2)) == tasks
    for number in (1, 2):
        text = by_line[number][2]
        assert "run the same command again to resume it without paying twice" in text, text
        assert "`zimage batch p.txt -o out --concurrency 3`" in text, text
    cut_task, cut_text = by_line[3][1], by_line[3][2]
    assert cut_task == "-", stdout
    assert "may have been made" in cut_text, cut_text
    assert "`zimage batch p.txt -o out --concurrency 3 --resubmit-uncertain`" in cut_text
    assert "3 interrupted, 1 not sent" in stderr, stderr
