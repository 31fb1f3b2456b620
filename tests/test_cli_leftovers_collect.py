"""`zimage tasks collect --json` says each failure in the command's words, not the library's.

Its records carried the library's messages as they are: a task still running when
``--timeout`` passed said "await the handle again, or collect it later with
session.task(...)", and an image that could not be downloaded said the same in a note
meant for Python callers. `zimage generate --json` and `zimage batch --json` give
command-line wording; so does collect now, with its fields and codes as they were.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aiohttp

from zimage_async._journal_records import JournalState
from zimage_async.emulator import Emulator, FaultPlan, FaultRule

from .test_cli_tasks import _journal_with, _record, zimage

#: What only a Python caller can act on: a method, a keyword argument, a handle.
PYTHON_TERMS = re.compile(r"session\.|\.task\(|await the handle|\w+=True|\w+\(\)|handle")
FIELDS = {"event", "key", "task_id", "status", "paths", "error"}


async def _create(emulator: Emulator, prompt: str) -> str:
    """Make a task at the emulator, as a process that stopped after its create would have."""
    async with aiohttp.ClientSession() as http:
        reply = await http.post(
            f"{emulator.base_url}/v1/images/generations",
            json={"model": "z-image-turbo", "prompt": prompt},
            headers={"Authorization": f"Bearer {emulator.api_key}"},
        )
        assert reply.status == 200
    return emulator.ledger[-1].task_id


def _events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


async def test_collect_json_messages_are_in_the_commands_words(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Each failure's message names commands and options, never Python calls.

    A failed task, an unknown task, a task still running at --timeout and an image the
    host would not give: each record keeps its fields, status and error type; the
    messages of those that a later collect can still save name that very command.
    """
    failed = await _create(emulator, "a cat [[fail:content_policy_violation]]")
    slow = await _create(emulator, "a slow cat [[duration:60]]")
    broken = await _create(emulator, "a broken cat")
    unknown = "task-unified-1700000000-abcdefgh"
    await _journal_with(
        *(
            _record(name, prompt, emulator.base_url, state=JournalState.CREATED, task_id=task)
            for name, prompt, task in (
                ("failed-01", "a cat", failed),
                ("slow-0001", "a slow cat", slow),
                ("broken-01", "a broken cat", broken),
                ("unknown-1", "a ghost", unknown),
            )
        )
    )
    emulator.faults = FaultPlan(rules=(FaultRule(kind="trailing_garbage", endpoint="image"),))
    out = tmp_path / "out"
    status, stdout, stderr = await zimage(
        emulator, "tasks", "collect", "-o", out, "--timeout", "1", "--json"
    )
    assert status == 1, stderr
    *events, summary = _events(stdout)
    assert summary["event"] == "summary"
    by_id = {event["task_id"]: event for event in events}
    assert all(set(event) == FIELDS for event in events), events
    codes = {task: (event["status"], event["error"]["type"]) for task, event in by_id.items()}
    assert codes == {
        failed: ("failed", "TaskFailedError"),
        slow: ("timeout", "WaitTimeoutError"),
        broken: ("failed", "ImageDownloadError"),
        unknown: ("failed", "NotFoundError"),
    }
    for event in events:
        message = event["error"]["message"]
        assert not PYTHON_TERMS.search(message), message
    again = f"`zimage tasks collect -o {out}` again"
    for task in (slow, broken):  # still billed and in the journal: collect saves them later
        message = by_id[task]["error"]["message"]
        assert again in message, message
        assert message.count("again") == 1, message  # one piece of advice, not two
    assert "(--timeout)" in by_id[slow]["error"]["message"]
    assert "content_policy_violation" in by_id[failed]["error"]["message"]
    assert again not in by_id[failed]["error"]["message"]  # nothing left to collect
    assert "was not found" in by_id[unknown]["error"]["message"]


async def test_plain_collect_lines_say_what_the_json_says(
    emulator: Emulator, tmp_path: Path
) -> None:
    """The plain line of a timed-out task gives the same command-line advice, once."""
    slow = await _create(emulator, "a slow cat [[duration:60]]")
    await _journal_with(
        _record(
            "slow-0001", "a slow cat", emulator.base_url, state=JournalState.CREATED, task_id=slow
        )
    )
    out = tmp_path / "out"
    status, stdout, stderr = await zimage(emulator, "tasks", "collect", "-o", out, "--timeout", "1")
    assert status == 1, stderr
    line = stdout.splitlines()[0]
    assert line.startswith(f"timeout {slow}: task {slow} was still "), line
    assert line.count("it keeps running") == 1, line
    assert f"`zimage tasks collect -o {out}` again" in line, line
    assert not PYTHON_TERMS.search(line), line
