"""The documentation covers the public API: every name has a docstring and a reference."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest

import zimage_async
import zimage_async.emulator

from .conftest import run_example

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _public(module: ModuleType) -> list[str]:
    return [name for name in module.__all__ if not name.startswith("__")]


@pytest.mark.parametrize(
    ("module", "page"),
    [
        pytest.param(zimage_async, "api.md", id="zimage_async"),
        pytest.param(zimage_async.emulator, "emulator.md", id="emulator"),
    ],
)
def test_every_public_name_is_in_the_reference(module: ModuleType, page: str) -> None:
    """Each name in __all__ has an autodoc entry on its reference page."""
    text = (DOCS / page).read_text(encoding="utf-8")
    missing = [name for name in _public(module) if f"{module.__name__}.{name}\n" not in text]
    assert missing == []


@pytest.mark.parametrize(
    "module",
    [
        pytest.param(zimage_async, id="zimage_async"),
        pytest.param(zimage_async.emulator, id="emulator"),
    ],
)
def test_every_public_name_has_a_docstring(module: ModuleType) -> None:
    """Each exported class and function, and each public method, has a docstring."""
    undocumented = []
    for name in _public(module):
        value = getattr(module, name)
        if not (inspect.isclass(value) or inspect.isfunction(value)):
            continue
        if not (value.__doc__ or "").strip():
            undocumented.append(name)
        if inspect.isclass(value):
            for attr, member in vars(value).items():
                if attr.startswith("_") or (
                    not callable(member) and not isinstance(member, property)
                ):
                    continue
                if not (getattr(member, "__doc__", None) or "").strip():
                    undocumented.append(f"{name}.{attr}")
    assert undocumented == []


def _doc_blocks() -> list[tuple[str, str]]:
    """Every ```python block of the docs, with whether it is marked as not run."""
    blocks = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for number, match in enumerate(
            re.finditer(r"(% not run: .+\n)?```python\n(.*?)```", text, re.S)
        ):
            blocks.append((f"{page.stem}-{number}", match.group(2) if not match.group(1) else ""))
    return blocks


def test_every_docs_example_runs_or_says_why_not() -> None:
    """Each Python block in the docs either runs in the test below or is marked not run."""
    assert any(source for _, source in _doc_blocks())


@pytest.mark.parametrize(
    "source", [pytest.param(source, id=name) for name, source in _doc_blocks() if source]
)
async def test_docs_example_runs(source: str, tmp_path: Path) -> None:
    """A runnable docs example runs unchanged against an emulator named by the environment."""
    returncode, stderr, _ = await run_example(source, tmp_path)
    assert returncode == 0, stderr
