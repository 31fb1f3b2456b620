"""File names for saved images from templates such as ``"{number:03d}-{slug}"``. Pure.

A template is Python format syntax over a fixed set of fields (:data:`NAME_FIELDS`):

* ``task_id``: the task id (``task-unified-...``);
* ``index``: the image's index within its task (0, 1, ...);
* ``seed``: the request's seed, or ``random`` when the service picked it;
* ``slug``: the prompt in lower case, letters and digits joined by ``-``, at most 40
  characters (``untitled`` when there is none);
* ``number``: a number the caller gives (an item's number in a batch).

Format specs are allowed (``{index:02d}``); attribute and item access, conversions and
positional fields are not. The extension is never part of the template: it is added
from the format actually received.

>>> check_template("{number:03d}-{slug}")
'{number:03d}-{slug}'
>>> render_name("{number:03d}-{slug}", NameFields(task_id="task-unified-1-a", index=0,
...     prompt="A red fox, at dawn!", number=7))
'007-a-red-fox-at-dawn'
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Sequence

import attrs

from ._exceptions import InvalidRequestError
from ._quoting import describe_char, int_text, quote, wrong_type

__all__ = [
    "BATCH_NAME",
    "DEFAULT_TEMPLATE",
    "IMAGES_CHECKED",
    "NAME_FIELDS",
    "NameFields",
    "check_batch_names",
    "check_template",
    "render_name",
    "slugify",
]

#: The fields a template may use.
NAME_FIELDS = ("task_id", "index", "seed", "slug", "number")
#: The name ``save()`` gives without a template: ``<task id>-<n>``.
DEFAULT_TEMPLATE = "{task_id}-{index}"
#: The name a batch gives: the item's number, a slug of its prompt, the image index.
BATCH_NAME = "{number:04d}-{slug}-{index}"
#: The longest slug, in characters.
SLUG_MAX = 40
#: How many images of each task a batch's names are rendered for before it starts.
IMAGES_CHECKED = 16
#: Whether a template names the image index (else ``save()`` adds ``-{index}`` to the
#: names of a task with several images).
_HAS_INDEX = re.compile(r"\{index[:}]")

_RULE = (
    "a name template is text with fields in braces, among "
    + ", ".join("{" + name + "}" for name in NAME_FIELDS)
    + ", and no path separator; text the file system can encode"
)
_SAMPLE = {"task_id": "task-unified-1-a", "index": 0, "seed": 1, "slug": "a-b", "number": 1}


class _Random:
    """An unknown seed: ``random`` whatever the format spec."""

    def __format__(self, spec: str) -> str:
        return "random"


_RANDOM = _Random()


@attrs.frozen(kw_only=True)
class NameFields:
    """The values a template is rendered with, for one image."""

    task_id: str
    index: int
    prompt: str | None = None
    seed: int | None = None
    number: int | None = None


def slugify(prompt: str | None, *, limit: int = SLUG_MAX) -> str:
    """Return *prompt* as a file-name-safe slug: lower-case ASCII words joined by ``-``.

    >>> slugify("Ein Fuchs im Schnee -- bei Nacht")
    'ein-fuchs-im-schnee-bei-nacht'
    >>> slugify("!!!")
    'untitled'
    """
    words = re.findall(r"[a-z0-9]+", (prompt or "").lower())
    slug = ""
    for word in words:
        longer = f"{slug}-{word}" if slug else word
        if len(longer) > limit:
            break
        slug = longer
    if not slug and words:
        slug = words[0][:limit]
    return slug or "untitled"


def _fields_of(template: str) -> list[str]:
    problem = None
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise InvalidRequestError(
            "name", _RULE, f"{template!r} is not a template ({exc})"
        ) from None
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in NAME_FIELDS:
            problem = (
                f"{template!r} uses the unknown field {{{field}}}"
                if field
                else f"{template!r} has an empty field {{}}; name one"
            )
        elif conversion is not None or (spec and "{" in spec):
            problem = f"{template!r} uses a conversion or nested field in {{{field}}}"
        if problem is not None:
            raise InvalidRequestError("name", _RULE, problem)
        names.append(field)
    return names


def check_template(template: str, *, number: int | None = 0) -> str:
    """Return *template* if it can name a file; raise :class:`InvalidRequestError` if not.

    The error names the unknown field, or the rule broken: no ``/`` (nor backslash), not
    empty, format specs that fit the field, and a *number* given when ``{number}`` is
    used (pass ``number=None`` to say none will be given).

    >>> check_template("{task}-{index}")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    zimage_async._exceptions.InvalidRequestError: name: '{task}-{index}' uses the unknown ...
    """
    if not isinstance(template, str):
        raise InvalidRequestError("name", _RULE, wrong_type(template))
    if not template.strip():
        raise InvalidRequestError("name", _RULE, f"the template is empty: {template!r}")
    if any(bad in template for bad in ("/", "\\", "\x00")):
        raise InvalidRequestError("name", _RULE, f"{template!r} contains a path separator")
    try:
        os.fsencode(template)
    except UnicodeEncodeError as exc:
        where = f"{describe_char(template[exc.start])} at position {exc.start}"
        raise InvalidRequestError(
            "name", _RULE, f"it holds {where}, which the file system cannot encode"
        ) from None
    fields = _fields_of(template)
    if "number" in fields and number is None:
        raise InvalidRequestError(
            "name", _RULE, f"{template!r} uses {{number}} but no number was given"
        )
    try:
        template.format(**_SAMPLE)
    except (ValueError, TypeError) as exc:
        raise InvalidRequestError("name", _RULE, f"{template!r}: {exc}") from None
    return template


def render_name(template: str, fields: NameFields) -> str:
    """Return the file name (without extension) *template* gives the image of *fields*.

    *template* must have passed :func:`check_template`.
    """
    number = 0 if fields.number is None else fields.number
    return _render(
        template, fields.task_id, fields.index, fields.seed, slugify(fields.prompt), number
    )


def _render(
    template: str, task_id: str, index: int, seed: int | None, slug: str, number: int
) -> str:
    seeded = _RANDOM if seed is None else seed
    name = template.format(task_id=task_id, index=index, seed=seeded, slug=slug, number=number)
    if name in {".", ".."} or not name.strip():
        return f"{task_id}-{index}"
    return name


_UNIQUE_RULE = (
    "a batch's name template gives every image its own file name: include {number} (each "
    "item's own number, written in full) or {task_id}; {index} only numbers the images of "
    "one task"
)


def check_batch_names(
    template: str | None, items: Sequence[tuple[str | None, int | None, int]]
) -> None:
    """Refuse a template under which two items of a batch could write the same file.

    *items* are each item's ``(prompt, seed, number)``. Every item's names are rendered
    as ``save()`` renders them, for a task of one image and of up to
    :data:`IMAGES_CHECKED` images (``-{index}`` added when the template has no
    ``{index}``), with a task id of its own that differs from the others' only in its
    last characters, as the service's ids may (so a cut ``{task_id:.12}`` collides).
    Raises :class:`InvalidRequestError` naming both items and the shared name, or the
    item whose number the template cannot write.
    """
    template = DEFAULT_TEMPLATE if template is None else template
    several = template if _HAS_INDEX.search(template) else template + "-{index}"
    owners: dict[str, tuple[int, bool]] = {}
    for item, (prompt, seed, number) in enumerate(items):
        slug = slugify(prompt)
        task_id = f"task-unified-0000000000-{item:08d}"
        try:
            single = _render(template, task_id, 0, seed, slug, number)
            names = [
                _render(several, task_id, n, seed, slug, number) for n in range(IMAGES_CHECKED)
            ]
        except (ValueError, TypeError, OverflowError) as exc:
            written = int_text(number)
            raise InvalidRequestError(
                "name", _RULE, f"{template!r} cannot name item {item} (number {written}): {exc}"
            ) from None
        for name, alone in [(single, True), *((name, name == single) for name in names)]:
            owner, owner_alone = owners.setdefault(name, (item, alone))
            if owner != item:
                when = "" if alone and owner_alone else " when a task has several images"
                raise InvalidRequestError(
                    "name",
                    _UNIQUE_RULE,
                    f"{template!r} gives items {owner} and {item} the same file name "
                    f"{quote(name)}{when}",
                )
