"""``zimage task ID``: show one task; ``--wait`` for it; ``-o`` to save its images.

``-o`` is checked as ``zimage generate`` checks it, before the task is looked at (exit
2); a file that still cannot be written ends with exit 1 and the error. With ``--json``,
the task's record is printed whatever the outcome, once the task is known.
"""

from __future__ import annotations

import argparse
import contextlib

from ._cli_common import (
    UsageError,
    check_output_path,
    echo,
    journal_exists,
    journal_target,
    open_session,
    say,
    shown,
    wants_emulator,
)
from ._cli_generate import check_destination
from ._cli_hints import failed_text
from ._cli_output import print_json
from ._cli_words import option_error
from ._exceptions import InvalidRequestError, ZImageError
from ._handle import TaskHandle
from ._models import Task, TaskStatus
from ._validation import validate_task_id

__all__ = ["run_task"]


def _describe(task: Task) -> str:
    text = f"{shown(task.id)} {shown(task.raw_status)} {task.progress}%"
    if task.error is not None:
        text += f" error {shown(task.error.code)}: {shown(task.error.message)}"
    if task.results:
        text += f" ({len(task.results)} image link(s))"
    return text


def _task_record(task: Task) -> dict[str, object]:
    return {
        "id": task.id,
        "status": task.raw_status,
        "progress": task.progress,
        "error": None
        if task.error is None
        else {"code": task.error.code, "message": task.error.message},
        "image_links": len(task.results),
    }


async def _save(handle: TaskHandle, args: argparse.Namespace) -> int:
    """Wait for the task and save its images; print them (or its record); the status."""
    try:
        paths = await handle.save(args.output)
    except (ZImageError, OSError) as exc:
        if args.json and handle.task is not None:  # the task is known: its record
            print_json(_task_record(handle.task) | {"paths": []})
        if not isinstance(exc, OSError):
            raise
        say(f"error: {failed_text(exc, handle.id)}; fix that, then run the same command again")
        return 1
    if args.json:
        assert handle.task is not None
        print_json(_task_record(handle.task) | {"paths": [str(p) for p in paths]})
    else:
        for path in paths:
            echo(shown(path))
    return 0


async def run_task(args: argparse.Namespace) -> int:
    """Show a task; with --wait, wait for it; with -o, save its images."""
    try:
        task_id = validate_task_id(args.task_id)
    except InvalidRequestError as exc:
        raise option_error(exc) from None
    check_output_path(args.output)
    journal = journal_target(args, emulated=False)
    if journal is not None and not journal_exists(journal):
        args.no_journal = True  # looking at a task creates no journal
    if wants_emulator(args):
        raise UsageError(
            "zimage task needs the service that made the task, and an in-process emulator "
            "is new and knows no task: set ZIMAGE_API_KEY (and ZIMAGE_BASE_URL for an "
            "emulator started with `zimage emulator`)"
        )
    if args.output is not None:
        check_destination(args.output)  # before the task is looked at, as generate does
    async with open_session(args) as target:
        handle = target.session.task(task_id)  # records to the journal if it holds it
        if args.output is not None:
            return await _save(handle, args)
        if args.wait:
            with contextlib.suppress(ZImageError):
                await handle.wait()
            task = handle.task
            assert task is not None
        else:
            task = await handle.refresh()
        if args.json:
            print_json(_task_record(task) | {"paths": []})
        else:
            echo(_describe(task))
        if task.error is not None:
            return 1
        # Waited, yet not delivered: still running at the deadline, or no image link.
        delivered = task.status is TaskStatus.COMPLETED and bool(task.results)
        return 1 if args.wait and not delivered else 0
