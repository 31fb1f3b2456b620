"""The library's words put in the command's: option names, the spend limit, Python advice.

The library's messages speak to a Python caller: a request field (``size:``), a keyword
argument (``drop name=``, ``over max_credits=0.03``), a method to call
(``session.resubmit(error)``). On the command line, the same refusal names the option
(``--size``, ``--name``, ``--max-credits``) and the command that does the same.
"""

from __future__ import annotations

import re

from ._cli_common import UsageError
from ._cli_output import PROG, shown
from ._exceptions import InvalidRequestError, SpendLimitError

__all__ = [
    "batch_words",
    "cli_words",
    "line_words",
    "option_error",
    "spend_limit_text",
    "stop_words",
]

#: The option of ``zimage generate`` (or ``task``) that sets each field the library names.
OPTIONS = {
    "prompt": "PROMPT",
    "size": "--size",
    "seed": "--seed",
    "nsfw_check": "--nsfw-check",
    "name": "--name",
    "dest": "-o",
    "task_id": "ID",
}

#: The library's advice for the Python API, and what the command line offers instead.
_PYTHON_ADVICE = (
    (
        re.compile(r"(?:session\.resubmit\(error\)|recover\(resubmit_uncertain=True\)) sends"),
        f"`{PROG} tasks collect -o DIR --resubmit-uncertain` sends",
    ),
    (
        re.compile(r"the answer names task (\S+), which session\.task\(\) can resume"),
        rf"the answer names task \1, which `{PROG} task \1 -o PATH` collects",
    ),
    (
        re.compile(r"collect each with session\.task\(ID\) \(or (`[^`]*`)\)"),
        r"collect each with \1",
    ),
    (
        re.compile(
            r"(?:await the handle again, or )?"
            r"collect it later with session\.task\('[^']*'\) \(or (`[^`]*`)\)"
        ),
        r"collect it later with \1",
    ),
    (re.compile(r"(`[^`]*`) or session\.task\([^)]*\)"), r"\1"),
    (re.compile(r" \(or api_key=\)"), ""),
)

#: What a `zimage batch` item says instead: the same command, run again, resumes it.
_AGAIN = "run the same command again"
_BATCH_ADVICE = (
    (
        re.compile(r"session\.resubmit\(error\) sends it again"),
        f"{_AGAIN} with --resubmit-uncertain: it sends it again",
    ),
    (
        re.compile(r"resubmit with resubmit_uncertain=True, or --resubmit-uncertain, once"),
        f"{_AGAIN} with --resubmit-uncertain once",
    ),
    (
        re.compile(r"rerun the batch with resubmit_expired=True \([^)]*\)"),
        f"{_AGAIN} with --resubmit-expired",
    ),
    (
        re.compile(
            r"(?:await the handle again, or )?collect it later with session\.task\('[^']*'\) "
            r"\(or `[^`]*`\)(?: instead of generating it again)?"
        ),
        f"{_AGAIN} to resume it (it is not paid again)",
    ),
)


def cli_words(text: str) -> str:
    """Return the library's *text* with its advice for the Python API in the command's words."""
    for pattern, words in _PYTHON_ADVICE:
        text = pattern.sub(words, text)
    return text


def batch_words(text: str) -> str:
    """Return an item's *text* of `zimage batch` with the Python advice in the command's words.

    What resumes a batch's item is the same command run again (with
    ``--resubmit-uncertain`` or ``--resubmit-expired`` where the item needs it).
    """
    for pattern, words in _BATCH_ADVICE:
        text = pattern.sub(words, text)
    return cli_words(text)


def stop_words(exc: Exception) -> str:
    """Say why a batch stopped sending creates, without saying that it stopped again."""
    return batch_words(str(exc)).replace(" - the batch stopped sending creates; ", " - ")


def _optioned(text: str) -> str:
    """Return *text* with ``field=`` (a keyword argument) and ``dest`` as the options."""
    text = re.sub(
        r"\b([a-z_]+)=(?=[;,.)\s]|$)",
        lambda m: OPTIONS.get(m.group(1), m.group(0)),
        text,
    )
    return re.sub(r"^dest\b", OPTIONS["dest"], text)


def option_error(exc: InvalidRequestError) -> UsageError:
    """Return the usage error for a refused field, naming the option that set it."""
    option = OPTIONS.get(exc.field, exc.field)
    return UsageError(
        f"{option}: {shown(_optioned(exc.problem))}; the rule is: {shown(_optioned(exc.rule))}."
    )


def spend_limit_text(exc: SpendLimitError) -> str:
    """Say why a create was refused by ``--max-credits``, and what to do, in the options' words."""
    scope = "the journal" if exc.batch_id is None else f"batch {shown(exc.batch_id)}"
    return (
        f"creating this task would reserve {exc.expected:g} credit(s) on top of the "
        f"{exc.reserved:g} already reserved in {scope} (uncertain creates included), over "
        f"--max-credits {exc.max_credits:g}; nothing was sent - raise --max-credits, or "
        f"wait for uncertain creates to be resolved (see `{PROG} tasks spend`)"
    )


#: An item of the library's messages by its number, which is its line in a batch file.
_ITEM = re.compile(r"\bitem \d+ \(number (\d+)\)")
_ITEMS = re.compile(r"\bitems \d+ and \d+ \(numbers (\d+) and (\d+)\)")


def line_words(problem: str) -> str:
    """Name the items of a batch file by their lines: ``item 0 (number 3)`` is ``line 3``."""
    return _ITEMS.sub(r"lines \1 and \2", _ITEM.sub(r"line \1", problem))
