"""Saving images to disk: file modes, names, formats and embedded metadata."""

from __future__ import annotations

import argparse
import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from zimage_async import GenerationRequest, InvalidRequestError, Session
from zimage_async._cli import build_parser
from zimage_async._cli_common import Interruption
from zimage_async._cli_generate import add_save_options, run_generate
from zimage_async._cli_info import run_info
from zimage_async._metadata import read_metadata
from zimage_async.emulator import Emulator


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The process umask set to 022 for the test, and restored after it."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


async def test_saved_image_honours_the_umask(zs: Session, tmp_path: Path, umask_022: None) -> None:
    """Under umask 022 a saved image is readable by all (0o644), like any new file."""
    handle = await zs.submit("a modest file")
    (path,) = await handle.save(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


async def test_mismatched_suffix_is_replaced_by_the_real_one(
    zs: Session, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """PNG bytes asked to go to fox.jpg land in fox.png, with a warning naming both."""
    handle = await zs.submit("a fox")
    with caplog.at_level(logging.WARNING, logger="zimage_async"):
        (path,) = await handle.save(tmp_path / "fox.jpg")
    assert path == tmp_path / "fox.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "fox.jpg").exists()
    assert any("fox.jpg" in r.getMessage() and "fox.png" in r.getMessage() for r in caplog.records)


async def test_matching_suffix_is_kept(zs: Session, tmp_path: Path) -> None:
    """A dest whose suffix matches the format received is used exactly as given."""
    handle = await zs.submit("a fox")
    (path,) = await handle.save(tmp_path / "fox.PNG")
    assert path == tmp_path / "fox.PNG"


def test_contact_sheet_honours_the_umask(tmp_path: Path, umask_022: None) -> None:
    """Under umask 022 a contact sheet is written with mode 0o644."""
    from PIL import Image as PILImage

    from zimage_async._contact_sheet import make_contact_sheet

    image = tmp_path / "one.png"
    PILImage.new("RGB", (8, 8), "red").save(image)
    sheet = make_contact_sheet([image], tmp_path / "sheet.png", thumb_pixels=8)
    assert stat.S_IMODE(sheet.stat().st_mode) == 0o644


async def test_name_template_names_the_files(zs: Session, tmp_path: Path) -> None:
    """save(name=...) renders the template's fields, and the real extension is added."""
    handle = await zs.submit(GenerationRequest(prompt="A red Fox, at dawn!", seed=42))
    (path,) = await handle.save(tmp_path, name="{number:03d}-{slug}-{seed}", number=7)
    assert path == tmp_path / "007-a-red-fox-at-dawn-42.png"


async def test_unknown_template_field_is_refused_before_waiting(
    zs: Session, tmp_path: Path
) -> None:
    """An unknown field raises InvalidRequestError naming it, and nothing is written."""
    handle = await zs.submit("never saved")
    with pytest.raises(InvalidRequestError, match=r"\{prompt\}") as caught:
        await handle.save(tmp_path, name="{prompt}-{index}")
    assert caught.value.field == "name"
    assert list(tmp_path.iterdir()) == []


async def test_default_save_bytes_are_exactly_the_service_s(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """Without metadata=True the saved file holds exactly the bytes the service sent."""
    handle = await zs.submit(GenerationRequest(prompt="untouched", seed=3))
    (path,) = await handle.save(tmp_path)
    assert path.read_bytes() == await emulator.image_bytes(handle.id)
    assert read_metadata(path.read_bytes()).get("prompt") is None


async def test_metadata_is_embedded_on_request(zs: Session, tmp_path: Path) -> None:
    """save(metadata=True) embeds prompt, seed, size, model and task id in the file."""
    request = GenerationRequest(prompt="a fox in snow", seed=11, size="1:1")
    handle = await zs.submit(request)
    (path,) = await handle.save(tmp_path, metadata=True)
    fields = read_metadata(path.read_bytes())
    assert fields["prompt"] == "a fox in snow"
    assert fields["seed"] == "11"
    assert fields["size"] == "1:1"
    assert fields["task_id"] == handle.id
    assert fields["model"] == "z-image-turbo"


async def test_cli_generate_embeds_metadata_that_info_reads_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The generate command with --embed-metadata and --name writes what info reads back."""
    argv = ["generate", "a fox in snow", "--seed", "5", "-o", str(tmp_path), "--emulator"]
    args = build_parser().parse_args([*argv, "--emulator-task-duration", "0.05", "--json"])
    save_options = argparse.ArgumentParser()
    add_save_options(save_options)
    save_options.parse_args(["--embed-metadata", "--name", "{slug}-{seed}"], namespace=args)
    assert await run_generate(args, Interruption()) == 0
    (path,) = json.loads(capsys.readouterr().out)["paths"]
    assert Path(path) == tmp_path / "a-fox-in-snow-5.png"
    assert run_info(argparse.Namespace(image=Path(path), json=True)) == 0
    fields = json.loads(capsys.readouterr().out)["fields"]
    assert fields["prompt"] == "a fox in snow"
    assert fields["seed"] == "5"
