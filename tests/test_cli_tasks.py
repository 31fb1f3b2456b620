"""The journal on the command line: `zimage generate` records, `zimage tasks` collects."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import attrs
import pytest

from zimage_async import GenerationRequest
from zimage_async._journal import open_journal
from zimage_async._journal_moves import IN_FLIGHT_WINDOW
from zimage_async._journal_records import JournalRecord, JournalState
from zimage_async._journal_sqlite import SqliteJournal
from zimage_async.emulator import Emulator, ManualClock, _factory

from ._cli import created_and_polled, start

#: What the emulator reserves per task.
CREDITS = 0.026


@pytest.fixture
async def frozen() -> AsyncIterator[tuple[Emulator, ManualClock]]:
    """An emulator in the test process whose tasks finish only when its clock is advanced."""
    clock = ManualClock(start=time.time())
    async with Emulator(clock=clock, task_duration=1.0, seed=3) as emu:
        yield emu, clock


async def zimage(
    emu: Emulator | None, *args: str | Path, cwd: Path | None = None
) -> tuple[int, str, str]:
    """Run the command line to its end; return its status, stdout and stderr."""
    process = await start(emu, *args, cwd=cwd)
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def default_journal() -> Path:
    return Path(os.environ["XDG_STATE_HOME"]) / "zimage" / "journal.sqlite"


async def test_a_killed_generate_is_listed_and_collected_without_a_second_task(
    frozen: tuple[Emulator, ManualClock], tmp_path: Path
) -> None:
    """SIGKILL mid-wait; `tasks list` shows the task, `tasks collect` saves it; billed once."""
    emu, clock = frozen
    process = await start(emu, "generate", "a lighthouse at dusk", "-o", tmp_path / "gone")
    task_id = await created_and_polled(emu)
    process.send_signal(signal.SIGKILL)
    await process.communicate()
    assert process.returncode == -signal.SIGKILL

    status, stdout, stderr = await zimage(emu, "tasks", "list")
    assert status == 0, stderr
    [line] = stdout.splitlines()[1:]
    assert line.split()[2:5] == ["created", task_id, str(CREDITS)]
    assert line.endswith("a lighthouse at dusk")
    assert "1 unfinished create(s)" in stderr

    clock.advance(5.0)
    status, stdout, stderr = await zimage(emu, "tasks", "collect", "-o", tmp_path / "out")
    assert status == 0, stderr
    assert stdout.splitlines() == [
        f"saved {task_id}: {tmp_path / 'out' / f'{task_id}-0.png'}",
        "1 unfinished task(s): 1 saved",
    ]
    assert (tmp_path / "out" / f"{task_id}-0.png").stat().st_size > 0
    assert emu.billed_counts() == {"a lighthouse at dusk": 1}

    status, stdout, _ = await zimage(emu, "tasks", "collect", "-o", tmp_path / "again")
    assert (status, stdout.strip()) == (0, "0 unfinished task(s): nothing to do")
    assert len(emu.ledger) == 1


@pytest.mark.parametrize("journal", [None, "my-journal.sqlite"], ids=["default", "named"])
async def test_ctrl_c_says_the_task_is_kept_and_how_to_collect_it(
    frozen: tuple[Emulator, ManualClock], tmp_path: Path, journal: str | None
) -> None:
    """SIGINT mid-wait exits 130 with `zimage task ID -o` and `zimage tasks collect -o`."""
    emu, clock = frozen
    out = tmp_path / "out"
    named = [] if journal is None else ["--journal", str(tmp_path / journal)]
    process = await start(emu, "generate", "a cat", "-o", out / "cat.png", *named)
    task_id = await created_and_polled(emu)
    process.send_signal(signal.SIGINT)
    _, stderr = await process.communicate()
    assert process.returncode == 130
    text = stderr.decode()
    assert f"zimage task {task_id} -o {out / 'cat.png'}{' '.join(['', *named])}\n" in text
    assert f"zimage tasks collect -o {out}{' '.join(['', *named])}\n" in text
    assert "generate" not in text.split("interrupted:")[1]
    clock.advance(5.0)
    status, _, stderr_ = await zimage(emu, "tasks", "collect", "-o", out, *named)
    assert status == 0, stderr_
    assert len(emu.ledger) == 1


async def test_a_timeout_says_how_to_collect_the_task(
    frozen: tuple[Emulator, ManualClock], tmp_path: Path
) -> None:
    """--timeout that passes exits 1 naming the collect commands; the task is then saved."""
    emu, clock = frozen
    status, _, stderr = await zimage(emu, "generate", "a cat", "-o", tmp_path, "--timeout", "0.3")
    assert status == 1
    task_id = emu.ledger[0].task_id
    assert f"timed out: task {task_id} was still pending after 0.3 s" in stderr
    assert f"zimage task {task_id} -o {tmp_path}\n" in stderr
    assert f"zimage tasks collect -o {tmp_path}\n" in stderr
    clock.advance(5.0)
    status, stdout, _ = await zimage(emu, "task", task_id, "-o", tmp_path)
    assert status == 0
    status, stdout, _ = await zimage(emu, "tasks", "list")
    assert stdout == ""  # `zimage task` recorded the task as saved in the journal


async def test_max_credits_refuses_the_create_that_goes_over_and_sends_nothing(
    emulator: Emulator, tmp_path: Path
) -> None:
    """The first create is within the limit; the second would go over: exit 3, not sent."""
    status, _, stderr = await zimage(
        emulator, "generate", "a cat", "-o", tmp_path, "--max-credits", "0.03"
    )
    assert status == 0, stderr
    status, _, stderr = await zimage(
        emulator, "generate", "a dog", "-o", tmp_path, "--max-credits", "0.03"
    )
    assert status == 3
    assert "over the spend limit" in stderr and "nothing was sent" in stderr
    assert emulator.billed_counts() == {"a cat": 1}
    status, stdout, _ = await zimage(emulator, "tasks", "spend", "--json")
    figures = json.loads(stdout)
    assert (figures["credits"], figures["creates"], figures["uncertain"]) == (CREDITS, 1, 0)
    assert figures["by_state"] == [{"state": "saved", "creates": 1, "credits": CREDITS}]
    assert figures["by_batch"] == [{"batch_id": None, "creates": 1, "credits": CREDITS}]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--max-credits", "1", "--no-journal"], "--no-journal was given", id="off"),
        pytest.param(["--max-credits", "-1"], "a number of credits >= 0", id="negative"),
        pytest.param(["--max-credits", "nan"], "a number of credits >= 0", id="nan"),
        pytest.param(["--journal", "x", "--no-journal"], "not allowed with", id="both"),
        pytest.param(
            ["--journal", "ftp://host/db"], "a file path or a postgresql:// URL", id="ftp"
        ),
        pytest.param(["--timeout", "0"], "a number of seconds > 0", id="timeout"),
    ],
)
async def test_bad_journal_options_exit_2_and_send_nothing(
    emulator: Emulator, tmp_path: Path, args: list[str], message: str
) -> None:
    """Each bad value is refused, naming the option and rule, before any request."""
    status, _, stderr = await zimage(emulator, "generate", "a cat", "-o", tmp_path, *args)
    assert status == 2
    assert message in stderr
    assert emulator.request_counts == {}
    assert not default_journal().exists()


async def test_a_file_that_is_not_a_journal_is_refused_before_any_request(
    emulator: Emulator, tmp_path: Path
) -> None:
    """--journal naming another file exits 2 saying so; the file is left as it was."""
    other = tmp_path / "notes.txt"
    other.write_text("not a database\n" * 100)
    status, _, stderr = await zimage(emulator, "generate", "a cat", "--journal", other)
    assert status == 2
    assert "is not a zimage journal" in stderr
    assert other.read_text() == "not a database\n" * 100
    assert emulator.request_counts == {}


async def test_the_in_process_emulator_keeps_no_default_journal(tmp_path: Path) -> None:
    """Without a key, generate works and writes no journal; --max-credits needs --journal."""
    status, _, stderr = await zimage(
        None, "generate", "a cat", "-o", tmp_path, "--emulator-task-duration", "0.05"
    )
    assert status == 0, stderr
    assert not default_journal().exists()
    status, _, stderr = await zimage(None, "generate", "a cat", "--max-credits", "5")
    assert status == 2
    assert "--journal PATH" in stderr and "emulator at" not in stderr
    named = tmp_path / "demo.sqlite"
    status, _, stderr = await zimage(
        None, "generate", "a cat", "-o", tmp_path, "--journal", named, "--max-credits", "5",
        "--emulator-task-duration", "0.05",
    )  # fmt: skip
    assert status == 0, stderr
    status, stdout, _ = await zimage(None, "tasks", "list", "--all", "--journal", named, "--json")
    assert [r["state"] for r in json.loads(stdout)["records"]] == ["saved"]


async def test_list_and_spend_read_no_journal_into_existence(tmp_path: Path) -> None:
    """With no journal yet, list and spend say so, exit 0, and create nothing."""
    status, stdout, stderr = await zimage(None, "tasks", "list", "--json")
    assert status == 0
    assert json.loads(stdout)["records"] == []
    assert "nothing was recorded" in stderr
    status, stdout, _ = await zimage(None, "tasks", "spend")
    assert status == 0 and stdout.startswith("reserved: 0 credit(s) by 0 create(s)")
    assert not default_journal().exists()


async def _journal_with(*records: JournalRecord) -> None:
    """Write *records* into the default journal, as a process that stopped would have."""
    async with await open_journal(default_journal()) as journal:
        for record in records:
            await journal.begin(record)
            if record.state is not JournalState.SUBMITTING:
                await journal.update(
                    record.key,
                    record.state,
                    task_id=record.task_id,
                    completed_at=record.completed_at,
                )


def _record(key: str, prompt: str, base_url: str, **fields: object) -> JournalRecord:
    record = JournalRecord.for_request(
        GenerationRequest(prompt=prompt), key=f"order-4711-{key}", base_url=base_url
    )
    return attrs.evolve(record, **fields)  # type: ignore[arg-type]


async def test_collect_reports_what_it_cannot_collect_and_resends_only_when_asked(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Uncertain, expired and other-service records are reported (exit 1), not sent.

    The expired one is settled as such, so `zimage tasks list` shows it no more.
    """
    long_ago = time.time() - 3 * 86400
    await _journal_with(
        _record("uncertain-1", "an owl", emulator.base_url),
        _record(
            "expired-01",
            "a bee",
            emulator.base_url,
            state=JournalState.COMPLETED,
            task_id="task-unified-1-expired",
            completed_at=long_ago,
        ),
        _record(
            "elsewhere-1",
            "a fox",
            "https://api.example/apiv1",
            state=JournalState.CREATED,
            task_id="task-unified-1-elsewhere",
        ),
    )
    status, stdout, _ = await zimage(emulator, "tasks", "collect", "-o", tmp_path, "--json")
    assert status == 1
    events = [json.loads(line) for line in stdout.splitlines()]
    assert {e["key"]: e["status"] for e in events[:-1]} == {
        "order-4711-uncertain-1": "uncertain",
        "order-4711-expired-01": "expired",
        "order-4711-elsewhere-1": "elsewhere",
    }
    assert events[-1] | {"journal": "", "output_dir": ""} == {
        "event": "summary",
        "total": 3,
        "saved": 0,
        "failed": 0,
        "timeout": 0,
        "expired": 1,
        "uncertain": 1,
        "elsewhere": 1,
        "journal": "",
        "output_dir": "",
    }
    assert emulator.request_counts == {}
    _, listed, _ = await zimage(emulator, "tasks", "list", "--json")
    left = {row["key"]: row["state"] for row in json.loads(listed)["records"]}
    assert left == {"order-4711-uncertain-1": "submitting", "order-4711-elsewhere-1": "created"}
    _, listed, _ = await zimage(emulator, "tasks", "list", "--all", "--json")
    states = {row["key"]: row["state"] for row in json.loads(listed)["records"]}
    assert states["order-4711-expired-01"] == "expired"


async def test_resubmit_uncertain_sends_the_original_key_and_gets_the_task_already_made(
    emulator: Emulator, tmp_path: Path
) -> None:
    """The create that went out before the crash is answered again; nothing billed twice."""
    key = "order-4711-uncertain-1"
    async with aiohttp.ClientSession() as http:
        reply = await http.post(
            f"{emulator.base_url}/v1/images/generations",
            json={"model": "z-image-turbo", "prompt": "an owl"},
            headers={"Authorization": f"Bearer {emulator.api_key}", "Idempotency-Key": key},
        )
        assert reply.status == 200
    # Begun by a process that died long ago: a younger record may still be in flight.
    begun = time.time() - IN_FLIGHT_WINDOW - 60
    async with await SqliteJournal.open(default_journal(), clock=lambda: begun) as journal:
        await journal.begin(_record("uncertain-1", "an owl", emulator.base_url))
    status, stdout, stderr = await zimage(
        emulator, "tasks", "collect", "-o", tmp_path, "--resubmit-uncertain"
    )
    assert status == 0, stderr
    task_id = emulator.ledger[0].task_id
    assert stdout.splitlines()[0] == f"saved {task_id}: {tmp_path / f'{task_id}-0.png'}"
    assert emulator.billed_counts(by="idempotency_key") == {key: 1}


def test_hints_name_the_journal_without_its_password_and_the_folder_of_a_file() -> None:
    """A named journal is added to the commands; a postgresql:// password is left out."""
    from zimage_async._cli_common import collect_commands

    url = "postgresql://zimage:s3cret@db.example:5432/jobs"
    assert collect_commands("task-unified-1-a", "out/fox.png", url) == [
        "zimage task task-unified-1-a -o out/fox.png --journal "
        "postgresql://zimage@db.example:5432/jobs",
        "zimage tasks collect -o out --journal postgresql://zimage@db.example:5432/jobs",
    ]
    assert collect_commands("task-unified-1-a", None, None) == ["zimage task task-unified-1-a -o ."]


def test_the_billed_service_is_called_billed_in_the_hint() -> None:
    """Against the real service, the message says the task is billed."""
    from zimage_async._cli_hints import collect_hint as _collect_hint

    text = _collect_hint("task-unified-1-a", "out/", emulated=False, billed=True, journal=None)
    assert "where it is billed" in text and "without creating another task" in text


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        pytest.param({"ZIMAGE_JOURNAL": "/data/j.sqlite"}, "/data/j.sqlite", id="variable"),
        pytest.param({"XDG_STATE_HOME": "/st"}, "/st/zimage/journal.sqlite", id="xdg"),
        pytest.param({"XDG_STATE_HOME": "rel"}, "~/.local/state/zimage/journal.sqlite", id="rel"),
        pytest.param({}, "~/.local/state/zimage/journal.sqlite", id="unset"),
    ],
)
def test_the_default_journal_follows_the_environment(
    environ: dict[str, str], expected: str
) -> None:
    """$ZIMAGE_JOURNAL, else the XDG state directory (absolute only), else ~/.local/state."""
    from zimage_async._cli_common import default_journal as chosen

    assert chosen(environ) == os.path.expanduser(expected)


DOCS = Path(__file__).resolve().parents[1] / "docs"


def _documented() -> list[str]:
    """The `$ zimage batch|generate|task|tasks|info` console commands of those pages."""
    commands = []
    for page in ("cli.md", "journal.md"):
        for block in re.findall(r"```console\n(.*?)```", (DOCS / page).read_text(), re.S):
            for line in block.splitlines():
                words = shlex.split(line)
                wanted = ("batch", "generate", "task", "tasks", "info")
                if words[:2] == ["$", "zimage"] and words[2] in wanted:
                    commands.append(line.removeprefix("$ "))
    return commands


async def _to_the_end(
    process: asyncio.subprocess.Process, clock: ManualClock
) -> tuple[bytes, bytes]:
    """Let the emulator's time run (a second every 20 ms) until *process* exits."""
    ended = asyncio.ensure_future(process.communicate())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while not ended.done():
        assert loop.time() < deadline, "the command did not end within 60 s"
        clock.advance(1.0)
        await asyncio.wait({ended}, timeout=0.02)
    return ended.result()


async def _task_with_id(emu: Emulator, task_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Create a task (straight over HTTP, no journal) that the emulator names *task_id*."""
    with monkeypatch.context() as patch:
        patch.setattr(_factory, "new_task_id", lambda created, rng: task_id)
        async with aiohttp.ClientSession() as http:
            reply = await http.post(
                f"{emu.base_url}/v1/images/generations",
                json={"model": "z-image-turbo", "prompt": "a task looked up by its id"},
                headers={"Authorization": f"Bearer {emu.api_key}"},
            )
            assert (await reply.json())["id"] == task_id


async def test_the_documented_commands_run_as_written(
    frozen: tuple[Emulator, ManualClock], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each documented command exits 0, in order, after a generate was killed mid-wait.

    The prompt files the batch commands name are the repository's example; the task the
    `zimage task ID` command names is made first, under the id the page shows.
    """
    emu, clock = frozen
    commands = _documented()
    assert "zimage tasks collect -o out/" in commands and "zimage tasks spend" in commands
    assert {shlex.split(c)[1] for c in commands} == {"batch", "generate", "task", "tasks", "info"}
    (tmp_path / "examples").mkdir()
    for name in ("examples/prompts.txt", "prompts.txt"):
        shutil.copyfile(DOCS.parent / "examples" / "prompts.txt", tmp_path / name)
    killed = await start(emu, "generate", "a task left behind", cwd=tmp_path)
    left_behind = await created_and_polled(emu)
    killed.send_signal(signal.SIGKILL)
    await killed.communicate()
    for command in commands:
        args = shlex.split(command)[1:]
        if args[0] == "task":
            await _task_with_id(emu, args[1], monkeypatch)
        process = await start(emu, *args, cwd=tmp_path)
        _, stderr = await _to_the_end(process, clock)
        assert process.returncode == 0, f"{command}: {stderr.decode()}"
    assert (tmp_path / "out" / f"{left_behind}-0.png").is_file()
    assert (tmp_path / "out" / "sheet.png").is_file()
    assert (tmp_path / "out" / "task-unified-1757165031-uyujaw3d-0.png").is_file()
    assert emu.billed_counts()["a task left behind"] == 1


async def test_a_batch_keeps_its_items_in_its_own_journal_not_the_default_one(
    emulator: Emulator, tmp_path: Path
) -> None:
    """`zimage batch -o DIR` keeps DIR/zimage-journal.sqlite; the user's journal stays out."""
    prompts = tmp_path / "cats.txt"
    prompts.write_text("a cat\na dog\n")
    out = tmp_path / "out"
    status, _, stderr = await zimage(emulator, "batch", prompts, "-o", out)
    assert status == 0, stderr
    assert not default_journal().exists()
    async with await open_journal(out / "zimage-journal.sqlite") as journal:
        records = await journal.records(batch_id="cats.txt")
    assert sorted(r.state.value for r in records) == ["saved", "saved"]


async def test_a_batch_stopped_by_its_spend_limit_exits_3(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Over --max-credits the batch stops sending: exit 3, as for `zimage generate`."""
    prompts = tmp_path / "cats.txt"
    prompts.write_text("a cat\na dog\na cow\n")
    status, _, stderr = await zimage(
        emulator,
        "batch",
        prompts,
        "-o",
        tmp_path / "out",
        "--concurrency",
        "1",
        "--max-credits",
        "0.03",
    )
    assert status == 3, stderr
    assert "the batch stopped sending creates" in stderr
    assert len(emulator.ledger) == 1


async def test_resubmit_uncertain_leaves_a_create_still_in_flight_and_says_so(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A create begun moments ago may still be on its way: not sent, and not called resent."""
    async with await SqliteJournal.open(default_journal()) as journal:
        await journal.begin(_record("in-flight-1", "an owl", emulator.base_url))
    status, stdout, stderr = await zimage(
        emulator, "tasks", "collect", "-o", tmp_path, "--resubmit-uncertain"
    )
    assert emulator.request_counts.get("create", 0) == 0
    assert "sent again, still uncertain" not in stdout + stderr
    assert "not sent again" in stdout + stderr, stdout + stderr
    assert "in-flight-1" in stdout + stderr or "order-4711-in-flight-1" in stdout + stderr
    assert status == 1, stderr
