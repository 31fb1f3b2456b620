"""``zimage generate`` and ``zimage task``: one task, its progress, its images."""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import sys
from collections.abc import Iterator
from typing import IO, Any

from ._cli_common import (
    CLI_EXTRA,
    PROG,
    Interruption,
    UsageError,
    check_output_path,
    is_loopback,
    open_session,
    say,
    wants_emulator,
)
from ._exceptions import InvalidRequestError, ZImageError
from ._handle import TaskHandle
from ._models import GenerationRequest, Task, TaskStatus
from ._saving import plan_save
from ._validation import validate_task_id

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
            self._live.update(self._bar, description=status, completed=progress)
        elif self._mode == "plain" and status != self._last:
            print(f"{PROG}: {status} {progress}%", file=self._err, flush=True)
        self._last = status


async def _follow(handle: TaskHandle, progress: Progress) -> None:
    with contextlib.suppress(ZImageError):  # the save that follows raises it again
        async for task in handle.updates():
            progress.update(task.raw_status, task.progress)
    if handle.status is TaskStatus.COMPLETED:
        progress.update("downloading", 100)


def _collect_hint(task_id: str, output: str | None, *, emulated: bool, billed: bool) -> str:
    if emulated:
        return (
            f"task {task_id} ended with the in-process emulator (nothing was billed); "
            "run the command again for a new one"
        )
    command = [PROG, "task", task_id, "-o", output or "."]
    where = "at the service (it is billed)" if billed else "at its server"
    return (
        f"task {task_id} keeps running {where}. Collect its image(s) later, without "
        f"creating another task, with:\n  {shlex.join(command)}"
    )


async def run_generate(args: argparse.Namespace, interruption: Interruption) -> int:
    """Submit one task, show its progress, save its images; print their paths."""
    request = _request(args)
    check_output_path(args.output)
    name, metadata = _save_options(args)
    progress = Progress(enabled=not args.json, err=sys.stderr)
    async with open_session(args) as target:
        handle = await target.session.submit(request)
        interruption.hint = _collect_hint(
            handle.id,
            args.output,
            emulated=target.emulated,
            billed=not is_loopback(target.session.base_url),
        )
        if not args.verbose:  # -v logs the created task already
            say(f"created task {handle.id}; waiting")
        try:
            with progress.shown():
                await _follow(handle, progress)
                paths = await handle.save(args.output, name=name, number=0, metadata=metadata)
                progress.update("completed, saved", 100)
        except ZImageError as exc:
            if args.json:
                task = handle.task
                _print_json(
                    {
                        "task_id": handle.id,
                        "status": None if task is None else task.raw_status,
                        "paths": [],
                        "error": {"type": type(exc).__name__, "message": str(exc)},
                    }
                )
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
            print(path, flush=True)
    return 0


async def run_task(args: argparse.Namespace) -> int:
    """Show a task; with --wait, wait for it; with -o, save its images."""
    try:
        task_id = validate_task_id(args.task_id)
    except InvalidRequestError as exc:
        raise UsageError(str(exc)) from None
    check_output_path(args.output)
    if wants_emulator(args):
        raise UsageError(
            "zimage task needs the service that made the task, and an in-process emulator "
            "is new and knows no task: set ZIMAGE_API_KEY (and ZIMAGE_BASE_URL for an "
            "emulator started with `zimage emulator`)"
        )
    async with open_session(args) as target:
        handle = target.session.task(task_id)
        if args.output is not None:
            paths = await handle.save(args.output)
            if args.json:
                assert handle.task is not None
                _print_json(_task_record(handle.task) | {"paths": [str(p) for p in paths]})
            else:
                for path in paths:
                    print(path, flush=True)
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
            print(_describe(task), flush=True)
        if task.error is not None:
            return 1
        # Waited, yet not delivered: still running at the deadline, or no image link.
        delivered = task.status is TaskStatus.COMPLETED and bool(task.results)
        return 1 if args.wait and not delivered else 0
