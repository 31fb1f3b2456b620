"""What `zimage generate` says of a task it leaves behind: how to collect it, if it can be.

A task that exists is billed: the message says how to collect its images later without
creating another (``zimage task ID -o PATH``, ``zimage tasks collect -o DIR``). A create
whose answer was lost is in the journal as uncertain, for ``zimage tasks collect
--resubmit-uncertain`` to send again with its own key; without a journal, nothing records
it, and the message says so. A task that completed without an image has nothing to
collect. Every value put into these messages is :func:`shown`.
"""

from __future__ import annotations

import re

from ._cli_common import PROG, collect_commands, collect_folder, shown, tasks_command
from ._cli_words import cli_words
from ._exceptions import SubmissionUncertainError, WaitTimeoutError

__all__ = [
    "collect_hint",
    "collectable",
    "error_words",
    "failed_text",
    "no_results_text",
    "timed_out",
    "timeout_text",
    "uncertain_create",
    "uncertain_hint",
]


def collect_hint(
    task_id: str, output: str | None, *, emulated: bool, billed: bool, journal: str | None
) -> str:
    """Say that task *task_id* goes on, and how to collect it without another task."""
    if emulated:
        return (
            f"task {shown(task_id)} ended with the in-process emulator (nothing was billed); "
            "run the command again for a new one"
        )
    where = "at the service, where it is billed" if billed else "at its server"
    first, *more = collect_commands(task_id, output, journal)
    text = (
        f"task {shown(task_id)} keeps running {where}. Collect its image(s) later, without "
        f"creating another task, with:\n  {first}"
    )
    for command in more:
        text += f"\nor collect every unfinished task of the journal with:\n  {command}"
    return text


def _resend_commands(journal: str, output: str | None) -> str:
    """Return the commands that list an uncertain create and send it again with its key."""
    folder = collect_folder(output)
    return (
        f"\n  {tasks_command(journal, 'list')}\nand this sends it again with that same key "
        "(where keys are honoured, that returns the task already made, not a new one) and "
        f"saves its image(s):\n  "
        f"{tasks_command(journal, 'collect', '-o', folder, '--resubmit-uncertain')}"
    )


def uncertain_hint(journal: str | None, output: str | None, key: str) -> str:
    """Return what to say when the create, sent with *key*, is interrupted before its answer.

    It follows "interrupted: " (or "exiting at once: "), so it does not say it again.
    """
    key = shown(key)
    if journal is None:
        return (
            "while creating the task, with --no-journal: if the create request went out, "
            "a task may have been made (and billed) whose id is unknown and that nothing "
            f"records, so no command can collect it (its idempotency key was {key}); check "
            "your usage before generating again. Without --no-journal, the journal keeps "
            f"such a create, which `{PROG} tasks collect -o DIR --resubmit-uncertain` sends "
            "again with its own key"
        )
    return (
        "while creating the task; if the create request went out, a task may exist "
        f"whose id is unknown: the journal then lists it, under its idempotency key {key}, in"
        + _resend_commands(journal, output)
    )


def uncertain_create(
    exc: SubmissionUncertainError,
    output: str | None,
    *,
    journal: str | None,
    emulated: bool,
    billed: bool,
) -> str:
    """Say that the create's answer was lost, and what the command line can do about it."""
    cause = shown(cli_words(str(exc.cause)))
    if exc.task_id is not None:
        return f"the create's answer could not be read ({cause}), but it names the " + (
            collect_hint(exc.task_id, output, emulated=emulated, billed=billed, journal=journal)
        )
    times = f" (up to {exc.sent} times where the gateway ignores keys)" if exc.sent > 1 else ""
    text = (
        f"the create request failed after it was sent ({cause}), so a task may have been "
        f"created and billed{times}, whose id is unknown; it was not sent again, to avoid "
        "paying twice. "
    )
    key = shown(exc.idempotency_key)
    if emulated:
        return text + "With the in-process emulator nothing was billed: run the command again"
    if journal is None:
        return text + (
            f"With --no-journal nothing records it (its idempotency key was {key}), so no "
            "command can send it again with that key: check your usage before generating again"
        )
    return text + (
        f"The journal records it as uncertain, under its idempotency key {key}, listed by"
        + _resend_commands(journal, output)
    )


def no_results_text(task_id: str) -> str:
    """Say that a task completed without an image: there is nothing to collect."""
    return (
        f"task {shown(task_id)} completed without any image: there is nothing to collect, "
        "and collecting it again will not help"
    )


def timeout_text(exc: WaitTimeoutError) -> str:
    """Say what ``--timeout`` cut short, without the library's advice on collecting it."""
    if exc.stage == "download":
        return (
            f"the images of task {shown(exc.task_id)} were not all downloaded within "
            f"{exc.timeout:g} s"
        )
    last = shown(exc.last_status or "unknown")
    return f"task {shown(exc.task_id)} was still {last} after {exc.timeout:g} s (--timeout)"


def timed_out(exc: WaitTimeoutError, hint: str) -> str:
    """Say that ``--timeout`` passed, then *hint* (how to collect the task)."""
    return f"timed out: {timeout_text(exc)}; {hint}"


#: The library's note that a task is billed and can be collected (``note_collectable``).
_COLLECT_NOTE = re.compile(r" \[task \S+ was created and is billed: collect it later [^\]]*\]")


def collectable(exc: Exception) -> bool:
    """Whether the library noted that *exc*'s task is billed and can be collected later."""
    return _COLLECT_NOTE.search(str(exc)) is not None


def error_words(exc: Exception) -> str:
    """Return *exc*'s message in the command's words, without the "collect it later" note.

    Not escaped (``--json`` prints it exactly); the command gives its own advice.
    """
    return cli_words(_COLLECT_NOTE.sub("", str(exc)))


def failed_text(exc: Exception, task_id: str) -> str:
    """Say what failed after the task was created: the typed error, or the file's.

    Without the library's "collect it later" note: the command gives its own advice,
    with the real output path, after this line.
    """
    if not isinstance(exc, OSError):
        return f"{type(exc).__name__}: {shown(error_words(exc))}"
    named = exc.filename2 or exc.filename  # a rename's or link's target, not its source
    where = "" if named is None else f"{shown(named)}: "
    return f"cannot save the image(s) of task {shown(task_id)}: {where}{exc.strerror or shown(exc)}"
