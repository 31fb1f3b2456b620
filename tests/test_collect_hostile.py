"""`zimage tasks collect` reports a task it cannot save, of whatever cause, and goes on."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp

from zimage_async._journal_records import JournalState
from zimage_async.emulator import Emulator

from .test_cli_tasks import _journal_with, _record, zimage


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


async def _journal_of_three(emulator: Emulator) -> list[str]:
    ids = [await _create(emulator, prompt) for prompt in ("an owl", "a bee", "a fox")]
    await _journal_with(
        *(
            _record(
                f"created-{n}", prompt, emulator.base_url, state=JournalState.CREATED, task_id=id_
            )
            for n, (prompt, id_) in enumerate(zip(("an owl", "a bee", "a fox"), ids, strict=True))
        )
    )
    return ids


async def test_a_directory_in_the_way_fails_that_task_only(
    emulator: Emulator, tmp_path: Path
) -> None:
    """An OSError saving one task is its failure: the others are saved, the summary told."""
    ids = await _journal_of_three(emulator)
    out = tmp_path / "out"
    (out / f"{ids[1]}-0.png").mkdir(parents=True)  # where the second task's image goes
    status, stdout, stderr = await zimage(emulator, "tasks", "collect", "-o", out)
    assert status == 1, stderr
    assert "Traceback" not in stderr
    lines = stdout.splitlines()
    assert lines[-1] == "3 unfinished task(s): 2 saved, 1 failed"
    (failed,) = [line for line in lines if line.startswith("FAILED ")]
    assert failed.startswith(f"FAILED {ids[1]}: ")
    assert "IsADirectoryError" in failed
    for task_id in (ids[0], ids[2]):
        assert (out / f"{task_id}-0.png").is_file()
        assert f"saved {task_id}: {out / f'{task_id}-0.png'}" in lines
    # What could not be saved stays in the journal, to be collected once the way is clear.
    (out / f"{ids[1]}-0.png").rmdir()
    status, stdout, stderr = await zimage(emulator, "tasks", "collect", "-o", out)
    assert status == 0, stderr
    assert stdout.splitlines() == [
        f"saved {ids[1]}: {out / f'{ids[1]}-0.png'}",
        "1 unfinished task(s): 1 saved",
    ]


async def test_json_names_the_failure_of_any_kind(emulator: Emulator, tmp_path: Path) -> None:
    """--json: the task's event carries the error's type and message; the summary follows."""
    ids = await _journal_of_three(emulator)
    out = tmp_path / "out"
    (out / f"{ids[0]}-0.png").mkdir(parents=True)
    status, stdout, stderr = await zimage(emulator, "tasks", "collect", "-o", out, "--json")
    assert status == 1, stderr
    events = [json.loads(line) for line in stdout.splitlines()]
    by_id = {e["task_id"]: e for e in events if e["event"] == "task"}
    assert by_id[ids[0]]["status"] == "failed"
    assert by_id[ids[0]]["error"]["type"] == "IsADirectoryError"
    assert by_id[ids[0]]["paths"] == []
    assert {by_id[i]["status"] for i in ids[1:]} == {"saved"}
    assert events[-1]["event"] == "summary"
    assert (events[-1]["saved"], events[-1]["failed"], events[-1]["total"]) == (2, 1, 3)
