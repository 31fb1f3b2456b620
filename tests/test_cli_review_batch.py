"""Defects a review of `zimage batch` found: each test names the promise it checks.

A batch id taken from a file name that no batch id can be, and an output directory
that holds another batch's images under this batch's names: both found only after
the batch had begun (the second after its tasks were created and billed).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from zimage_async.emulator import Emulator, ManualClock

from ._cli import ended, start


@pytest.fixture
async def frozen() -> AsyncIterator[Emulator]:
    """An emulator whose tasks never finish while the test runs (its clock stands still)."""
    async with Emulator(clock=ManualClock(start=time.time()), task_duration=1.0, seed=3) as emu:
        yield emu


# -- 3. a batch id taken from a file name ----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "said"),
    [
        pytest.param(b"p\x1bq.txt", "U+001B", id="escape"),
        pytest.param(b"new\nline.txt", "U+000A", id="newline"),
        pytest.param(b"latin-\xe9.txt", "UTF-8", id="not-utf-8"),
    ],
)
async def test_a_file_name_that_cannot_be_the_batch_id_is_a_usage_error(
    frozen: Emulator, tmp_path: Path, name: bytes, said: str
) -> None:
    """Without --batch-id, a file name that no batch id can be is refused first: exit 2.

    The batch id defaults to the file's name; one holding a control character (or bytes
    that are not UTF-8) was refused only as the batch started, with exit 1 and the
    library's words. Nothing is sent, the message names the rule and --batch-id.
    """
    prompts = Path(os.fsdecode(bytes(tmp_path) + b"/" + name))
    prompts.write_text("a cat\n")
    status, _, stderr = await ended(
        await start(frozen, "batch", prompts, "-o", tmp_path / "out", cwd=tmp_path)
    )
    assert status == 2, stderr
    assert stderr.startswith("zimage: error: the file name "), stderr
    assert said in stderr and "give one with --batch-id NAME" in stderr, stderr
    assert "batch_id" not in stderr and "InvalidRequestError" not in stderr, stderr
    assert not frozen.ledger
    assert not (tmp_path / "out").exists()


async def test_such_a_file_runs_under_a_batch_id_given(tmp_path: Path) -> None:
    """The same file runs when --batch-id names the batch: the refusal's advice works."""
    prompts = Path(os.fsdecode(bytes(tmp_path) + b"/p\x1bq.txt"))
    prompts.write_text("a cat\n")
    status, _, stderr = await ended(
        await start(
            None,
            "batch",
            prompts,
            "-o",
            tmp_path / "out",
            "--batch-id",
            "cats",
            "--emulator-task-duration",
            "0",
            cwd=tmp_path,
        )
    )
    assert status == 0, stderr
    assert len(list((tmp_path / "out").glob("*.png"))) == 1


# -- 5. an output directory holding another batch's images --------------------------------


@pytest.fixture
async def quick() -> AsyncIterator[Emulator]:
    """An emulator whose tasks end at once."""
    async with Emulator(task_duration=0.05) as emu:
        yield emu


async def saved_batch(emu: Emulator, tmp_path: Path) -> Path:
    """Run batch ``first.txt`` (a cat, a dog) into ``out``; return the second file, alike."""
    (tmp_path / "first.txt").write_text("a cat\na dog\n")
    status, _, stderr = await ended(
        await start(emu, "batch", "first.txt", "-o", "out", cwd=tmp_path)
    )
    assert status == 0, stderr
    assert len(emu.ledger) == 2
    second = tmp_path / "second.txt"
    second.write_text("a cat\na dog\n")
    return second


async def test_another_batchs_images_in_the_output_directory_are_refused_first(
    quick: Emulator, tmp_path: Path
) -> None:
    """-o DIR holding another batch's images under this batch's names: exit 2, nothing sent.

    The clash was found only as the first image was saved, after every task was created
    and billed (exit 1). The refusal names the directory, the other batch and the ways
    out: another -o, or that batch's --batch-id.
    """
    await saved_batch(quick, tmp_path)
    status, stdout, stderr = await ended(
        await start(quick, "batch", "second.txt", "-o", "out", cwd=tmp_path)
    )
    assert status == 2, stderr
    assert len(quick.ledger) == 2, "no task was created"
    assert stderr.startswith("zimage: error: -o out: it holds images that batch 'first.txt'"), (
        stderr
    )
    assert "out/0001-a-cat-0.png" in stderr, stderr
    assert "another -o DIR" in stderr and "--batch-id first.txt" in stderr, stderr
    assert "Traceback" not in stderr and "session." not in stderr, stderr
    assert stdout == ""


async def test_that_refusal_prints_its_json_record(quick: Emulator, tmp_path: Path) -> None:
    """With --json the refusal prints its summary record with the error; nothing is sent."""
    await saved_batch(quick, tmp_path)
    status, stdout, stderr = await ended(
        await start(quick, "batch", "second.txt", "-o", "out", "--json", cwd=tmp_path)
    )
    assert status == 2, stderr
    assert len(quick.ledger) == 2
    records = [json.loads(line) for line in stdout.splitlines()]
    assert len(records) == 1, stdout
    record = records[0]
    assert record["event"] == "summary" and record["batch_id"] == "second.txt", record
    assert (record["total"], record["saved"], record["failed"]) == (2, 0, 0), record
    assert record["interrupted"] is False and record["worker"] is None, record
    assert record["error"]["type"] == "FileExistsError", record
    assert "batch 'first.txt'" in record["error"]["message"], record


async def test_batches_that_share_a_directory_without_sharing_names_still_run(
    quick: Emulator, tmp_path: Path
) -> None:
    """Other names in the same -o DIR, the same batch again, or its --batch-id: no refusal."""
    second = await saved_batch(quick, tmp_path)
    second.write_text("a fox\na cow\n")  # other prompts: other names
    status, _, stderr = await ended(
        await start(quick, "batch", "second.txt", "-o", "out", cwd=tmp_path)
    )
    assert status == 0, stderr
    assert len(quick.ledger) == 4
    for args in (["first.txt"], ["third.txt", "--batch-id", "first.txt"]):
        (tmp_path / "third.txt").write_text("a cat\na dog\n")
        status, stdout, stderr = await ended(
            await start(quick, "batch", *args, "-o", "out", "--json", cwd=tmp_path)
        )
        assert status == 0, stderr
        assert json.loads(stdout.splitlines()[-1])["resumed"] == 2, stdout
    assert len(quick.ledger) == 4, "the first batch was resumed, not paid again"


async def test_a_file_no_batch_saved_still_stops_the_batch_with_a_json_record(
    quick: Emulator, tmp_path: Path
) -> None:
    """A file of the user's at an image's name: the batch stops (exit 1), in the CLI's words.

    No journal records that file, so it is met only when the image is saved. With
    --json the stop printed nothing, and the message told to call ``session.task(ID)``,
    the Python API's advice; it prints its summary record, and names the command.
    """
    (tmp_path / "p.txt").write_text("a cat\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "0001-a-cat-0.png").write_bytes(b"mine")
    status, stdout, stderr = await ended(
        await start(quick, "batch", "p.txt", "-o", "out", "--json", cwd=tmp_path)
    )
    assert status == 1, stderr
    assert "session." not in stderr and "zimage task ID -o DIR" in stderr, stderr
    record = json.loads(stdout.splitlines()[-1])
    assert record["event"] == "summary" and record["error"]["type"] == "FileExistsError", record
    assert "session." not in record["error"]["message"], record
    assert (tmp_path / "out" / "0001-a-cat-0.png").read_bytes() == b"mine"
