"""generate_many's inputs are all checked when it is called, before anything is sent.

Each test runs the batch against the emulator when the call is not refused, so an option
checked only later shows up as tasks created (billed) before the error.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zimage_async import GenerationRequest, InvalidRequestError, Session
from zimage_async._batchfile import BatchFileError, parse_batch_text
from zimage_async._naming import BATCH_NAME, check_batch_names
from zimage_async.emulator import Emulator
from zimage_async.pytest_plugin import EmulatorFactory

from .conftest import FAST_POLL, FAST_RETRY
from .test_cli import zimage

BAD = "bad \ud800 prompt"


async def _attempt(
    zs: Session, requests: Sequence[str | GenerationRequest], **options: object
) -> BaseException | None:
    """Run the batch to its end; return what it raised (None: it ran)."""

    async def run() -> None:
        async with zs.generate_many(requests, **options) as batch:  # type: ignore[arg-type]
            async for _ in batch:
                pass

    try:
        await asyncio.wait_for(run(), 30)
    except Exception as exc:  # the test looks at whatever was raised
        return exc
    return None


def _nothing_sent(emulator: Emulator, out: Path) -> None:
    assert emulator.ledger == ()
    assert emulator.request_counts.get("create", 0) == 0
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(
    ("options", "field", "phrase"),
    [
        pytest.param({"numbers": ["a", "b"]}, "numbers", "distinct integers", id="numbers-str"),
        pytest.param({"numbers": [1, 1]}, "numbers", "1 is given twice", id="numbers-dup"),
        pytest.param({"numbers": [1, True]}, "numbers", "distinct integers", id="numbers-bool"),
        pytest.param({"numbers": [1]}, "numbers", "got 1 for 2", id="numbers-short"),
        pytest.param({"numbers": 12}, "numbers", "distinct integers", id="numbers-int"),
        pytest.param({"timeout": -1}, "timeout", "above 0", id="timeout-negative"),
        pytest.param({"timeout": 0}, "timeout", "above 0", id="timeout-zero"),
        pytest.param({"timeout": "x"}, "timeout", "above 0", id="timeout-str"),
        pytest.param({"timeout": float("nan")}, "timeout", "above 0", id="timeout-nan"),
        pytest.param({"max_credits": "5"}, "max_credits", ">= 0", id="max-credits-str"),
        pytest.param({"resubmit_failed": "no"}, "resubmit_failed", "True or False", id="flag"),
        pytest.param({"output_dir": 5}, "output_dir", "folder", id="output-dir-int"),
        pytest.param({"output_dir": "OUT/shots.png"}, "output_dir", "folder", id="dir-is-file"),
        pytest.param({"output_dir": "OUT/\ud800"}, "output_dir", "U+D800", id="dir-surrogate"),
        pytest.param({"name": "{number}-\ud800"}, "name", "U+D800", id="name-surrogate"),
        pytest.param({"batch_id": "b\udcff"}, "batch_id", "UTF-8", id="batch-id-surrogate"),
        pytest.param({"concurrency": 0}, "concurrency", "from 1 to", id="concurrency-zero"),
        pytest.param({"concurrency": 2**63}, "concurrency", "from 1 to", id="concurrency-huge"),
    ],
)
async def test_a_bad_option_is_refused_before_anything_is_sent(
    emulator: Emulator,
    zs: Session,
    tmp_path: Path,
    options: dict[str, object],
    field: str,
    phrase: str,
) -> None:
    """The error names the option and its rule; no task is created, no file written."""
    out = tmp_path / "out"
    given: dict[str, object] = {"output_dir": out, "journal": tmp_path / "j.sqlite"}
    where = options.get("output_dir")
    if isinstance(where, str) and where.startswith("OUT/"):
        options = {"output_dir": out / where.removeprefix("OUT/")}
    error = await _attempt(zs, ["a cat", "a dog"], **{**given, **options})
    assert isinstance(error, InvalidRequestError), repr(error)
    assert error.field == field
    assert phrase in str(error)
    _nothing_sent(emulator, out)


@pytest.mark.parametrize(
    ("item", "got"), [(b"a cat", "got a bytes"), (None, "got None"), (3, "got an int")]
)
async def test_an_item_that_is_no_prompt_is_refused_naming_its_index(
    emulator: Emulator, zs: Session, tmp_path: Path, item: object, got: str
) -> None:
    """A bytes or None item raised a bare TypeError; it is an InvalidRequestError on it.

    Its type is named with its article: it said "got a int" and "got a NoneType".
    """
    error = await _attempt(zs, ["a cat", item], output_dir=tmp_path / "out")  # type: ignore[list-item]
    assert isinstance(error, InvalidRequestError), repr(error)
    assert error.field == "requests[1]"
    assert error.problem == got
    _nothing_sent(emulator, tmp_path / "out")


async def test_one_string_is_not_read_as_a_prompt_per_character(
    emulator: Emulator, zs: Session, tmp_path: Path
) -> None:
    """``generate_many("ab")`` is refused, not two paid items "a" and "b"."""
    error = await _attempt(zs, "ab", output_dir=tmp_path / "out")
    assert isinstance(error, InvalidRequestError), repr(error)
    assert error.field == "requests"
    assert "[prompt]" in str(error)
    _nothing_sent(emulator, tmp_path / "out")


@pytest.mark.parametrize(
    ("prompts", "options", "why"),
    [
        pytest.param(["a cat", "a cat"], {"name": "{slug}"}, "the same slug", id="same-slug"),
        pytest.param(["A cat!", "a  CAT"], {"name": "{slug}-{index}"}, "{slug}", id="slugs"),
        pytest.param(["a cat", "a dog"], {"name": "{seed}"}, "seed random", id="random-seeds"),
        pytest.param(["a cat", "a cat"], {"numbers": [1, 1]}, "", id="repeated-numbers"),
        pytest.param(["a cat", "a cat 0"], {"name": "{slug}"}, "several", id="several-images"),
        pytest.param(["a", "b"], {"name": "{task_id:.12}"}, "task ids", id="cut-task-id"),
        pytest.param(
            ["a", "b"],
            {"name": "{number:.0e}", "numbers": [10, 11]},
            "numbers 10 and 11",
            id="number-format",
        ),
    ],
)
async def test_names_that_can_collide_are_refused_before_anything_is_sent(
    emulator: Emulator,
    zs: Session,
    tmp_path: Path,
    prompts: list[str],
    options: dict[str, object],
    why: str,
) -> None:
    """Two items that would write one file: refused, naming both items, the fields, the fix.

    Never the shared name: its slug is words of the prompts.
    """
    out = tmp_path / "out"
    error = await _attempt(zs, prompts, output_dir=out, **options)
    assert isinstance(error, InvalidRequestError), repr(error)
    assert error.field in ("name", "numbers")
    if error.field == "name":
        assert "items 0 and 1" in str(error)
        assert why in str(error)
        assert "{number}" in str(error)
        assert "a-cat" not in str(error)
    _nothing_sent(emulator, out)


async def test_a_number_that_its_format_cannot_write_is_refused(
    emulator: Emulator, zs: Session, tmp_path: Path
) -> None:
    """``{number:c}`` of a number past the last code point fails now, not at the save."""
    out = tmp_path / "out"
    error = await _attempt(zs, ["a", "b"], output_dir=out, name="{number:c}", numbers=[65, 2**40])
    assert isinstance(error, InvalidRequestError), repr(error)
    assert error.field == "name"
    assert "presentation type 'c'" in str(error)
    _nothing_sent(emulator, out)


@pytest.mark.parametrize(
    ("prompts", "options"),
    [
        pytest.param(["a cat", "a dog"], {"name": "{slug}"}, id="distinct-slugs"),
        pytest.param(["a cat", "a cat"], {"name": None}, id="task-ids"),
        pytest.param(["a cat", "a cat"], {"numbers": [7, 3]}, id="numbers"),
        pytest.param(["a cat", "a cat"], {"name": "{slug}-{seed}"}, id="seeds"),
        pytest.param(["a cat"], {"name": "{slug}"}, id="one-item"),
    ],
)
async def test_names_that_cannot_collide_are_kept_and_every_image_is_saved(
    zimage_emulator_factory: EmulatorFactory,
    tmp_path: Path,
    prompts: list[str],
    options: dict[str, object],
) -> None:
    """Tasks of two images each: every image of every item gets a file of its own."""
    emu = await zimage_emulator_factory(task_duration=0.05, images_per_task=2)
    requests: list[str | GenerationRequest] = list(prompts)
    if options.get("name") == "{slug}-{seed}":
        requests = [GenerationRequest(prompt=p, seed=n + 1) for n, p in enumerate(prompts)]
    async with Session(
        api_key=emu.api_key, base_url=emu.base_url, poll=FAST_POLL, retry=FAST_RETRY
    ) as zs:
        out = tmp_path / "out"
        async with zs.generate_many(requests, output_dir=out, **options) as batch:  # type: ignore[arg-type]
            items = [item async for item in batch]
    assert all(item.ok for item in items)
    paths = [path for item in items for path in item.paths]
    assert len(paths) == 2 * len(prompts) == len(set(paths))
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(
        p.name for p in paths
    )


async def test_a_prompt_that_is_not_utf8_is_refused_in_a_batch(
    emulator: Emulator, zs: Session, tmp_path: Path
) -> None:
    """A lone surrogate: InvalidRequestError naming the item and the rule; nothing sent."""
    out = tmp_path / "out"
    for journal in (tmp_path / "j.sqlite", None):
        error = await _attempt(zs, ["a cat", BAD], output_dir=out, journal=journal)
        assert isinstance(error, InvalidRequestError), repr(error)
        assert error.field == "requests[1].prompt"
        assert "UTF-8" in str(error)
        assert "\ud800" not in str(error)
    _nothing_sent(emulator, out)


async def test_a_prompt_that_is_not_utf8_is_refused_by_submit_and_generate(
    emulator: Emulator, zs: Session, tmp_path: Path
) -> None:
    """submit() and generate() refuse it before the create is sent."""
    with pytest.raises(InvalidRequestError, match="UTF-8") as caught:
        await zs.submit(BAD)
    assert caught.value.field == "prompt"
    with pytest.raises(InvalidRequestError, match="UTF-8"):
        await zs.generate("a cat \udcff")
    _nothing_sent(emulator, tmp_path / "out")


def test_a_jsonl_row_whose_prompt_is_not_utf8_is_refused_by_line() -> None:
    """A JSON escape can spell a lone surrogate; the row is refused, naming its line."""
    text = '{"prompt": "a cat"}\n' + json.dumps({"prompt": BAD}) + "\n"
    assert "\\ud800" in text
    with pytest.raises(BatchFileError, match=r"rows.jsonl line 2: field 'prompt'.*UTF-8"):
        parse_batch_text(text, name="rows.jsonl")


def test_the_command_line_refuses_such_a_row_before_starting(tmp_path: Path) -> None:
    """``zimage batch`` exits 2 naming the line; no emulator is started, no file written."""
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"prompt": "a cat"}\n' + json.dumps({"prompt": BAD}) + "\n")
    done = zimage("batch", rows, "-o", tmp_path / "out", "--emulator-task-duration", "0.05")
    assert done.returncode == 2, done.stderr
    assert "rows.jsonl line 2: field 'prompt'" in done.stderr
    assert "UTF-8" in done.stderr
    assert "emulator at" not in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(os.fsencode("\udcff") != b"\xff", reason="needs surrogateescape paths")
async def test_a_folder_named_by_bytes_that_are_not_utf8_is_kept(
    emulator: Emulator, zs: Session, tmp_path: Path
) -> None:
    """A folder the file system names with byte 0xff is a fine output_dir: it is saved to."""
    out = tmp_path / os.fsdecode(b"out-\xff")
    items = [
        item
        async for item in zs.generate_many(
            ["a cat", "a dog"], output_dir=out, journal=tmp_path / "j.sqlite"
        )
    ]
    assert all(item.ok for item in items)
    assert len(emulator.ledger) == 2
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".png") == sorted(
        path.name for item in items for path in item.paths
    )


@pytest.mark.parametrize(
    ("template", "numbers", "collides"),
    [
        pytest.param("{number}{index}", [1, 11], True, id="number-runs-into-index"),
        pytest.param("{number}-{index}", [1, 11], False, id="separated"),
        pytest.param(None, [1, 1], False, id="task-ids"),
        pytest.param("{task_id}", [1, 1], False, id="task-ids-without-index"),
        pytest.param("{seed}-{index}", [1, 2], True, id="random-seeds"),
        pytest.param("x", [1, 2], True, id="fixed-text"),
    ],
)
def test_batch_names_are_rendered_for_several_images(
    template: str | None, numbers: list[int], collides: bool
) -> None:
    """Names are compared across items for every image index checked, not image 0 alone."""
    items = [("a cat", None, number) for number in numbers]
    if collides:
        expected = rf"gives items 0 and 1 \(numbers {numbers[0]} and {numbers[1]}\) the same"
        with pytest.raises(InvalidRequestError, match=expected):
            check_batch_names(template, items)
    else:
        check_batch_names(template, items)


@given(
    prompts=st.lists(st.text(max_size=50), min_size=2, max_size=30),
    numbers=st.lists(st.integers(-(10**6), 10**9), min_size=30, max_size=30, unique=True),
)
def test_the_default_names_of_distinct_numbers_never_collide(
    prompts: list[str], numbers: list[int]
) -> None:
    """``{number:04d}-{slug}-{index}`` tells apart any items whose numbers differ."""
    items = [(prompt, None, numbers[n]) for n, prompt in enumerate(prompts)]
    check_batch_names(BATCH_NAME, items)


def test_the_command_line_refuses_a_name_two_lines_share(tmp_path: Path) -> None:
    """``--name '{slug}'`` with a prompt given twice: an error naming the fix; no file."""
    prompts = tmp_path / "p.txt"
    prompts.write_text("a cat\na dog\na cat\n")
    out = tmp_path / "out"
    done = zimage(
        "batch", prompts, "-o", out, "--name", "{slug}", "--emulator-task-duration", "0.05"
    )
    assert done.returncode != 0, done.stderr
    assert "'{slug}' gives lines 1 and 3 the same file name" in done.stderr
    assert "a-cat" not in done.stderr
    assert "{number}" in done.stderr
    assert not any(path.suffix == ".png" for path in out.rglob("*"))


@pytest.mark.parametrize("requests", [None, 5, 2.5])
async def test_requests_that_are_no_iterable_are_refused_naming_them(
    emulator: Emulator, zs: Session, tmp_path: Path, requests: object
) -> None:
    """``generate_many(None)`` raised a bare TypeError ("not iterable")."""
    error = await _attempt(zs, requests, output_dir=tmp_path / "out")  # type: ignore[arg-type]
    assert isinstance(error, InvalidRequestError), repr(error)
    assert error.field == "requests"
    assert "iterable" in error.rule
    _nothing_sent(emulator, tmp_path / "out")


@pytest.mark.parametrize(
    ("options", "field"),
    [
        pytest.param({"cost": 10**400}, "cost", id="cost-huge"),
        pytest.param({"max_credits": 10**400}, "max_credits", id="max-credits-huge"),
    ],
)
async def test_a_number_no_float_holds_is_refused_naming_it(
    emulator: Emulator, zs: Session, tmp_path: Path, options: dict[str, object], field: str
) -> None:
    """A bare OverflowError came out of the checks of cost and max_credits."""
    out = tmp_path / "out"
    error = await _attempt(zs, ["a cat"], output_dir=out, journal=tmp_path / "j.sqlite", **options)
    assert isinstance(error, InvalidRequestError), repr(error)
    assert error.field == field
    assert len(str(error)) < 400
    _nothing_sent(emulator, out)


async def test_submit_refuses_a_cost_no_float_holds(emulator: Emulator, zs: Session) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        await zs.submit("a cat", cost=10**400)
    assert caught.value.field == "cost"
    assert emulator.ledger == ()


@pytest.mark.parametrize("journal", [b"postgresql://app:hunter2pw@db/zimage", 5])
async def test_a_batch_journal_of_another_type_is_named_by_its_type_only(
    emulator: Emulator, zs: Session, tmp_path: Path, journal: object
) -> None:
    """A bytes postgresql:// URL was quoted whole in the refusal, password and all."""
    error = await _attempt(zs, ["a cat"], output_dir=tmp_path / "out", journal=journal)
    assert isinstance(error, InvalidRequestError), repr(error)
    assert error.field == "journal"
    assert "hunter2pw" not in str(error)
    assert type(journal).__name__ in str(error)
    _nothing_sent(emulator, tmp_path / "out")
