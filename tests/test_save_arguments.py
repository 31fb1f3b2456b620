"""save()'s arguments are checked before anything is awaited, each error naming its field.

``overwrite="False"`` is a true string: it replaced a file the caller meant to keep;
``metadata="no"`` embedded metadata; ``save(None)`` raised pathlib's bare TypeError.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from zimage_async import InvalidRequestError, Session
from zimage_async._saving import plan_save
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


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param("a cat", id="prompt-text"),
        pytest.param({"prompt": "a cat", "size": "16:9"}, id="dict"),
    ],
)
async def test_a_task_request_that_is_no_generation_request_is_refused(
    zs: Session, emulator: Emulator, request_: object
) -> None:
    """Session.task(request="a cat") made a handle whose result() and save() failed later."""
    with pytest.raises(InvalidRequestError) as caught:
        zs.task("task-unified-1-abcdefgh", request=request_)  # type: ignore[arg-type]
    assert caught.value.field == "request"
    assert "GenerationRequest" in caught.value.rule
    assert not emulator.requests


@pytest.mark.parametrize(
    ("name", "number"),
    [
        pytest.param("{number}-{index}", True, id="bool"),
        pytest.param("{number}-{index}", 1.5, id="float"),
        pytest.param("{number:04d}-{index}", "7", id="text-with-format"),
        pytest.param(None, "x", id="text-without-name"),
        pytest.param("{number}-{index}", [1], id="list"),
    ],
)
async def test_a_number_that_is_no_integer_is_refused_naming_it(
    zs: Session, emulator: Emulator, tmp_path: Path, name: str | None, number: object
) -> None:
    """save(number=True) wrote True-0.png; number="7" was blamed on the name template."""
    handle = zs.task("task-unified-1-abcdefgh")
    with pytest.raises(InvalidRequestError) as caught:
        await handle.save(tmp_path, name=name, number=number)  # type: ignore[arg-type]
    assert caught.value.field == "number"
    assert "integer" in caught.value.rule
    assert not emulator.requests


@pytest.mark.parametrize("number", [None, 0, 7, -3])
def test_an_integer_number_or_none_is_kept(tmp_path: Path, number: int | None) -> None:
    """Any integer is a number, as in generate_many(numbers=...); None is no number."""
    template = None if number is None else "{number:04d}-{index}"
    assert plan_save(tmp_path, name=template, number=number).number == number


@pytest.mark.parametrize("dest", ["out\x00dir", "out/cat\x00.png", "out\udc80\ud800"])
async def test_a_destination_no_file_system_takes_is_refused_before_waiting(
    zs: Session, emulator: Emulator, tmp_path: Path, dest: str
) -> None:
    """A NUL in the path raised a bare ValueError after the wait: it is refused first."""
    handle = zs.task("task-unified-1-abcdefgh")
    with pytest.raises(InvalidRequestError) as caught:
        await handle.save(tmp_path / dest)
    assert caught.value.field == "dest"
    assert "U+" in caught.value.problem
    assert not emulator.requests
