"""The documentation covers the public API: every name has a docstring and a reference."""

from __future__ import annotations

import inspect
from pathlib import Path
from types import ModuleType

import pytest

import zimage_async
import zimage_async.emulator

DOCS = Path(__file__).resolve().parents[1] / "docs"


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
                if (
                    attr.startswith("_")
                    or not callable(member)
                    and not isinstance(member, property)
                ):
                    continue
                if not (getattr(member, "__doc__", None) or "").strip():
                    undocumented.append(f"{name}.{attr}")
    assert undocumented == []
