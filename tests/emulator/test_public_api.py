"""The emulator's public namespace and its independence from the client."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import zimage_async.emulator as emulator_package

PACKAGE = Path(emulator_package.__file__).parent


def test_all_is_sorted_and_matches_the_public_names() -> None:
    """__all__ is sorted (constants, classes, functions, as ruff's RUF022) and complete."""
    # Names that are not identifiers (such as "@py_builtins") come from assertion rewriting.
    public = {
        name for name in vars(emulator_package) if not name.startswith("_") and name.isidentifier()
    }

    def isort_key(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert emulator_package.__all__ == sorted(emulator_package.__all__, key=isort_key)
    assert set(emulator_package.__all__) == public


def test_every_public_name_is_documented() -> None:
    """Each exported class and function has a docstring."""
    for name in emulator_package.__all__:
        value = getattr(emulator_package, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert (value.__doc__ or "").strip(), name


def test_the_emulator_never_imports_the_client() -> None:
    """No emulator module imports zimage_async's client modules (relative or absolute)."""
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                assert node.level <= 1, f"{path.name} imports from the parent package"
                assert (
                    node.level == 1
                    or not module.startswith("zimage_async.")
                    or (module.startswith("zimage_async.emulator"))
                ), f"{path.name} imports {module}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("zimage_async._"), path.name


def test_openapi_copy_is_shipped_with_the_package() -> None:
    """The emulator ships its own openapi.yaml."""
    assert (PACKAGE / "openapi.yaml").read_text(encoding="utf-8").startswith("openapi: 3.1.0")
