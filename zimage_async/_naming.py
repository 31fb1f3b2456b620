"""File names for saved images from templates such as ``"{number:03d}-{slug}"``. Pure.

A template is Python format syntax over a fixed set of fields (:data:`NAME_FIELDS`):

* ``task_id``: the task id (``task-unified-...``);
* ``index``: the image's index within its task (0, 1, ...);
* ``seed``: the request's seed, or ``random`` when the service picked it;
* ``slug``: the prompt in lower case, its words of ASCII letters and digits joined by
  ``-`` (accents dropped: ``café`` gives ``cafe``), at most 40 characters (``untitled``
  when there is none);
* ``number``: a number the caller gives (an item's number in a batch).

Format specs are allowed (``{index:02d}``), except the presentation type ``c``, which
turns a number into any character (seed 47 into ``/``); attribute and item access,
conversions (``!r``, ``!a``, ``!s``) and positional fields are not. Every rendered name
must be a file name: no ``/``, backslash or control character, not empty, ``.`` or
``..``, and at most 255 bytes with its extension and the ``-<n>`` a task of several
images adds. The extension is never part of the template: it is added from the format
actually received.

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
import unicodedata
from collections.abc import Iterable, Sequence

import attrs

from ._exceptions import InvalidRequestError
from ._imageinfo import EXTENSIONS
from ._quoting import describe_char, int_text, quote, wrong_type
from ._validation import SEED_MAX

__all__ = [
    "BATCH_NAME",
    "DEFAULT_TEMPLATE",
    "IMAGES_CHECKED",
    "NAME_FIELDS",
    "NAME_MAX_BYTES",
    "NameFields",
    "check_batch_names",
    "check_template",
    "names_index",
    "render_name",
    "slugify",
    "stem_problem",
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
#: The longest file name, in bytes, the usual file systems take (NAME_MAX).
NAME_MAX_BYTES = 255
#: The longest extension a saved image gets.
_EXTENSION_MAX = "." + max(EXTENSIONS.values(), key=len)
#: A task id as long as the service's (``task-unified-1757165031-uyujaw3d``, 32
#: characters) with room to spare; the real one is checked again when the file is saved.
_TASK_ID_SAMPLE = "task-unified-" + "1" * 18 + "-uyujaw3d"
#: The longest slug, in the longest form names are checked with.
_SLUG_SAMPLE = "x" * SLUG_MAX

_RULE = (
    "a name template is text with fields in braces, among "
    + ", ".join("{" + name + "}" for name in NAME_FIELDS)
    + ", without a conversion or the format type 'c', that gives a file name: no path "
    "separator or control character, not empty, '.' or '..', at most "
    f"{NAME_MAX_BYTES} bytes with the extension and the '-<n>' of a task of several images"
)


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

    Accented letters are folded to their ASCII letters (case-folded, decomposed with
    NFKD, the combining marks dropped); a letter with no such fold (CJK, say) is left
    out, as punctuation is.

    >>> slugify("Ein Fuchs im Schnee -- bei Nacht")
    'ein-fuchs-im-schnee-bei-nacht'
    >>> slugify("Crème brûlée, Straße")
    'creme-brulee-strasse'
    >>> slugify("!!!")
    'untitled'
    """
    words = re.findall(r"[a-z0-9]+", _folded(prompt or ""))
    slug = ""
    for word in words:
        longer = f"{slug}-{word}" if slug else word
        if len(longer) > limit:
            break
        slug = longer
    if not slug and words:
        slug = words[0][:limit]
    return slug or "untitled"


#: Latin letters that no decomposition takes to ASCII (a stroke, a ligature, a thorn).
_LATIN = str.maketrans(
    {"þ": "th", "æ": "ae", "œ": "oe"} | dict(zip("øłđðıħŧĸ", "olddihtk", strict=True))
)


def _folded(text: str) -> str:
    """Return *text* case-folded, in ASCII where Latin (NFKD), without combining marks."""
    decomposed = unicodedata.normalize("NFKD", text.casefold().translate(_LATIN))
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def names_index(template: str) -> bool:
    """Whether *template* has the ``{index}`` field (else several images get ``-{index}``).

    Read as ``str.format`` reads it: ``{{index}}`` is the text ``{index}``, not the field.

    >>> names_index("{task_id}-{index:02d}"), names_index("{{index}}-{task_id}")
    (True, False)
    """
    try:
        return any(field == "index" for _, field, _, _ in string.Formatter().parse(template))
    except ValueError:  # not a template: check_template says why
        return False


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
        elif spec and spec.endswith("c"):  # the type is last; a fill 'c' is followed by >
            problem = (
                f"{quote(template)} formats {{{field}}} with the presentation type 'c', "
                "which turns a number into any character (47 is '/')"
            )
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
    if "\x00" in template:
        raise InvalidRequestError("name", _RULE, f"{template!r} contains a NUL character")
    if "/" in template or "\\" in template:
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
    problem = _longest_names_problem(template, [SEED_MAX, None], 0 if number is None else number)
    if problem is not None:
        raise InvalidRequestError("name", _RULE, f"{quote(template)} {problem}")
    return template


def _longest_names_problem(template: str, seeds: Sequence[int | None], number: int) -> str | None:
    """Say why a name *template* gives for an image could not be a file name, or None.

    The names are rendered as ``save()`` renders them for a task of one image and of
    :data:`IMAGES_CHECKED` images, with each of *seeds*, the widest values the other
    fields not known yet can have (the longest slug, a task id as long as the
    service's), and the longest extension.
    """
    several = template if names_index(template) else template + "-{index}"
    try:
        names = [
            _render(form, _TASK_ID_SAMPLE, index, each, _SLUG_SAMPLE, number)
            for form, index in ((template, 0), (several, IMAGES_CHECKED - 1))
            for each in seeds
        ]
    except (ValueError, TypeError, OverflowError) as exc:
        return f"cannot be rendered: {exc}"
    return _names_problem(names, _EXTENSION_MAX)


def _names_problem(names: Iterable[str], extension: str) -> str | None:
    for name in names:
        problem = stem_problem(name, extension)
        if problem is not None:
            return problem
    return None


def stem_problem(stem: str, extension: str) -> str | None:
    """Say why *stem* plus *extension* (``".png"``) is no file name of a folder, or None.

    >>> stem_problem("..", ".png")
    "gives the name '..', which is '.' or '..', a folder and no file"
    """
    if not stem.strip():
        return f"gives an empty name {quote(stem)}"
    if stem in {".", ".."}:
        return f"gives the name {quote(stem)}, which is '.' or '..', a folder and no file"
    for char in stem:
        if char in "/\\":
            return f"gives the name {quote(stem)}, which holds a path separator {char!r}"
        if unicodedata.category(char) == "Cc":
            what = describe_char(char)
            return f"gives the name {quote(stem)}, which holds a control character, {what}"
    try:
        size = len(os.fsencode(stem + extension))
    except UnicodeEncodeError as exc:
        where = describe_char(stem[exc.start])
        return f"gives a name holding {where}, which the file system cannot encode"
    if size > NAME_MAX_BYTES:
        return (
            f"gives the name {quote(stem + extension)}, {size} bytes with its extension; "
            f"a file name has at most {NAME_MAX_BYTES} bytes"
        )
    return None


def render_name(template: str, fields: NameFields, *, extension: str = "") -> str:
    """Return the file name (without extension) *template* gives the image of *fields*.

    *template* should have passed :func:`check_template`; the name is checked all the
    same (with *extension*, such as ``".png"``, for its length), and one that is no file
    name of a folder raises :class:`InvalidRequestError` on ``name``.
    """
    number = 0 if fields.number is None else fields.number
    try:
        name = _render(
            template, fields.task_id, fields.index, fields.seed, slugify(fields.prompt), number
        )
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidRequestError("name", _RULE, f"{quote(template)}: {exc}") from None
    problem = stem_problem(name, extension)
    if problem is not None:
        raise InvalidRequestError("name", _RULE, f"{quote(template)} {problem}")
    return name


def _render(
    template: str, task_id: str, index: int, seed: int | None, slug: str, number: int
) -> str:
    seeded = _RANDOM if seed is None else seed
    return template.format(task_id=task_id, index=index, seed=seeded, slug=slug, number=number)


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
    Each name is checked to be a file name (see :func:`stem_problem`) with the item's
    own number and seed, the longest slug and task id, and the longest extension.
    Raises :class:`InvalidRequestError` naming both items, the template and the fields
    that render alike for them (never the shared name: its slug is words of the
    prompts), or the item whose names cannot be files.
    """
    template = DEFAULT_TEMPLATE if template is None else template
    _fields_of(template)
    several = template if names_index(template) else template + "-{index}"
    owners: dict[str, tuple[int, bool]] = {}
    for item, (prompt, seed, number) in enumerate(items):
        slug = slugify(prompt)
        task_id = f"task-unified-{0:018d}-{item:08d}"
        which = f"item {item} (number {int_text(number)})"
        problem = _longest_names_problem(template, [seed], number)
        if problem is not None:
            raise InvalidRequestError("name", _RULE, f"{quote(template)} {problem} for {which}")
        single = _render(template, task_id, 0, seed, slug, number)
        names = [_render(several, task_id, n, seed, slug, number) for n in range(IMAGES_CHECKED)]
        for name, alone in [(single, True), *((name, name == single) for name in names)]:
            owner, owner_alone = owners.setdefault(name, (item, alone))
            if owner != item:
                when = "" if alone and owner_alone else " when a task has several images"
                raise InvalidRequestError(
                    "name",
                    _UNIQUE_RULE,
                    f"{template!r} gives items {owner} and {item} (numbers "
                    f"{int_text(items[owner][2])} and {int_text(number)}) the same file name"
                    f"{when} ({_alike(template, items[owner], items[item])})",
                )


def _alike(
    template: str,
    first: tuple[str | None, int | None, int],
    second: tuple[str | None, int | None, int],
) -> str:
    """Say which fields of *template* give the two items one name, without the name.

    The name is not quoted: its slug is words of the prompts, which an error never
    quotes. Numbers and seeds are shown; of the slugs, only whether they are the same.
    """
    used = [field for field in dict.fromkeys(_fields_of(template)) if field != "index"]
    if not used:
        return "none of its fields tells items apart"
    facts = []
    for field in used:
        if field == "number":
            facts.append(_pair("number", int_text(first[2]), int_text(second[2])))
        elif field == "seed":
            seeds = ("random" if seed is None else int_text(seed) for seed in (first[1], second[1]))
            facts.append(_pair("seed", *seeds))
        elif field == "slug":
            same = slugify(first[0]) == slugify(second[0])
            facts.append(
                "the same slug of their prompts"
                if same
                else "the slugs of their prompts differ, but not the names they give"
            )
        else:
            facts.append("task ids that differ only in their last characters")
    fields = ", ".join("{" + field + "}" for field in used)
    verb = "fields" if len(used) > 1 else "field"
    return f"from its {verb} {fields}: " + "; ".join(facts)


def _pair(label: str, first: str, second: str) -> str:
    """Return ``seed random for both`` or ``numbers 10 and 11``."""
    if first == second:
        return f"{label} {first} for both"
    return f"{label}s {first} and {second}"
