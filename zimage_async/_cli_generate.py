"""``zimage generate``: one task, its progress, its images (``zimage task`` shows one)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
    echo,
    is_loopback,
    journal_target,
    open_session,
    say,
    shown,
    wants_emulator,
)
from ._cli_hints import (
    collect_hint,
    failed_text,
    no_results_text,
    timed_out,
    uncertain_create,
    uncertain_hint,
)
from ._cli_output import StdoutError, drop_stdout, print_json
from ._cli_words import cli_words, option_error
from ._exceptions import (
    InvalidRequestError,
    NoResultsError,
    SubmissionUncertainError,
    TaskFailedError,
    WaitTimeoutError,
    ZImageError,
)
from ._handle import TaskHandle
from ._idempotency import new_key
from ._models import GenerationRequest, TaskStatus
from ._saving import plan_save, variant_problem

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["add_save_options", "check_destination", "run_generate"]


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
            raise option_error(exc) from None
    return name, bool(getattr(args, "embed_metadata", False))


def _request(args: argparse.Namespace) -> GenerationRequest:
    try:
        return GenerationRequest(
            prompt=args.prompt, size=args.size, seed=args.seed, nsfw_check=args.nsfw_check
        )
    except InvalidRequestError as exc:
        raise option_error(exc) from None


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


def check_destination(output: str) -> None:
    """Refuse, before the billed create, an ``-o`` whose images could not be written.

    Its folder is created if needed and must take a new file; a file name must be one
    the file system takes (not too long, not under a regular file).
    """
    option = f"-o {shown(output)}: "
    try:
        plan = plan_save(output)
    except OSError as exc:  # a name too long, a parent that is a file
        raise UsageError(f"{option}{exc.strerror or shown(exc)}") from None
    check_writable(plan.folder, option=option)
    if plan.target is not None:
        problem = variant_problem(plan.target)
        if problem is not None:
            raise UsageError(f"{option}{shown(problem)}")
        try:
            os.stat(plan.target)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise UsageError(f"{option}{exc.strerror or shown(exc)}") from None


def _failure(handle: TaskHandle, kind: str, message: str) -> dict[str, object]:
    """Return the ``--json`` record of a task that gave no image (yet): the error."""
    task = handle.task
    return {
        "task_id": handle.id,
        "status": None if task is None else task.raw_status,
        "paths": [],
        "error": {"type": kind, "message": message},
    }


def _print_failure(handle: TaskHandle, exc: Exception) -> None:
    print_json(_failure(handle, type(exc).__name__, cli_words(str(exc))))


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
    check_destination(args.output)
    progress = Progress(enabled=not args.json, err=sys.stderr)
    async with open_session(args) as target:
        key = new_key()  # its own, so that Ctrl-C during the create can name it
        sending = None if target.emulated else uncertain_hint(target.journal, args.output, key)
        interruption.hint = sending
        if args.json:  # Ctrl-C: the create's record, its outcome unknown
            interruption.record = lambda: _cut_create(key, sending)
        try:
            handle = await target.session.submit(request, idempotency_key=key)
        except SubmissionUncertainError as exc:  # the journal holds it, if there is one
            interruption.hint = interruption.record = None
            return _uncertain(exc, args, target)
        except Exception:  # refused, or not sent: not Ctrl-C, whose record is set above
            interruption.record = None
            raise
        hint = _hint_for(handle, args, target)
        interruption.hint = hint
        if args.json:  # Ctrl-C: the billed task's record, as on a timeout
            interruption.record = lambda: _failure(handle, "Interrupted", hint)
        if not args.verbose:  # -v logs the created task already
            say(f"created task {handle.id}; waiting")
        try:
            paths = await _wait_and_save(handle, args, progress)
        except Exception as exc:  # not Ctrl-C: that prints the record set above
            interruption.record = None
            return _failed(exc, handle, args, hint)
        interruption.record = None
        interruption.hint = None
    return _print_saved(handle, paths, args)


def _failed(exc: Exception, handle: TaskHandle, args: argparse.Namespace, hint: str) -> int:
    """Say what failed once the task existed, and how to collect it if it can be; status 1.

    A task that failed, or completed without an image, has nothing to collect: its error
    alone. With ``--json``, its record too. An unforeseen error is raised again.
    """
    if args.json and isinstance(exc, (ZImageError, OSError)):
        _print_failure(handle, exc)
    if isinstance(exc, WaitTimeoutError):
        say(timed_out(exc, hint))
    elif isinstance(exc, TaskFailedError):
        raise exc
    elif isinstance(exc, NoResultsError):
        say(f"error: {failed_text(exc, handle.id)}")
        say(no_results_text(handle.id))
    elif isinstance(exc, (ZImageError, OSError)):  # the task is billed: say how to collect it
        say(f"error: {failed_text(exc, handle.id)}")
        say(hint)
    else:
        say(hint)
        raise exc
    return 1


def _print_saved(handle: TaskHandle, paths: list[Path], args: argparse.Namespace) -> int:
    """Print the saved paths (or the JSON record); if stdout fails, name them on stderr."""
    try:
        if args.json:
            record = {"task_id": handle.id, "status": "completed", "error": None}
            print_json(record | {"paths": [str(path) for path in paths]})
        else:
            for path in paths:
                echo(shown(path))
    except (StdoutError, BrokenPipeError) as exc:  # the image is saved and billed: say where
        drop_stdout()
        why = exc.reason if isinstance(exc, StdoutError) else "its reader went away"
        saved = "".join(f"\n  {shown(path)}" for path in paths)
        say(
            f"error: cannot write to stdout: {why}; task {shown(handle.id)} completed, and "
            f"its image(s) were saved as:{saved}"
        )
        return 1
    return 0


def _cut_create(key: str, hint: str | None) -> dict[str, object]:
    """Return the ``--json`` record of a create that Ctrl-C cut off: its outcome unknown.

    *hint* is what stderr says after "interrupted: " (None: the in-process emulator).
    """
    message = (
        f"interrupted {hint}"
        if hint is not None
        else "interrupted while creating the task, with the in-process emulator, whose "
        "tasks end with it: nothing was billed; run the command again"
    )
    return {
        "task_id": None,
        "status": "uncertain",
        "idempotency_key": key,
        "paths": [],
        "error": {"type": "Interrupted", "message": message},
    }


def _uncertain(exc: SubmissionUncertainError, args: argparse.Namespace, target: Target) -> int:
    """Say that the create's answer was lost, and how to recover its task; exit status 1."""
    text = uncertain_create(
        exc,
        args.output,
        journal=target.journal,
        emulated=target.emulated,
        billed=not is_loopback(target.session.base_url),
    )
    if args.json:
        print_json(
            {
                "task_id": exc.task_id,
                "status": "uncertain" if exc.task_id is None else "created",
                "idempotency_key": exc.idempotency_key,
                "paths": [],
                "error": {"type": type(exc).__name__, "message": text},
            }
        )
    say(f"error: {type(exc).__name__}: {text}")
    return 1


def _hint_for(handle: TaskHandle, args: argparse.Namespace, target: Target) -> str:
    return collect_hint(
        handle.id,
        args.output,
        emulated=target.emulated,
        billed=not is_loopback(target.session.base_url),
        journal=target.journal,
    )
