"""The README's Python examples run as written, against an emulator, in a subprocess."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import run_example

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text("utf-8"), re.S)


def test_readme_has_examples() -> None:
    """The README shows at least the opening example and the quickstart."""
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("source", [pytest.param(b, id=f"block-{n}") for n, b in enumerate(BLOCKS)])
async def test_readme_block_runs(source: str, tmp_path: Path) -> None:
    """Each Python block of the README runs unchanged with the environment set to an emulator."""
    returncode, stderr, billed = await run_example(source, tmp_path)
    assert returncode == 0, stderr
    if "Emulator(" not in source:  # the block used the environment's emulator
        assert billed >= 1
