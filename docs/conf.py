"""Sphinx configuration for the zimage-async documentation."""

from __future__ import annotations

from typing import Any

import zimage_async

project = "zimage-async"
author = "zimage-async developers"
copyright = "2026, zimage-async developers"
release = zimage_async.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}

# The build runs the pages' {doctest} examples with no doctest_global_setup: each imports
# what it uses, so that it runs as written when a reader copies it (an import made here
# would hide a missing one). The examples in docstrings are left to pytest
# (--doctest-modules), which runs them in their module's namespace, their context.
doctest_test_doctest_blocks = ""

html_theme = "furo"
html_title = f"zimage-async {release}"
# No intersphinx: the docs build offline, and -W would turn a failed fetch into an error.


def _exception_source(app: object, modname: str, attribute: str) -> str | None:
    """Point [source] links of exceptions at the module that defines each class.

    Every exception class names ``zimage_async._exceptions`` as its module, which
    re-exports them from the modules that define them.
    """
    from zimage_async import _exceptions_base, _exceptions_image, _exceptions_task

    name = attribute.split(".")[0]
    for module in (_exceptions_base, _exceptions_image, _exceptions_task):
        if name in module.__all__:
            return module.__name__
    return None


def setup(app: Any) -> None:
    """Register the documentation's own hooks."""
    app.connect("viewcode-follow-imported", _exception_source)
