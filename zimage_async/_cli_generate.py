"""``zimage generate`` and ``zimage task``: one task, its progress, its images."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from ._cli_common import (
    CLI_EXTRA,
    PROG,
    Interruption,
    Target,
    UsageError,
    check_output_path,
    check_writable,
    collect_commands,
    collect_folder,
    echo,
    is_loopback,
    journal_exists,
    journal_target,
    open_session,
    say,
    shown,
    tasks_command,
    wants_emulator,
)
from ._exceptions import InvalidRequestError, TaskFailedError, WaitTimeoutError, ZImageError
from ._handle import TaskHandle
from ._models import GenerationRequest, Task, TaskStatus
from ._saving import plan_save, variant_problem
from ._validation import validate_task_id

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["add_save_options", "run_generate", "run_task"]


def add_save_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--name TEMPLATE`` and ``--embed-metadata`` to the ``generate`` parser."""
    parser.add_argument(
        "--name",
        metavar="TEMPLATE",
        help="file names in the -o folder, e.g. '{slug}-{seed}' (fields: task_id, index, "
        "seed, slug, number); default: '{task_id}-{index}'",
    )
    parser.add_argument(
        "--embed-metadata",
        action="store_true",
        help="write the prompt, seed, size, model and task id into the image file "
        "(read them back with `zimage info FILE`)",
    )


def _save_options(args: argparse.Namespace) -> tuple[str | None, bool]:
    """Return the --name template (checked before anything is sent) and the metadata flag."""
    name: str | None = getattr(args, "name", None)
    if name is not None:
        try:
            plan_save(args.output, name=name, number=0)
        except InvalidRequestError as exc:
            raise UsageError(str(exc)) from None
    return name, bool(getattr(args, "embed_metadata", False))


def _request(args: argparse.Namespace) -> GenerationRequest:
    try:
        return GenerationRequest(
            prompt=args.prompt, size=args.size, seed=args.seed, nsfw_check=args.nsfw_check
        )
    except InvalidRequestError as exc:
        raise UsageError(str(exc)) from None


def _describe(task: Task) -> str:
    text = f"{task.id} {task.raw_status} {task.progress}%"
    if task.error is not None:
        text += f" error {task.error.code}: {task.error.message}"
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


def _print_json(record: dict[str, object]) -> None:
    print(json.dumps(record, ensure_ascii=False), flush=True)


class Progress:
    """Shows one task's status and progress on stderr while it runs, if it is a terminal.

    With rich, a live bar; without it, a line each time the status changes; when stderr is
    not a terminal (or with --json), nothing.
    """

    def __init__(self, *, enabled: bool, err: IO[str]) -> None:
        self._err = err
        self._mode = "off"
        self._live: Any = None
        self._last = ""
        if enabled and err.isatty():
            try:
                import rich  # noqa: F401
            except ImportError:
                say(f"plain progress lines: install rich for a live display ({CLI_EXTRA})")
                self._mode = "plain"
            else:
                self._mode = "rich"

    @contextlib.contextmanager
    def shown(self) -> Iterator[Progress]:
        """Show the display for the duration of the block."""
        if self._mode == "rich":
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn

            self._live = Progress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=30),
                TextColumn("{task.percentage:>3.0f}%"),
                console=Console(file=self._err),
            )
            self._bar = self._live.add_task("submitted", total=100)
            self._live.start()
        try:
            yield self
        finally:
            if self._live is not None:
                self._live.stop()
                self._live = None

    def update(self, status: str, progress: int) -> None:
        """Show a new status and progress (0-100)."""
        if self._live is not None:
            from rich.markup import escape

            self._live.update(self._bar, description=escape(shown(status)), completed=progress)
        elif self._mode == "plain" and status != self._last:
            echo(f"{PROG}: {status} {progress}%", file=self._err)
        self._last = status


async def _follow(handle: TaskHandle, progress: Progress, timeout: float | None) -> None:
    try:
        async for task in handle.updates(timeout=timeout):
            progress.update(task.raw_status, task.progress)
    except WaitTimeoutError:
        raise
    except ZImageError:  # the save that follows raises it again
        pass
    if handle.status is TaskStatus.COMPLETED:
        progress.update("downloading", 100)


def _collect_hint(
    task_id: str, output: str | None, *, emulated: bool, billed: bool, journal: str | None
) -> str:
    """Say that task *task_id* goes on, and how to collect it without another task."""
    if emulated:
        return (
            f"task {task_id} ended with the in-process emulator (nothing was billed); "
            "run the command again for a new one"
        )
    where = "at the service, where it is billed" if billed else "at its server"
    first, *more = collect_commands(task_id, output, journal)
    text = (
        f"task {task_id} keeps running {where}. Collect its image(s) later, without "
        f"creating another task, with:\n  {first}"
    )
    for command in more:
        text += f"\nor collect every unfinished task of the journal with:\n  {command}"
    return text


def _uncertain_hint(journal: str | None, output: str | None) -> str | None:
    """Return what to say when the create is interrupted before its answer came back."""
    if journal is None:
        return None
    folder = collect_folder(output)
    return (
        "interrupted while creating the task. If the create request went out, a task may "
        "exist whose id is unknown: the journal then lists it, with the create's key, in\n  "
        f"{tasks_command(journal, 'list')}\nand this sends it again with that same key "
        "(where keys are honoured, that returns the task already made, not a new one):\n  "
        f"{tasks_command(journal, 'collect', '-o', folder, '--resubmit-uncertain')}"
    )


def _timed_out(exc: WaitTimeoutError, hint: str) -> str:
    if exc.stage == "download":
        what = f"the images of task {exc.task_id} were not all downloaded within {exc.timeout:g} s"
    else:
        last = exc.last_status or "unknown"
        what = f"task {exc.task_id} was still {last} after {exc.timeout:g} s (--timeout)"
    return f"timed out: {what}; {hint}"


def _check_destination(output: str) -> None:
    """Refuse, before the billed create, an ``-o`` whose images could not be written.

    Its folder is created if needed and must take a new file; a file name must be one
    the file system takes (not too long, not under a regular file).
    """
    try:
        plan = plan_save(output)
    except OSError as exc:  # a name too long, a parent that is a file
        raise UsageError(f"-o {output}: {exc.strerror or exc}") from None
    check_writable(plan.folder, option=f"-o {output}: ")
    if plan.target is not None:
        problem = variant_problem(plan.target)
        if problem is not None:
            raise UsageError(f"-o {output}: {problem}")
        try:
            os.stat(plan.target)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise UsageError(f"-o {output}: {exc.strerror or exc}") from None


def _failed(exc: Exception, task_id: str) -> str:
    """Say what failed after the task was created: the typed error, or the file's."""
    if not isinstance(exc, OSError):
        return f"{type(exc).__name__}: {shown(exc)}"
    named = exc.filename2 or exc.filename  # a rename's or link's target, not its source
    where = "" if named is None else f"{named}: "
    return f"cannot save the image(s) of task {task_id}: {where}{exc.strerror or exc}"


def _print_failure(handle: TaskHandle, exc: Exception) -> None:
    task = handle.task
    _print_json(
        {
            "task_id": handle.id,
            "status": None if task is None else task.raw_status,
            "paths": [],
            "error": {"type": type(exc).__name__, "message": str(exc)},
        }
    )


async def _wait_and_save(
    handle: TaskHandle, args: argparse.Namespace, progress: Progress
) -> list[Path]:
    name, metadata = _save_options(args)
    loop = asyncio.get_running_loop()
    end = None if args.timeout is None else loop.time() + args.timeout
    with progress.shown():
        await _follow(handle, progress, args.timeout)
        left = None if end is None else max(end - loop.time(), 0.001)
        paths = await handle.save(args.output, name=name, number=0, metadata=metadata, timeout=left)
        progress.update("completed, saved", 100)
    return paths


async def run_generate(args: argparse.Namespace, interruption: Interruption) -> int:
    """Submit one task, show its progress, save its images; print their paths."""
    request = _request(args)
    check_output_path(args.output)
    _save_options(args)
    journal_target(args, emulated=wants_emulator(args))  # checked before anything starts
    _check_destination(args.output)
    progress = Progress(enabled=not args.json, err=sys.stderr)
    async with open_session(args) as target:
        interruption.hint = (
            None if target.emulated else _uncertain_hint(target.journal, args.output)
        )
        handle = await target.session.submit(request)
        hint = _hint_for(handle, args, target)
        interruption.hint = hint
        if not args.verbose:  # -v logs the created task already
            say(f"created task {handle.id}; waiting")
        try:
            paths = await _wait_and_save(handle, args, progress)
        except WaitTimeoutError as exc:
            if args.json:
                _print_failure(handle, exc)
            say(_timed_out(exc, hint))
            return 1
        except TaskFailedError as exc:  # nothing to collect
            if args.json:
                _print_failure(handle, exc)
            raise
        except (ZImageError, OSError) as exc:  # the task is billed: say how to collect it
            if args.json:
                _print_failure(handle, exc)
            say(f"error: {_failed(exc, handle.id)}")
            say(hint)
            return 1
        except Exception:
            say(hint)
            raise
        interruption.hint = None
    if args.json:
        _print_json(
            {
                "task_id": handle.id,
                "status": "completed",
                "paths": [str(path) for path in paths],
                "error": None,
            }
        )
    else:
        for path in paths:
            echo(path)
    return 0


def _hint_for(handle: TaskHandle, args: argparse.Namespace, target: Target) -> str:
    return _collect_hint(
        handle.id,
        args.output,
        emulated=target.emulated,
        billed=not is_loopback(target.session.base_url),
        journal=target.journal,
    )


async def run_task(args: argparse.Namespace) -> int:
    """Show a task; with --wait, wait for it; with -o, save its images."""
    try:
        task_id = validate_task_id(args.task_id)
    except InvalidRequestError as exc:
        raise UsageError(str(exc)) from None
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
    async with open_session(args) as target:
        handle = target.session.task(task_id)  # records to the journal if it holds it
        if args.output is not None:
            paths = await handle.save(args.output)
            if args.json:
                assert handle.task is not None
                _print_json(_task_record(handle.task) | {"paths": [str(p) for p in paths]})
            else:
                for path in paths:
                    echo(path)
            return 0
        if args.wait:
            with contextlib.suppress(ZImageError):
                await handle.wait()
            task = handle.task
            assert task is not None
        else:
            task = await handle.refresh()
        if args.json:
            _print_json(_task_record(task) | {"paths": []})
        else:
            echo(_describe(task))
        if task.error is not None:
            return 1
        # Waited, yet not delivered: still running at the deadline, or no image link.
        delivered = task.status is TaskStatus.COMPLETED and bool(task.results)
        return 1 if args.wait and not delivered else 0
