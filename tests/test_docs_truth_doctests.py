"""The doctests of the docs pages run as a reader would run them: with only what they show.

Sphinx's doctest builder runs ``doctest_global_setup`` before every page; anything it
imports would let a page use a name it never imports, and the page would then fail with
``NameError`` for the reader who copies it. So the setup imports nothing, and each page's
blocks run here in order, in one fresh namespace, with no setup at all.
"""

from __future__ import annotations

import ast
import doctest
import re
import time

import pytest

from .conftest import ROOT

DOCS = ROOT / "docs"
#: The option flags Sphinx's doctest builder uses by default.
FLAGS = doctest.ELLIPSIS | doctest.IGNORE_EXCEPTION_DETAIL | doctest.DONT_ACCEPT_TRUE_FOR_1


def _doctest_pages() -> list[str]:
    """The names of the docs pages that hold at least one ``{doctest}`` block."""
    return [
        page.name
        for page in sorted(DOCS.glob("*.md"))
        if "```{doctest}" in page.read_text(encoding="utf-8")
    ]


def test_the_docs_build_adds_no_import_to_page_doctests() -> None:
    """docs/conf.py gives the doctests no setup that imports names the pages do not show."""
    tree = ast.parse((DOCS / "conf.py").read_text(encoding="utf-8"))
    setups = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "doctest_global_setup" for t in node.targets)
    ]
    shown = [ast.literal_eval(value) for value in setups]
    assert not any("import" in setup for setup in shown), shown


@pytest.mark.parametrize("page", _doctest_pages())
def test_page_doctests_run_with_only_the_imports_they_show(page: str) -> None:
    """Every ``{doctest}`` block of *page*, run in order in one namespace, passes quickly."""
    text = (DOCS / page).read_text(encoding="utf-8")
    source = "\n".join(re.findall(r"```\{doctest\}\n(.*?)```", text, re.S))
    test = doctest.DocTestParser().get_doctest(source, {}, page, str(DOCS / page), 0)
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    started = time.monotonic()
    runner.run(test, out=report.append, clear_globs=True)
    took = time.monotonic() - started
    assert runner.failures == 0, "".join(report)
    assert took < 10, f"{page}'s doctests took {took:.1f} s"
