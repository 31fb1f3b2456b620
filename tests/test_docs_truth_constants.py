"""The public constants render in the API reference with their own one-line description.

Autodoc documents a re-exported constant from the package that exports it: a string
would otherwise show the docstring of ``str`` itself, and a mapping nothing at all.
This builds the reference pages' own ``autodata`` directives as plain text, with the
docs' autodoc and napoleon settings, and reads them.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

DOCS = ROOT / "docs"
#: A phrase of each constant's own description, by its documented name.
DESCRIBED = {
    "zimage_async.DEFAULT_BASE_URL": "base URL",
    "zimage_async.emulator.DEFAULT_API_KEY": "API key",
    "zimage_async.emulator.RATIO_SIZES": "aspect ratio",
    "zimage_async.emulator.TASK_ERROR_MESSAGES": "task error code",
}


def _directives() -> str:
    """Every ``autodata`` directive of the reference pages, with its options."""
    found = []
    for page in ("api.md", "emulator.md"):
        text = (DOCS / page).read_text(encoding="utf-8")
        found += re.findall(r"^\.\. autodata:: .*\n(?:   .*\n)*", text, re.M)
    return "\n".join(found)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The reference pages' ``autodata`` entries, built by Sphinx as plain text."""
    source = tmp_path_factory.mktemp("constants")
    (source / "conf.py").write_text(
        'extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon"]\n'
        'autodoc_default_options = {"members": True, "show-inheritance": True}\n'
        'autodoc_typehints = "description"\n',
        encoding="utf-8",
    )
    (source / "index.rst").write_text(f"Constants\n=========\n\n{_directives()}", "utf-8")
    out = Path(source / "out")
    done = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-m", "sphinx", "-q", "-W", "-b", "text", str(source), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return (out / "index.txt").read_text(encoding="utf-8")


def _entry(rendered: str, name: str) -> str:
    """The text Sphinx rendered under *name*'s header, up to the next entry."""
    match = re.search(rf"^{re.escape(name)}\b.*?\n(.*?)(?=^\S|\Z)", rendered, re.M | re.S)
    assert match, f"{name} is not in the reference"
    return " ".join(match.group(1).split())


@pytest.mark.parametrize(("name", "phrase"), DESCRIBED.items())
def test_a_public_constant_renders_its_own_description(
    rendered: str, name: str, phrase: str
) -> None:
    """*name*'s reference entry is its own description, not its type's docstring or nothing."""
    assert name in _directives()
    entry = _entry(rendered, name)
    assert "str(object=" not in entry
    assert "Type:" not in entry  # napoleon read no "type: text" into it
    assert phrase in entry, entry
