"""The ``zimage`` command line, end to end in a subprocess (``python -m zimage_async``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from PIL import Image as PILImage

from zimage_async import GenerationRequest
from zimage_async._cli import build_parser
from zimage_async._manifest import Manifest, RowState
from zimage_async.emulator import Emulator, ManualClock

from ._cli import cli_env, start
from .conftest import until

FAST = ["--emulator-task-duration", "0.05"]
DOCS = Path(__file__).parent.parent / "docs" / "cli.md"


def zimage(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the command line without an API key (so on the in-process emulator)."""
    return subprocess.run(  # noqa: S603 - our own interpreter and module, fixed argv
        [sys.executable, "-m", "zimage_async", *map(str, args)],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=cwd,
        timeout=60,
        check=False,
    )


def _prompts(tmp_path: Path, text: str, name: str = "prompts.txt") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_batch_saves_every_image_and_a_contact_sheet(tmp_path: Path) -> None:
    """A text batch exits 0, saves one image per line and draws the sheet."""
    prompts = _prompts(tmp_path, "a cat\n\na dog\n# a comment\na fox\n")
    out = tmp_path / "out"
    done = zimage("batch", prompts, "-o", out, "--contact-sheet", out / "sheet.png", *FAST)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.glob("0*.png")) == [
        "0001-a-cat-0.png",
        "0003-a-dog-0.png",
        "0005-a-fox-0.png",
    ]
    with PILImage.open(out / "sheet.png") as sheet:
        assert sheet.width > 256 and sheet.height > 256
    assert "in-process emulator" in done.stderr
    assert "\x1b[" not in done.stdout  # not a terminal: plain lines, no escapes
    assert re.search(r"^\[3/3\] saved line \d", done.stdout, re.M)
    assert "3 item(s): 3 saved, 0 failed" in done.stdout


def test_batch_json_prints_one_object_per_item_and_exits_1_on_a_failure(tmp_path: Path) -> None:
    """--json lines parse; a failed item gives exit status 1 and its typed error."""
    prompts = _prompts(tmp_path, "a cat\na dog [[fail:content_policy_violation]]\n")
    done = zimage("batch", prompts, "-o", tmp_path / "out", "--json", *FAST)
    assert done.returncode == 1, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    items = {r["line"]: r for r in records if r["event"] == "item"}
    assert items[1]["status"] == "saved"
    assert items[2]["error"]["type"] == "TaskFailedError"
    assert records[-1] | {"elapsed_seconds": 0} == records[-1] | {
        "event": "summary",
        "saved": 1,
        "failed": 1,
        "elapsed_seconds": 0,
    }


def test_rerunning_a_finished_batch_reports_it_without_generating(tmp_path: Path) -> None:
    """The second run resumes every item from the manifest."""
    prompts = _prompts(tmp_path, "a cat\na dog\n")
    out = tmp_path / "out"
    assert zimage("batch", prompts, "-o", out, *FAST).returncode == 0
    again = zimage("batch", prompts, "-o", out, "--json", *FAST)
    assert again.returncode == 0
    assert json.loads(again.stdout.splitlines()[-1])["resumed"] == 2


def test_generate_saves_one_image_to_the_named_file(tmp_path: Path) -> None:
    """Generate writes the file and prints its path."""
    done = zimage("generate", "a cat", "--size", "16:9", "-o", tmp_path / "cat.png", *FAST)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "cat.png")
    with PILImage.open(tmp_path / "cat.png") as image:
        assert image.size == (1280, 720)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["generate", "a cat", "--seed", "0"], "seed", id="bad-seed"),
        pytest.param(["batch", "missing.txt", "-o", "out"], "no such file", id="missing-file"),
        pytest.param(["batch", ".", "-o", "out"], "is a directory", id="directory"),
        pytest.param(["task", "../etc"], "error: ID: ", id="bad-task-id"),
        pytest.param(["batch", "p.txt"], "required: -o", id="no-output"),
        pytest.param(["frobnicate"], "invalid choice", id="unknown-command"),
        pytest.param(["batch", "p.txt", "-o", "out", "--concurrency", "0"], "concurrency", id="c0"),
        pytest.param(
            ["batch", "p.txt", "-o", "out", "--concurrency", "10001"],
            "--concurrency must be from 1 to 10000, not 10001",
            id="c-over",
        ),
        pytest.param(["batch", "p.txt", "-o", "o", "--contact-sheet", "s.gif"], ".png", id="sheet"),
        pytest.param(["batch", "p.txt", "-o", "out", "--lease", "0"], "--lease", id="lease"),
        pytest.param(["batch", "p.txt", "-o", "out", "--max-credits", "-1"], "credits", id="limit"),
        pytest.param(["batch", "p.txt", "-o", "out", "--worker-id", "a b"], "worker", id="worker"),
        *(
            pytest.param(
                ["batch", "p.txt", "-o", "out", "--cost", value],
                f"--cost: a finite number of credits > 0, not '{value}'",
                id=f"cost-{value}",
            )
            for value in ("0", "-1", "nan", "inf", "abc")
        ),
        pytest.param(["batch", "p.txt", "-o", "out", "--journal", "ftp://x"], "URL", id="scheme"),
        pytest.param(
            ["batch", "p.txt", "-o", "out", "--journal", "j.db", "--manifest", "m.db"],
            "--manifest",
            id="journal-and-manifest",
        ),
    ],
)
def test_usage_errors_exit_2_with_a_message_and_start_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """Bad arguments are refused before any emulator or service is contacted."""
    _prompts(tmp_path, "a cat\n", "p.txt")
    done = zimage(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr
    assert "emulator at" not in done.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_an_invalid_jsonl_row_is_reported_by_line_and_field(tmp_path: Path) -> None:
    """The error names line 3 and the field; nothing is submitted or written."""
    prompts = _prompts(
        tmp_path, '{"prompt": "a"}\n\n{"prompt": "b", "size": "7:5"}\n', "rows.jsonl"
    )
    done = zimage("batch", prompts, "-o", tmp_path / "out", *FAST)
    assert done.returncode == 2
    assert "rows.jsonl line 3: field 'size'" in done.stderr
    assert not (tmp_path / "out").exists()


def test_an_unwritable_output_directory_is_refused(tmp_path: Path) -> None:
    """An output directory that cannot be created gives exit 2 and a clear message."""
    prompts = _prompts(tmp_path, "a cat\n")
    (tmp_path / "file").write_text("not a directory")
    done = zimage("batch", prompts, "-o", tmp_path / "file" / "out", *FAST)
    assert done.returncode == 2
    assert "cannot write to the output directory" in done.stderr


def test_two_files_in_one_output_directory_are_two_batches_of_one_journal(
    tmp_path: Path,
) -> None:
    """Each file is a batch (named by the file) in DIR's journal; editing one is refused."""
    out = tmp_path / "out"
    first = _prompts(tmp_path, "a cat\n", "cats.txt")
    second = _prompts(tmp_path, "a dog\n", "dogs.txt")
    assert zimage("batch", first, "-o", out, *FAST).returncode == 0
    done = zimage("batch", second, "-o", out, "--json", *FAST)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["batch_id"] == "dogs.txt"
    assert summary["journal"] == str(out / "zimage-journal.sqlite")
    assert summary["worker"]["claimed"] == 1
    assert summary["worker"]["submitted"] == 1
    first.write_text("a cow\n")
    changed = zimage("batch", first, "-o", out, *FAST)
    assert changed.returncode == 2
    assert "whose request has changed" in changed.stderr


def test_an_earlier_versions_manifest_is_taken_over_as_the_journal(tmp_path: Path) -> None:
    """DIR/zimage-manifest.sqlite of an earlier run is used (and said so), its items resumed."""
    prompts = _prompts(tmp_path, "a cat\n")
    out = tmp_path / "out"
    out.mkdir()
    manifest = Manifest.open(out / "zimage-manifest.sqlite", batch_id=str(prompts.resolve()))
    manifest.record(
        0,
        GenerationRequest(prompt="a cat"),
        RowState.FAILED,
        base_url="http://127.0.0.1:9/apiv1",
        task_id="task-unified-0000000000-old",
        error_code="content_policy_violation",
        error_message="refused",
    )
    manifest.close()
    done = zimage("batch", prompts, "-o", out, "--json", *FAST)
    assert "batch manifest of an earlier version" in done.stderr
    assert done.returncode == 1
    (item,) = [json.loads(x) for x in done.stdout.splitlines() if '"item"' in x]
    assert item["error"]["type"] == "TaskFailedError"
    assert item["resumed"] is True
    assert not (out / "zimage-journal.sqlite").exists()


@pytest.fixture
async def manual_emulator() -> AsyncIterator[tuple[Emulator, ManualClock]]:
    """An emulator in the test process (so its ledger is visible), on a manual clock."""
    clock = ManualClock(start=time.time())
    async with Emulator(clock=clock, task_duration=1.0, seed=5) as emu:
        yield emu, clock


async def test_ctrl_c_leaves_a_manifest_that_the_rerun_resumes_without_paying_twice(
    manual_emulator: tuple[Emulator, ManualClock], tmp_path: Path
) -> None:
    """SIGINT mid-batch exits 130 saying how to resume; the rerun bills nothing new."""
    emu, clock = manual_emulator
    prompts = _prompts(tmp_path, "".join(f"prompt {n}\n" for n in range(4)))
    out = tmp_path / "out"
    process = await start(emu, "batch", prompts, "-o", out, "--json")
    await until(
        lambda: len(emu.ledger) >= 4 and emu.request_counts.get("task", 0) >= 4, deadline=20
    )
    process.send_signal(signal.SIGINT)
    stdout, stderr = await process.communicate()
    assert process.returncode == 130
    assert json.loads(stdout.splitlines()[-1])["interrupted"] is True
    assert "Run the same command again" in stderr.decode()
    assert "zimage-journal.sqlite" in stderr.decode()
    assert list(out.glob("*.part")) == []
    clock.advance(5.0)
    rerun = await start(emu, "batch", prompts, "-o", out, "--json")
    stdout, stderr = await rerun.communicate()
    assert rerun.returncode == 0, stderr.decode()
    assert json.loads(stdout.splitlines()[-1])["resumed"] == 4
    assert len(list(out.glob("0*.png"))) == 4
    billed = Counter(entry.request_body["prompt"] for entry in emu.ledger)
    assert billed == Counter(f"prompt {n}" for n in range(4))


async def test_task_shows_a_task_and_downloads_it(
    manual_emulator: tuple[Emulator, ManualClock], tmp_path: Path
) -> None:
    """`zimage task ID` prints the status; with -o it saves the image."""
    emu, clock = manual_emulator
    created = await start(emu, "task", "task-unified-1-nosuchtask")
    _, stderr = await created.communicate()
    assert created.returncode == 1
    assert "NotFoundError" in stderr.decode()
    async with aiohttp.ClientSession() as http:
        reply = await http.post(
            f"{emu.base_url}/v1/images/generations",
            json={"model": "z-image-turbo", "prompt": "a cat"},
            headers={"Authorization": f"Bearer {emu.api_key}"},
        )
        task_id = (await reply.json())["id"]
    shown = await start(emu, "task", task_id)
    stdout, _ = await shown.communicate()
    assert shown.returncode == 0
    assert stdout.decode().startswith(f"{task_id} pending")
    clock.advance(5.0)
    saved = await start(emu, "task", task_id, "-o", tmp_path)
    stdout, _ = await saved.communicate()
    assert saved.returncode == 0
    assert Path(stdout.decode().strip()).name == f"{task_id}-0.png"


def _options() -> set[str]:
    """Every ``zimage COMMAND [SUBCOMMAND]`` and every documented long option of the parser."""
    found = set()

    def visit(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found.add(f"{prefix} {name}")
                    visit(sub, f"{prefix} {name}")
            elif action.help != argparse.SUPPRESS and action.dest not in ("help", "version"):
                found.update(s for s in action.option_strings if s.startswith("--"))

    visit(build_parser(), "zimage")
    return found


def test_the_cli_reference_documents_every_command_and_option() -> None:
    """docs/cli.md names every command and long option the parser has."""
    text = DOCS.read_text()
    missing = sorted(name for name in _options() if f"`{name}" not in text)
    assert missing == []


def test_emulator_runs_in_the_foreground_until_interrupted() -> None:
    """`zimage emulator` announces its URL, and SIGINT stops it with status 0."""
    with subprocess.Popen(
        [sys.executable, "-m", "zimage_async", "emulator", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    ) as process:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert re.match(r"Z-Image emulator: base URL http://127\.0\.0\.1:\d+/apiv1", banner)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0


def _port_8000_commands() -> list[str]:
    """The documented console commands that start the emulator on port 8000."""
    commands = []
    for page in [DOCS.parents[1] / "README.md", *sorted(DOCS.parent.glob("*.md"))]:
        for block in re.findall(r"```console\n(.*?)```", page.read_text(), re.S):
            for line in block.splitlines():
                starts = ("$ zimage emulator", "$ python -m zimage_async.emulator")
                if line.startswith(starts) and "--port 8000" in line:
                    commands.append(line.removeprefix("$ "))
    return commands


def _port_taken(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def test_the_documented_emulator_commands_include_zimage_emulator() -> None:
    """The CLI page, the README and the testing page each start one on port 8000."""
    assert {
        "zimage emulator --port 8000",
        "python -m zimage_async.emulator --port 8000",
        "python -m zimage_async.emulator --port 8000 --task-duration 2",
    } <= set(_port_8000_commands())


@pytest.mark.parametrize("command", _port_8000_commands())
def test_the_documented_emulator_command_serves_on_port_8000(command: str) -> None:
    """Run as written, it answers a create on 127.0.0.1:8000 and stops on Ctrl-C."""
    if _port_taken(8000):
        pytest.skip("port 8000 is taken on this machine")
    program, *args = shlex.split(command)
    argv = [sys.executable, "-m", "zimage_async"] if program == "zimage" else [sys.executable]
    with subprocess.Popen(  # noqa: S603 - the documented command, our own interpreter
        [*argv, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env()
    ) as process:
        try:
            assert process.stdout is not None
            banner = process.stdout.readline()
            assert "base URL http://127.0.0.1:8000/apiv1" in banner, banner
            request = urllib.request.Request(
                "http://127.0.0.1:8000/apiv1/v1/images/generations",
                data=json.dumps({"model": "z-image-turbo", "prompt": "a cute cat"}).encode(),
                headers={
                    "Authorization": "Bearer zimage-emulator-key",
                    "Content-Type": "application/json",
                },
            )
            with urllib.request.urlopen(request, timeout=20) as reply:  # noqa: S310
                assert json.load(reply)["id"].startswith("task-unified-")
        finally:
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=20) == 0


async def test_the_key_never_reaches_cli_output(
    manual_emulator: tuple[Emulator, ManualClock], tmp_path: Path
) -> None:
    """With -vv logging and a refused key, stdout and stderr never show the key."""
    emu, _ = manual_emulator
    secret = "sk-cli-secret-7c1d9a"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "zimage_async",
        "generate",
        "a cat",
        "-vv",
        "-o",
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(ZIMAGE_API_KEY=secret, ZIMAGE_BASE_URL=emu.base_url),
    )
    stdout, stderr = await process.communicate()
    assert process.returncode == 1
    assert "AuthenticationError" in stderr.decode()
    assert "POST /apiv1/v1/images/generations -> 401" in stderr.decode()
    assert secret not in stdout.decode() + stderr.decode()


async def test_task_wait_fails_for_a_task_without_links(emulator: Emulator) -> None:
    """`zimage task ID --wait` exits 1 when the task completed without any image link."""
    async with aiohttp.ClientSession() as http:
        reply = await http.post(
            f"{emulator.base_url}/v1/images/generations",
            json={"model": "z-image-turbo", "prompt": "a cat [[results:missing]]"},
            headers={"Authorization": f"Bearer {emulator.api_key}"},
        )
        task_id = (await reply.json())["id"]
    waited = await start(emulator, "task", task_id, "--wait")
    stdout, _ = await waited.communicate()
    assert waited.returncode == 1
    assert stdout.decode().startswith(f"{task_id} completed")


def test_the_cost_of_a_create_counts_against_the_limit_before_a_price_is_known(
    tmp_path: Path,
) -> None:
    """--cost 10 over --max-credits 5: no price seen yet, so nothing is sent (exit 3)."""
    prompts = _prompts(tmp_path, "a cat\na dog\n")
    out = tmp_path / "out"
    done = zimage("batch", prompts, "-o", out, "--max-credits", "5", "--cost", "10", "--json")
    assert done.returncode == 3, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert (summary["saved"], summary["worker"]["submitted"]) == (0, 0)
    assert not list(out.glob("*.png"))
