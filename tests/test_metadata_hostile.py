"""Metadata against awkward prompts: the billed image is saved with it, never refused.

Prompts the API accepts may hold characters a PNG text chunk or XML cannot carry; each is
written as U+FFFD.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest
from PIL import Image as PILImage

from zimage_async import GenerationRequest, Session
from zimage_async._cli import build_parser
from zimage_async._cli_common import Interruption
from zimage_async._cli_generate import add_save_options, run_generate
from zimage_async._metadata import embed_metadata, read_metadata
from zimage_async.pytest_plugin import EmulatorFactory

from .conftest import FAST_POLL, FAST_RETRY

#: Characters the API accepts in a prompt that neither iTXt nor XML 1.0 can carry.
AWKWARD = "form\x0cfeed \x01 start \x7f del \x1b esc \ufffe \uffff nul\x00 end"
#: What the metadata says instead: each of them replaced by U+FFFD (DEL is allowed).
CARRIED = "form\ufffdfeed \ufffd start \x7f del \ufffd esc \ufffd \ufffd nul\ufffd end"


def _image(fmt: str) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (8, 8), (10, 200, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


def _pixels(data: bytes) -> bytes:
    with PILImage.open(io.BytesIO(data)) as image:
        image.load()
        return bytes(image.tobytes())


# -- awkward prompts: saved with their metadata ----------------------------------------------


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
async def test_a_prompt_with_control_characters_is_saved_with_metadata(
    zimage_emulator_factory: EmulatorFactory, tmp_path: Path, fmt: str
) -> None:
    """save(metadata=True) writes the billed image; the awkward characters read as U+FFFD."""
    emulator = await zimage_emulator_factory(task_duration=0.05, image_format=fmt)
    async with Session(
        api_key=emulator.api_key, base_url=emulator.base_url, poll=FAST_POLL, retry=FAST_RETRY
    ) as session:
        handle = await session.submit(GenerationRequest(prompt=AWKWARD, seed=9))
        (path,) = await handle.save(tmp_path, metadata=True)
        sent = await emulator.image_bytes(handle.id)
    data = path.read_bytes()
    fields = read_metadata(data)
    assert fields["prompt"] == CARRIED
    assert (fields["seed"], fields["task_id"]) == ("9", handle.id)
    assert _pixels(data) == _pixels(sent)
    assert len(emulator.ledger) == 1


async def test_cli_embed_metadata_saves_a_prompt_with_a_form_feed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`zimage generate --embed-metadata` with such a prompt exits 0 and saves the file."""
    argv = ["generate", "page\x0cbreak \x01", "-o", str(tmp_path), "--emulator"]
    args = build_parser().parse_args([*argv, "--emulator-task-duration", "0.05", "--json"])
    save_options = argparse.ArgumentParser()
    add_save_options(save_options)
    save_options.parse_args(["--embed-metadata"], namespace=args)
    assert await run_generate(args, Interruption()) == 0
    (path,) = json.loads(capsys.readouterr().out)["paths"]
    assert read_metadata(Path(path).read_bytes())["prompt"] == "page\ufffdbreak \ufffd"


@pytest.mark.parametrize("kind", ["image/png", "image/jpeg", "image/webp"])
def test_every_uncarriable_character_is_written_as_a_replacement(kind: str) -> None:
    """NUL, C0 controls, U+FFFE/U+FFFF and lone surrogates become U+FFFD in every format."""
    data = _image({"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}[kind])
    value = AWKWARD + " \ud800 lone \t\n\r kept"
    tagged = embed_metadata(data, kind, {"prompt": value, "seed": "1"})
    expected = CARRIED + " \ufffd lone \t\n\r kept"
    assert read_metadata(tagged) == {"prompt": expected, "seed": "1"}
    assert _pixels(tagged) == _pixels(data)
