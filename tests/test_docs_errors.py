"""The errors page shows the exception tree of the code, and says what to do about each."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import zimage_async
from zimage_async import _exceptions

PAGE = Path(__file__).parents[1] / "docs" / "errors.md"


def _names(tree: str) -> list[str]:
    return re.findall(r"^[\s│├└─]*([A-Z]\w+)", tree, flags=re.MULTILINE)


def test_the_page_draws_the_tree_of_the_code() -> None:
    """The tree on docs/errors.md names the same classes, in the same places, as the code's."""
    code_tree = (_exceptions.__doc__ or "").split(".. code-block:: text")[1].split("\n\n")[1]
    code_tree = textwrap.dedent(code_tree)
    page_tree = PAGE.read_text(encoding="utf-8").split("```text\n")[1].split("```")[0]
    assert _names(page_tree) == _names(code_tree)
    shape = [line.split(" ")[0] for line in page_tree.strip().splitlines()]
    assert shape == [line.split(" ")[0] for line in code_tree.strip().splitlines()]


def test_every_exception_has_a_row_saying_what_to_do() -> None:
    """Each public exception class (but the root and APIError) has a row in the table."""
    text = PAGE.read_text(encoding="utf-8")
    exceptions = [
        name
        for name in zimage_async.__all__
        if isinstance(getattr(zimage_async, name), type)
        and issubclass(getattr(zimage_async, name), zimage_async.ZImageError)
        and name not in ("ZImageError", "APIError")
    ]
    missing = [
        name
        for name in exceptions
        if not any(form.format(name) in text for form in ("| `{}`", "`{}`,", "`{}` |"))
    ]
    assert missing == []
