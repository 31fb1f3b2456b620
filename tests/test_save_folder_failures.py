"""Saving where the file system says no: told before paying, named as the user knows it.

* A batch's ``output_dir`` in which no file can be made (a read-only file system) was
  found out only by the first item's save: the batch had paid for a task per
  concurrency slot by then.
* A write that failed (a full disk) named the hidden temporary file it was writing,
  already removed, instead of the image's file (or its folder).
* A dangling link, or a link loop, given as ``output_dir`` was called "a file".
* A process killed mid-save (``kill -9``) left its hidden ``.zimage-*.part`` file for
  good, unless a batch was later run into that folder.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest

from zimage_async import Batch, InvalidRequestError, Session
from zimage_async.emulator import Emulator

from ._cli import cli_env
from .conftest import FAST_POLL, FAST_RETRY
from .test_cli_batch_write_failures import _run_small


def _unwritable_folder() -> Path:
    """An existing folder in which even root can make no file (sysfs), else skip."""
    for candidate in (Path("/sys/kernel"), Path("/sys")):
        if not candidate.is_dir():
            continue
        try:
            fd, name = tempfile.mkstemp(dir=candidate)
        except OSError:
            return candidate
        os.close(fd)  # pragma: no cover - a writable sysfs: nothing to test with
        os.unlink(name)  # pragma: no cover
    pytest.skip("no folder here refuses new files")  # pragma: no cover


async def _drain(batch: Batch) -> None:
    async with batch:
        async for _ in batch:
            pass  # pragma: no cover - refused before the first item


def _session(emu: Emulator) -> Session:
    return Session(api_key=emu.api_key, base_url=emu.base_url, poll=FAST_POLL, retry=FAST_RETRY)


async def test_a_batch_into_a_folder_that_takes_no_file_is_refused_before_paying() -> None:
    """``output_dir`` is checked by making a file in it; its refusal names the field."""
    folder = _unwritable_folder()
    async with Emulator(task_duration=0.05) as emu, _session(emu) as zs:
        batch = zs.generate_many(["a cat", "a dog"], output_dir=folder)
        with pytest.raises(InvalidRequestError) as caught:
            await _drain(batch)
        assert len(emu.ledger) == 0, "a task was paid for that could not be saved"
    message = str(caught.value)
    assert message.startswith("output_dir: ")
    assert "no file can be made in it" in message
    assert "Permission denied" in message or "Read-only" in message


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda link: link.symlink_to(link.parent / "gone"), "a link to nothing"),
        (lambda link: link.symlink_to(link), "a link that loops"),
    ],
    ids=["dangling", "loop"],
)
async def test_a_link_given_as_output_dir_is_called_what_it_is(
    tmp_path: Path, make: object, words: str
) -> None:
    """Not "a file": the refusal says the link points nowhere, or round in a loop."""
    link = tmp_path / "out"
    make(link)  # type: ignore[operator]
    async with Emulator(task_duration=0.05) as emu, _session(emu) as zs:
        with pytest.raises(InvalidRequestError) as caught:
            zs.generate_many(["a cat"], output_dir=link)
        assert len(emu.ledger) == 0
    message = str(caught.value)
    assert f"it is {words}" in message
    assert "it is a file" not in message


async def test_a_save_the_disk_cannot_hold_names_the_image_file(tmp_path: Path) -> None:
    """``zimage generate -o fox.png`` on a full disk: the message names fox.png, no temp file."""
    async with Emulator(task_duration=0.05) as emu:
        env = cli_env(ZIMAGE_API_KEY=emu.api_key, ZIMAGE_BASE_URL=emu.base_url)
        # 1536x1536 at seed 42: a placeholder of about 100 KB, over the 64 KiB limit.
        args = ("generate", "a dog", "--seed", "42", "--size", "1536x1536", "-o", "fox.png")
        status, _, stderr = await _run_small(*args, env=env, cwd=tmp_path)
    assert status == 1, stderr
    assert "File too large" in stderr
    assert "fox.png" in stderr
    assert ".part" not in stderr and ".zimage-" not in stderr
    assert not list(tmp_path.glob(".zimage-*"))


async def test_a_save_removes_the_partial_files_a_killed_process_left(tmp_path: Path) -> None:
    """An hour-old ``.zimage-*.part`` goes with the next save into its folder; a fresh one stays."""
    out = tmp_path / "out"
    out.mkdir()
    old, fresh = out / ".zimage-killed.part", out / ".zimage-live.part"
    old.write_bytes(b"\x89PNG half")
    fresh.write_bytes(b"\x89PNG being written")
    hours_ago = time.time() - 7200
    os.utime(old, (hours_ago, hours_ago))
    async with Emulator(task_duration=0.05) as emu, _session(emu) as zs:
        handle = await zs.submit("a cat")
        await handle.save(out / "cat.png")
    assert (out / "cat.png").exists()
    assert not old.exists(), "the killed process's partial file is still there"
    assert fresh.exists(), "a partial file another process may be writing was removed"
