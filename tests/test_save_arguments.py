"""save()'s arguments are checked before anything is awaited, each error naming its field.

``overwrite="False"`` is a true string: it replaced a file the caller meant to keep;
``metadata="no"`` embedded metadata; ``save(None)`` raised pathlib's bare TypeError.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from zimage_async import InvalidRequestError, Session
from zimage_async.emulator import Emulator


@pytest.mark.parametrize("flag", ["overwrite", "metadata", "durable"])
@pytest.mark.parametrize("value", ["False", "no", 0, None])
async def test_a_flag_that_is_not_a_bool_is_refused(
    zs: Session, emulator: Emulator, tmp_path: Path, flag: str, value: object
) -> None:
    handle = zs.task("task-unified-1-abcdefgh")  # nothing is fetched before the check
    with pytest.raises(InvalidRequestError) as caught:
        await handle.save(tmp_path, **{flag: value})  # type: ignore[arg-type]
    assert caught.value.field == flag
    assert "True or False" in str(caught.value)
    assert not emulator.requests


@pytest.mark.parametrize("dest", [None, b"out", 3])
async def test_a_destination_that_is_not_a_path_is_refused(
    zs: Session, emulator: Emulator, dest: object
) -> None:
    handle = zs.task("task-unified-1-abcdefgh")
    with pytest.raises(InvalidRequestError) as caught:
        await handle.save(dest)  # type: ignore[arg-type]
    assert caught.value.field == "dest"
    assert not emulator.requests


@pytest.mark.parametrize("index", ["0", -1, True, 1.0])
async def test_an_image_index_that_is_not_one_is_refused_before_waiting(
    zs: Session, emulator: Emulator, index: object
) -> None:
    """iter_bytes("0") failed only after the task completed, with a bare TypeError."""
    handle = zs.task("task-unified-1-abcdefgh")
    with pytest.raises(InvalidRequestError) as caught:
        async for _ in handle.iter_bytes(index):  # type: ignore[arg-type]
            pass
    assert caught.value.field == "index"
    assert not emulator.requests


@pytest.mark.parametrize("journal", [123, b"j.sqlite"])
def test_a_journal_that_is_not_a_path_is_refused_when_the_session_is_made(
    journal: object,
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        Session(api_key="sk-test-123456", journal=journal)  # type: ignore[arg-type]
    assert caught.value.field == "journal"
