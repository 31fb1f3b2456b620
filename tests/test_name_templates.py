"""Name templates can only name a file inside the destination folder, and are refused early.

A format spec can turn a number into any character (``{seed:c}`` with seed 47 is ``/``),
and a name can be too long for the file system: such templates are refused with
InvalidRequestError on ``name`` before anything is fetched (``save``) or sent
(``generate_many``, ``zimage generate``), and nothing is ever written outside the folder.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from zimage_async import GenerationRequest, InvalidRequestError, Session
from zimage_async._naming import (
    NameFields,
    check_batch_names,
    check_template,
    render_name,
)
from zimage_async._saving import SavePlan, inside, plan_save
from zimage_async.emulator import Emulator

from ._cli import start

#: A name the file system takes: 255 bytes with the extension and a ``-<n>`` suffix.
NAME_MAX = 255
DOTS = re.escape("'.' or '..'")


def _escape_template(folder: Path) -> str:
    """A template that, with seed 47, renders as the absolute path *folder*/ESCAPED."""
    assert "{" not in str(folder) and "}" not in str(folder)
    return "{seed:c}".join(str(folder).split("/")) + "{seed:c}ESCAPED"


def _files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


@pytest.mark.parametrize(
    ("template", "words"),
    [
        pytest.param("{seed:c}x", "presentation type 'c'", id="seed-c"),
        pytest.param("{number:c}{number:c}", "presentation type 'c'", id="number-c"),
        pytest.param("{index:c}", "presentation type 'c'", id="index-c"),
        pytest.param("{index:>3c}", "presentation type 'c'", id="index-width-c"),
        pytest.param("{index!a}", "conversion", id="ascii"),
        pytest.param(".", DOTS, id="dot"),
        pytest.param("{slug:.0}..", DOTS, id="dotdot-by-spec"),
        pytest.param("{slug:.0}", "empty", id="empty-by-spec"),
        pytest.param("a\tb{index}", "control character", id="tab"),
        pytest.param("{index:\n>3}", "control character", id="control-fill"),
        pytest.param("{index:x>300}", "255 bytes", id="too-long"),
        pytest.param("é" * 125 + "{index}", "255 bytes", id="too-long-encoded"),
    ],
)
def test_templates_that_could_not_name_a_file_are_refused(template: str, words: str) -> None:
    """Each refusal is on the name field and says the rule broken."""
    with pytest.raises(InvalidRequestError, match=words) as caught:
        check_template(template, number=1)
    assert caught.value.field == "name"


def test_c_as_a_fill_character_is_allowed() -> None:
    """Only the 'c' type is refused: 'c' as the fill of a width is plain text."""
    assert check_template("{index:c>3}") == "{index:c>3}"
    fields = NameFields(task_id="task-unified-1-a", index=2)
    assert render_name("{index:c>3}", fields) == "cc2"


def test_the_length_is_checked_with_the_real_number() -> None:
    """A long number makes the name too long; the same template with a short one is fine."""
    template = "x" * 230 + "{number}"
    assert check_template(template, number=1) == template
    with pytest.raises(InvalidRequestError, match="255 bytes") as caught:
        check_template(template, number=10**20)
    assert caught.value.field == "name"


def test_the_longest_accepted_name_fits_the_file_system(tmp_path: Path) -> None:
    """The length limit counts the extension and the -<n> a task of several images adds."""
    longest = "x" * (NAME_MAX - len("-15.webp"))
    assert check_template(longest) == longest
    (tmp_path / f"{longest}-15.webp").write_bytes(b"")  # the file system takes it
    with pytest.raises(InvalidRequestError, match="255 bytes"):
        check_template(longest + "x")


def test_batch_names_are_checked_with_each_item_s_number_and_seed() -> None:
    """check_batch_names renders every item's own values and refuses a bad name."""
    with pytest.raises(InvalidRequestError, match="item 1") as caught:
        check_batch_names("x" * 230 + "{number}", [("a", None, 1), ("b", None, 10**20)])
    assert caught.value.field == "name"
    with pytest.raises(InvalidRequestError, match="presentation type 'c'"):
        check_batch_names("{number:c}{number:c}{seed:c}up", [("a", 47, 46)])


def test_a_rendered_name_is_checked_even_without_check_template(tmp_path: Path) -> None:
    """A plan made without plan_save still never gives a path outside its folder."""
    fields = NameFields(task_id="task-unified-1-a", index=0, seed=47, number=46)
    with pytest.raises(InvalidRequestError, match="path separator"):
        render_name("{number:c}{number:c}{seed:c}up", fields)
    plan = SavePlan(folder=tmp_path, target=None, name="{number:c}{number:c}", number=46)
    with pytest.raises(InvalidRequestError, match=DOTS):
        plan.path(task_id="task-unified-1-a", index=0, count=1, content_type="image/png")


def test_a_task_id_longer_than_planned_for_is_refused_when_saving(tmp_path: Path) -> None:
    """The length is checked again with the real task id and extension, never an OSError."""
    plan = plan_save(tmp_path, name="{task_id}" + "x" * 200)
    short = plan.path(task_id="task-unified-1-a", index=0, count=1, content_type="image/png")
    assert short.parent == tmp_path
    with pytest.raises(InvalidRequestError, match="255 bytes"):
        plan.path(task_id="task-unified-" + "a" * 40, index=0, count=1, content_type="image/png")


@pytest.mark.parametrize("name", ["../x.png", "/etc/x.png", "a/b.png", "..", ".", "", "x\x00"])
def test_a_path_is_only_ever_a_file_directly_in_its_folder(tmp_path: Path, name: str) -> None:
    """The last check before writing refuses any name that would leave the folder."""
    with pytest.raises(InvalidRequestError) as caught:
        inside(tmp_path / "out", name)
    assert caught.value.field == "name"
    assert inside(tmp_path / "out", "..x.png") == tmp_path / "out" / "..x.png"


async def test_save_refuses_a_template_whose_seed_renders_a_separator(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """{seed:c} with seed 47 would write outside the folder: refused, nothing fetched."""
    out = tmp_path / "out"
    for template, number in [
        (_escape_template(tmp_path), 1),
        ("{number:c}{number:c}{seed:c}dotdot", 46),
    ]:
        handle = await zs.submit(GenerationRequest(prompt="a fox", seed=47))
        with pytest.raises(InvalidRequestError) as caught:
            await asyncio.wait_for(handle.save(out, name=template, number=number), 30)
        assert caught.value.field == "name"
    assert _files(tmp_path) == []
    assert emulator.request_counts.get("image", 0) == 0


@pytest.mark.parametrize(
    ("template", "number", "words"),
    [
        pytest.param("{number:c}", 0, "presentation type 'c'", id="nul"),
        pytest.param("{number:c}", 2**40, "presentation type 'c'", id="overflow"),
        pytest.param("{index:x>300}", 1, "255 bytes", id="too-long"),
        pytest.param("x" * 240 + "{number}", 10**20, "255 bytes", id="long-number"),
    ],
)
async def test_save_refuses_names_the_file_system_cannot_take_before_fetching(
    zs: Session, emulator: Emulator, tmp_path: Path, template: str, number: int, words: str
) -> None:
    """No OSError, ValueError or OverflowError after the download: a refusal before it."""
    handle = await zs.submit("a fox")
    with pytest.raises(InvalidRequestError, match=words) as caught:
        await asyncio.wait_for(handle.save(tmp_path, name=template, number=number), 30)
    assert caught.value.field == "name"
    assert _files(tmp_path) == []
    assert emulator.request_counts.get("image", 0) == 0


@pytest.mark.parametrize(
    ("template", "numbers", "words"),
    [
        pytest.param("{number:c}{number:c}{seed:c}dotdot", [46], "presentation", id="up"),
        pytest.param("{number:c}", [0], "presentation type 'c'", id="nul"),
        pytest.param("{number}" + "x" * 300, [1], "255 bytes", id="too-long"),
    ],
)
async def test_generate_many_refuses_before_sending(
    zs: Session,
    emulator: Emulator,
    tmp_path: Path,
    template: str,
    numbers: list[int],
    words: str,
) -> None:
    """A batch whose names cannot be files sends nothing, bills nothing, writes nothing."""
    out = tmp_path / "out"
    requests = [GenerationRequest(prompt="a fox", seed=47)]

    async def run() -> None:
        batch = zs.generate_many(requests, output_dir=out, name=template, numbers=numbers)
        async with batch:
            async for _ in batch:
                pass

    with pytest.raises(InvalidRequestError, match=words) as caught:
        await asyncio.wait_for(run(), 30)
    assert caught.value.field == "name"
    assert emulator.ledger == ()
    assert emulator.request_counts.get("create", 0) == 0
    assert _files(tmp_path) == []


@pytest.mark.parametrize("kind", ["separator", "too-long"])
async def test_cli_generate_refuses_the_name_before_creating(
    emulator: Emulator, tmp_path: Path, kind: str
) -> None:
    """`zimage generate --name` exits 2 with the rule, creates no task, writes nothing."""
    out = tmp_path / "out"
    template = _escape_template(tmp_path) if kind == "separator" else "{index:x>300}"
    args: list[str | Path] = ["generate", "a fox", "--seed", "47", "-o", out, "--name", template]
    process = await start(emulator, *args, cwd=tmp_path)
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2, stderr.decode()
    assert "name" in stderr.decode()
    assert "Traceback" not in stderr.decode()
    assert emulator.ledger == ()
    assert _files(tmp_path) == []


@pytest.mark.parametrize("template", ["{{index}}-{task_id}", "{task_id}-{{index:02d}}"])
async def test_a_literal_index_in_braces_does_not_number_the_images(
    tmp_path: Path, template: str
) -> None:
    """``{{index}}`` is the text ``{index}``, not the field: ``-0``, ``-1`` ... are added."""
    async with (
        Emulator(task_duration=0.05, images_per_task=3) as emu,
        Session(api_key=emu.api_key, base_url=emu.base_url) as zs,
    ):
        handle = await zs.submit("three of them")
        paths = await handle.save(tmp_path, name=template)
        served = [await emu.image_bytes(handle.id, index) for index in range(3)]
    assert len(set(paths)) == 3, paths
    assert [path.read_bytes() for path in paths] == served


async def test_batch_names_with_a_literal_index_still_name_each_image(tmp_path: Path) -> None:
    async with (
        Emulator(task_duration=0.05, images_per_task=2) as emu,
        Session(api_key=emu.api_key, base_url=emu.base_url) as zs,
        zs.generate_many(["a fox"], output_dir=tmp_path, name="{number}-{{index}}") as batch,
    ):
        items = [item async for item in batch]
    assert items[0].ok, items[0].error
    assert len({path.name for path in items[0].paths}) == 2
