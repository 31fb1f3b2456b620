"""Name templates for saved files: checked up front, rendered purely."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zimage_async import InvalidRequestError
from zimage_async._naming import NameFields, check_template, render_name, slugify

FIELDS = NameFields(task_id="task-unified-1-abc", index=2, prompt="Two Cats", seed=9, number=4)


@pytest.mark.parametrize(
    ("template", "name"),
    [
        pytest.param("{task_id}-{index}", "task-unified-1-abc-2", id="default"),
        pytest.param("{number:04d}_{slug}", "0004_two-cats", id="number-slug"),
        pytest.param("seed{seed}", "seed9", id="seed"),
    ],
)
def test_templates_render(template: str, name: str) -> None:
    """Each field renders its value, format specs included."""
    assert render_name(check_template(template), FIELDS) == name


@pytest.mark.parametrize(
    ("template", "words"),
    [
        pytest.param("{task}", "unknown field {task}", id="unknown"),
        pytest.param("{}", "empty field", id="positional"),
        pytest.param("a/{index}", "path separator", id="separator"),
        pytest.param("", "empty", id="empty"),
        pytest.param("{index!r}", "conversion", id="conversion"),
        pytest.param("{slug:d}", "slug", id="bad-spec"),
        pytest.param("{index", "not a template", id="unbalanced"),
    ],
)
def test_bad_templates_are_refused(template: str, words: str) -> None:
    """A template that cannot name a file raises InvalidRequestError saying why."""
    with pytest.raises(InvalidRequestError, match=words) as caught:
        check_template(template)
    assert caught.value.field == "name"


def test_number_must_be_given_when_used() -> None:
    """{number} without a number is refused up front."""
    with pytest.raises(InvalidRequestError, match="no number was given"):
        check_template("{number}", number=None)


def test_unknown_seed_renders_as_random_whatever_the_spec() -> None:
    """A seed the service picked renders as 'random', even under a numeric spec."""
    fields = NameFields(task_id="task-unified-1-a", index=0)
    assert render_name("{seed:05d}", fields) == "random"


@given(st.text())
def test_slugs_are_safe_file_names(prompt: str) -> None:
    """Any prompt gives a non-empty slug of lower-case letters, digits and dashes."""
    slug = slugify(prompt)
    assert slug and len(slug) <= 40
    assert set(slug) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
