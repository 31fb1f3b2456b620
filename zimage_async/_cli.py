"""The ``zimage`` command line: its parser and entry point; one module per command.

Without ``ZIMAGE_API_KEY`` (or with ``--emulator``) every command runs against an
emulator started in this process, and says so on stderr. Exit status: 0 when all went
well, 1 when some item or task failed, 2 for a usage error (nothing sent), 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import sys
from collections.abc import Sequence
from pathlib import Path

try:  # Ctrl-C while the command loads: its status, without a traceback
    from ._cli_batch import MANIFEST_NAME, run_batch
    from ._cli_common import (
        EMULATOR_TASK_DURATION,
        MAX_INFO_BYTES,
        PROG,
        SPEND_LIMIT_EXIT,
        Interruption,
        ServiceError,
        UsageError,
        journal_label,
        say,
        shown,
    )
    from ._cli_generate import add_save_options, run_generate
    from ._cli_logging import logging_to_stderr
    from ._cli_numbers import create_cost, finite, number, port_number, seconds, whole_number
    from ._cli_output import StdoutError, drop_stdout, guarded_stdout, print_json
    from ._cli_signals import (
        HANGUP,
        exiting_now,
        hung_up,
        install,
        show_cursor,
        still_stopping,
        uninstall,
    )
    from ._cli_streams import null_for_closed_streams
    from ._cli_task import run_task
    from ._cli_tasks import add_journal_options, add_tasks_parser, credits_amount, run_tasks
    from ._cli_words import cli_words, spend_limit_text
    from ._exceptions import SpendLimitError, ZImageError
    from ._naming import BATCH_NAME
    from ._version import __version__
except KeyboardInterrupt:
    raise SystemExit(130) from None

__all__ = ["build_parser", "main"]

# -- the parser ---------------------------------------------------------------------------


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log to stderr: -v each retry, -vv each request (the key is never logged)",
    )
    common.add_argument(
        "--emulator",
        action="store_true",
        help="run against an emulator started in this process, even if ZIMAGE_API_KEY is set",
    )
    # For tests and demos: how long the in-process emulator's tasks take.
    common.add_argument(
        "--emulator-task-duration",
        type=functools.partial(finite, zero=True, rule="a finite number of seconds >= 0"),
        default=EMULATOR_TASK_DURATION,
        metavar="SECONDS",
        help=argparse.SUPPRESS,
    )
    return common


def _request_options(parser: argparse.ArgumentParser, *, batch: bool) -> None:
    scope = " (for items that set none)" if batch else ""
    parser.add_argument("--size", help=f"aspect ratio such as 16:9, or WIDTHxHEIGHT{scope}")
    if not batch:
        parser.add_argument("--seed", type=whole_number, help="1..2147483647; omitted: random")
    parser.add_argument(
        "--nsfw-check",
        action="store_true",
        default=None,
        help=f"ask for the stricter NSFW check{scope}",
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``zimage`` command."""
    common = _common()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Generate images with the Z-Image Turbo API. Uses ZIMAGE_API_KEY (and "
            "ZIMAGE_BASE_URL); without a key, runs against a built-in emulator."
        ),
        epilog="exit status: 0 all saved, 1 some item or task failed, 2 usage error "
        "(nothing submitted), 3 over the spend limit (nothing submitted), 130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        dest="verbose_before",
        action="count",
        default=0,
        help="as -v after the command",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    generate = commands.add_parser(
        "generate", parents=[common], help="generate one image and save it"
    )
    generate.add_argument("prompt", metavar="PROMPT", help="what to draw (at most 2000 characters)")
    _request_options(generate, batch=False)
    generate.add_argument(
        "-o",
        "--output",
        default=".",
        metavar="PATH",
        help="a directory (default: .) or a file name ending in .png/.jpg/.jpeg/.webp",
    )
    generate.add_argument(
        "--json", action="store_true", help="print the task id, status and paths as JSON"
    )
    add_save_options(generate)
    generate.add_argument(
        "--timeout",
        type=seconds,
        metavar="SECONDS",
        help="how long to wait for the task and its images (default 600); the task goes on "
        "running after, and the message says how to collect it",
    )
    add_journal_options(generate)

    batch = commands.add_parser(
        "batch", parents=[common], help="generate every prompt of a file, concurrently"
    )
    batch.add_argument(
        "file",
        metavar="FILE",
        type=Path,
        help="one prompt per line, or JSONL with request fields per line; blank lines "
        "and lines starting with # are skipped",
    )
    batch.add_argument(
        "-o", "--output-dir", required=True, type=Path, metavar="DIR", help="where images go"
    )
    batch.add_argument(
        "--concurrency",
        type=whole_number,
        default=8,
        metavar="N",
        help="items in flight (default 8)",
    )
    batch.add_argument(
        "--journal",
        metavar="PATH|URL",
        help="where the batch is recorded, to resume it and to share it between workers: a "
        "file, or a postgresql:// URL for workers on several machines (default: "
        f"DIR/zimage-journal.sqlite, or DIR/{MANIFEST_NAME} of an earlier version)",
    )
    batch.add_argument(
        "--manifest", metavar="PATH", help="the earlier name of --journal (a file path)"
    )
    batch.add_argument(
        "--batch-id",
        metavar="NAME",
        help="the batch's name in the journal; workers of one batch use the same "
        "(default: the file's name)",
    )
    batch.add_argument(
        "--max-credits",
        type=credits_amount,
        metavar="N",
        help="stop sending creates once the batch has reserved N credits, counted in the "
        "journal by all its workers together; sent items still finish",
    )
    batch.add_argument(
        "--cost",
        type=create_cost,
        metavar="CREDITS",
        help="the expected credits of one create, counted against --max-credits until the "
        "journal has seen a price for that model and size",
    )
    batch.add_argument(
        "--worker-id",
        metavar="ID",
        help="this worker's name in the journal's leases (default: host:pid:random)",
    )
    batch.add_argument(
        "--lease",
        type=number,
        default=60.0,
        metavar="SECONDS",
        help="how long a claimed item stays this worker's without renewal; a dead "
        "worker's items are taken over after it (default 60)",
    )
    batch.add_argument(
        "--json", action="store_true", help="print one JSON object per item, then a summary"
    )
    batch.add_argument(
        "--contact-sheet",
        type=Path,
        metavar="FILE",
        help="also write a grid of thumbnails (.png, .jpg or .webp); needs Pillow",
    )
    batch.add_argument(
        "--resubmit-uncertain",
        action="store_true",
        help="submit again items whose earlier create call may have made a task whose id "
        "is unknown, with their original idempotency key (check your usage first: a "
        "gateway that ignores keys bills them again; an item of an earlier version's "
        "manifest, sent then without a key, goes under a new one)",
    )
    batch.add_argument(
        "--resubmit-failed",
        action="store_true",
        help="submit again items whose task failed in an earlier run (a new key; billed again)",
    )
    batch.add_argument(
        "--resubmit-expired",
        action="store_true",
        help="submit again items whose images were never saved (or were deleted) and whose "
        "links have expired (a new key; billed again)",
    )
    batch.add_argument(
        "--name",
        metavar="TEMPLATE",
        default=BATCH_NAME,
        help="file names in -o DIR (fields: number = the line number, slug, seed, task_id, "
        "index); default: '{number:04d}-{slug}-{index}'",
    )
    _request_options(batch, batch=True)

    task = commands.add_parser(
        "task", parents=[common], help="show a task; --wait for it; -o to download it"
    )
    task.add_argument("task_id", metavar="ID", help="a task id such as task-unified-...")
    task.add_argument("--wait", action="store_true", help="poll until the task has finished")
    task.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="wait, then save the images to this directory or file name",
    )
    task.add_argument("--json", action="store_true", help="print the task as JSON")
    add_journal_options(task, spend_limit=False)

    add_tasks_parser(commands, common)

    info = commands.add_parser("info", help="show the generation metadata an image file carries")
    file = f"a PNG, JPEG or WebP image: a regular file of at most {MAX_INFO_BYTES >> 20} MiB"
    info.add_argument("image", metavar="FILE", type=Path, help=file)
    info.add_argument("--json", action="store_true", help="print the fields as a JSON object")

    emulator = commands.add_parser(
        "emulator",
        help="run the emulator in the foreground (other options: python -m "
        "zimage_async.emulator --help)",
    )
    emulator.add_argument(
        "--port", type=port_number, default=8000, help="API port, 0 to 65535 (default 8000)"
    )
    return parser


# -- entry point --------------------------------------------------------------------------


async def _run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    assert me is not None
    flag = {"interrupted": False}
    interruption = Interruption()
    signals = 0

    def interrupt(signum: int) -> None:
        # The first signal stops the command in order (the batch gives its items back).
        # `timeout` sends its signal twice (to the command and to its process group), and
        # Ctrl-C is often pressed twice: the second must not cut that stop short. A third
        # exits at once.
        nonlocal signals
        signals += 1
        flag["interrupted"] = True
        if signum == HANGUP:
            hung_up()
        if signals == 1:
            me.cancel()
        elif signals == 2:
            say(still_stopping(args))
        else:
            say(exiting_now(args, argv, interruption))
            show_cursor()
            os._exit(130)

    installed = install(loop, interrupt)
    try:
        if args.command == "generate":
            return await run_generate(args, interruption)
        if args.command == "task":
            return await run_task(args)
        if args.command == "tasks":
            return await run_tasks(args, interruption)
        return await run_batch(args, lambda: flag["interrupted"], argv)
    except asyncio.CancelledError:
        if not flag["interrupted"]:
            raise
        say("interrupted" if interruption.hint is None else f"interrupted: {interruption.hint}")
        if interruption.record is not None:
            try:
                print_json(interruption.record())
            except (StdoutError, BrokenPipeError):  # its id is in the message just said
                drop_stdout()
        return 130
    except StdoutError as exc:
        exc.hint = interruption.hint
        raise
    finally:  # after a first signal, the rest of the stop stays guarded
        uninstall(loop, installed, interrupt if flag["interrupted"] else None)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``zimage`` command line; return the exit status."""
    try:
        return _main(argv)
    except KeyboardInterrupt:  # before the command's own handling (or after it): quietly
        return 130


def _main(argv: Sequence[str] | None) -> int:
    null_for_closed_streams()
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(arguments)
    if args.command == "emulator":
        from .emulator import main as emulator_main

        return emulator_main(["--port", str(args.port), *extra])
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(shown(journal_label(a)) for a in extra)}")
    args.verbose = getattr(args, "verbose", 0) + args.verbose_before
    with guarded_stdout(), logging_to_stderr(args.verbose):
        return _outcome(args, arguments)


def _outcome(args: argparse.Namespace, arguments: list[str]) -> int:
    """Run the command; say what ended it, if it did not end well; return the exit status."""
    try:
        if args.command == "info":
            from ._cli_info import run_info

            return run_info(args)
        return asyncio.run(_run(args, arguments))
    except BrokenPipeError:  # stdout's reader went away (`| head -1`): stop quietly
        drop_stdout()  # the exit's flush must not fail again
        return 1
    except StdoutError as exc:  # a full disk, an I/O error: the results are lost, say so
        drop_stdout()
        hint = "" if exc.hint is None else f"; {exc.hint}"
        say(f"error: cannot write to stdout: {exc.reason}{hint}")
        return 1
    except UsageError as exc:
        say(f"error: {exc}")
        return 2
    except ServiceError as exc:
        say(f"error: {exc}")
        return 1
    except SpendLimitError as exc:
        say(f"over the spend limit: {spend_limit_text(exc)}")
        return SPEND_LIMIT_EXIT
    except ZImageError as exc:
        say(f"error: {type(exc).__name__}: {shown(cli_words(str(exc)))}")
        return 1
    except KeyboardInterrupt:
        return 130
