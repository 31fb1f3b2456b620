"""The ``zimage`` command line: generate, batch, task and emulator.

Without ``ZIMAGE_API_KEY`` (or with ``--emulator``) every command runs against an
emulator started in this process, and says so on stderr. Exit status: 0 when all went
well, 1 when some item or task failed, 2 for a usage error (nothing was submitted),
130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import IO, Any

from ._batch import Batch, BatchItem, ItemState
from ._batchfile import BatchFileError, BatchLine, read_batch_file
from ._exceptions import InvalidRequestError, ManifestError, ZImageError
from ._manifest import Manifest
from ._models import GenerationRequest, Task, TaskStatus
from ._session import Session
from ._validation import validate_task_id
from ._version import __version__

__all__ = ["build_parser", "main"]

PROG = "zimage"
#: The manifest's file name inside the output directory, unless --manifest says otherwise.
MANIFEST_NAME = "zimage-manifest.sqlite"
#: Task duration of the in-process emulator, in seconds.
EMULATOR_TASK_DURATION = 2.0
#: How to get the optional dependencies, from a clone (the package is not on the index yet).
_CLI_EXTRA = (
    'pip install ".[cli]" in a clone of the repository; '
    'pip install "zimage-async[cli]" once it is published'
)


class UsageError(Exception):
    """A problem with the command line or its inputs; nothing was submitted."""


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
        type=float,
        default=EMULATOR_TASK_DURATION,
        metavar="SECONDS",
        help=argparse.SUPPRESS,
    )
    return common


def _request_options(parser: argparse.ArgumentParser, *, batch: bool) -> None:
    scope = " (for items that set none)" if batch else ""
    parser.add_argument("--size", help=f"aspect ratio such as 16:9, or WIDTHxHEIGHT{scope}")
    if not batch:
        parser.add_argument("--seed", type=int, help="1..2147483647; omitted: random")
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
        "(nothing submitted), 130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
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
        help="a directory (default: .) or a file name ending in .png/.jpg/.webp",
    )

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
        "--concurrency", type=int, default=8, metavar="N", help="items in flight (default 8)"
    )
    batch.add_argument(
        "--manifest",
        type=Path,
        metavar="PATH",
        help=f"the resumable record of the batch (default: DIR/{MANIFEST_NAME})",
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
        "gateway that ignores keys bills them again)",
    )
    batch.add_argument(
        "--resubmit-failed",
        action="store_true",
        help="submit again items whose task failed in an earlier run (billed again)",
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

    emulator = commands.add_parser(
        "emulator",
        help="run the emulator in the foreground (other options: python -m "
        "zimage_async.emulator --help)",
    )
    emulator.add_argument("--port", type=int, default=8000, help="API port (default 8000)")
    return parser


# -- shared helpers -----------------------------------------------------------------------


def _say(text: str) -> None:
    print(f"{PROG}: {text}", file=sys.stderr, flush=True)


@contextlib.asynccontextmanager
async def _session(args: argparse.Namespace) -> AsyncIterator[tuple[Session, bool]]:
    """Open a Session on the real API, or on an in-process emulator; yield (session, emulated)."""
    if args.emulator or not os.environ.get("ZIMAGE_API_KEY", "").strip():
        from .emulator import Emulator

        why = "--emulator given" if args.emulator else "no ZIMAGE_API_KEY set"
        async with Emulator(task_duration=args.emulator_task_duration) as emu:
            _say(
                f"{why}: using an in-process emulator at {emu.base_url} (placeholder "
                "images, nothing billed); set ZIMAGE_API_KEY to use the real service"
            )
            async with Session(api_key=emu.api_key, base_url=emu.base_url) as zs:
                yield zs, True
        return
    async with Session() as zs:
        _say(f"using the Z-Image API at {zs.base_url} (each new task is billed)")
        yield zs, False


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


# -- generate and task --------------------------------------------------------------------


async def _generate(args: argparse.Namespace) -> int:
    request = _request(args)
    async with _session(args) as (zs, _):
        handle = await zs.submit(request)
        _say(f"created task {handle.id}; waiting")
        for path in await handle.save(args.output):
            print(path, flush=True)
    return 0


async def _task(args: argparse.Namespace) -> int:
    try:
        task_id = validate_task_id(args.task_id)
    except InvalidRequestError as exc:
        raise UsageError(str(exc)) from None
    async with _session(args) as (zs, _):
        handle = zs.task(task_id)
        if args.output is not None:
            for path in await handle.save(args.output):
                print(path, flush=True)
            return 0
        if args.wait:
            with contextlib.suppress(ZImageError):
                await handle.wait()
            task = handle.task
            assert task is not None
        else:
            task = await handle.refresh()
        print(_describe(task), flush=True)
        if task.error is not None:
            return 1
        # Waited, yet not delivered: still running at the deadline, or no image link.
        delivered = task.status is TaskStatus.COMPLETED and bool(task.results)
        return 1 if args.wait and not delivered else 0


# -- batch --------------------------------------------------------------------------------


def _check_writable(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise UsageError(
            f"cannot write to the output directory {directory}: {exc.strerror or exc}"
        ) from None


def _check_contact_sheet(path: Path | None) -> None:
    if path is None:
        return
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise UsageError(f"--contact-sheet {path}: the name must end in .png, .jpg or .webp")
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise UsageError(f"--contact-sheet needs Pillow: {_CLI_EXTRA}") from None
    _check_writable(path.parent)


class _Reporter:
    """Shows a batch's progress: rich on a terminal, plain lines otherwise, or JSON."""

    def __init__(self, lines: Sequence[BatchLine], *, mode: str, out: IO[str]) -> None:
        self.lines = lines
        self.mode = mode
        self.out = out
        self.saved = 0
        self.failed = 0
        self.resumed = 0
        self._live: Any = None
        self._batch: Batch | None = None

    def start(self, batch: Batch) -> None:
        self._batch = batch
        if self.mode != "rich":
            return
        from rich.console import Console
        from rich.live import Live

        self._live = Live(self, console=Console(file=self.out), refresh_per_second=8)
        self._live.start()

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        assert self._batch is not None
        progress = self._batch.progress
        done = progress.count(ItemState.DONE) + progress.count(ItemState.FAILED)
        eta = "-"
        if 0 < progress.finished < progress.total:
            left = progress.elapsed / progress.finished * (progress.total - progress.finished)
            eta = f"{left:.0f} s"
        states = "  ".join(
            f"{state.value} {progress.count(state)}"
            for state in (
                ItemState.QUEUED,
                ItemState.SUBMITTING,
                ItemState.PENDING,
                ItemState.PROCESSING,
                ItemState.DOWNLOADING,
            )
        )
        failed = f"[red]failed {self.failed}[/]" if self.failed else "failed 0"
        summary = Text.from_markup(
            f" {done}/{progress.total}  [green]saved {self.saved}[/]  {failed}  ETA {eta}"
        )
        bar = Table.grid()
        bar.add_row(ProgressBar(total=progress.total, completed=done, width=30), summary)
        return Group(bar, Text(states, style="dim"))

    def item(self, item: BatchItem) -> None:
        line = self.lines[item.index].line
        self.resumed += item.resumed
        if item.ok:
            self.saved += 1
        else:
            self.failed += 1
        if self.mode == "json":
            record = {
                "event": "item",
                "index": item.index,
                "line": line,
                "prompt": item.request.prompt,
                "status": "saved" if item.ok else "failed",
                "task_id": item.task_id,
                "paths": [str(p) for p in item.paths],
                "resumed": item.resumed,
                "error": None
                if item.error is None
                else {"type": type(item.error).__name__, "message": str(item.error)},
            }
            print(json.dumps(record, ensure_ascii=False), file=self.out, flush=True)
            return
        total = len(self.lines)
        count = f"[{self.saved + self.failed}/{total}]"
        again = " (resumed)" if item.resumed else ""
        if item.ok:
            text = f"{count} saved line {line}{again}: {', '.join(map(str, item.paths))}"
        else:
            error = f"{type(item.error).__name__}: {item.error}"
            text = f"{count} FAILED line {line}{again} (task {item.task_id or '-'}): {error}"
        if self._live is not None:
            self._live.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.out, flush=True)


def _output_mode(args: argparse.Namespace, out: IO[str]) -> str:
    if args.json:
        return "json"
    if not out.isatty():
        return "plain"
    try:
        import rich  # noqa: F401
    except ImportError:
        _say(f"plain progress lines: install rich for a live display ({_CLI_EXTRA})")
        return "plain"
    return "rich"


async def _batch(
    args: argparse.Namespace, interrupted: Callable[[], bool], argv: Sequence[str]
) -> int:
    defaults: dict[str, object] = {}
    if args.size is not None:
        defaults["size"] = args.size
    if args.nsfw_check is not None:
        defaults["nsfw_check"] = args.nsfw_check
    if args.concurrency < 1:
        raise UsageError(f"--concurrency must be 1 or more, not {args.concurrency}")
    try:
        lines = read_batch_file(args.file, defaults=defaults)
    except BatchFileError as exc:
        raise UsageError(str(exc)) from None
    out_dir: Path = args.output_dir
    _check_writable(out_dir)
    _check_contact_sheet(args.contact_sheet)
    manifest = args.manifest if args.manifest is not None else out_dir / MANIFEST_NAME
    batch_id = str(args.file.resolve())
    requests = [entry.request for entry in lines]
    reporter = _Reporter(lines, mode=_output_mode(args, sys.stdout), out=sys.stdout)
    started = time.monotonic()
    paths: dict[int, tuple[Path, ...]] = {}
    if manifest.exists():  # a manifest of another batch is refused before anything starts
        _precheck(manifest, batch_id, requests)
    async with _session(args) as (zs, emulated):
        if emulated and manifest.exists():
            _forget_emulated(manifest, batch_id, zs.base_url)
        batch = zs.generate_many(
            requests,
            concurrency=args.concurrency,
            output_dir=out_dir,
            manifest=manifest,
            batch_id=batch_id,
            resubmit_uncertain=args.resubmit_uncertain,
            resubmit_failed=args.resubmit_failed,
        )
        try:
            async with batch:
                reporter.start(batch)
                async for item in batch:
                    reporter.item(item)
                    if item.ok:
                        paths[item.index] = item.paths
        except ManifestError as exc:
            raise UsageError(str(exc)) from None
        except asyncio.CancelledError:
            if not interrupted():
                raise
            reporter.stop()
            if reporter.mode == "json":
                summary = _summary(reporter, len(lines), out_dir, manifest, None, started)
                print(json.dumps(summary | {"interrupted": True}), flush=True)
            _say(_interrupted_message(reporter, manifest, argv, emulated=emulated))
            return 130
        finally:
            reporter.stop()
    sheet = None
    if args.contact_sheet is not None:
        sheet = _contact_sheet([p for i in sorted(paths) for p in paths[i]], args.contact_sheet)
    summary = _summary(reporter, len(lines), out_dir, manifest, sheet, started)
    if reporter.mode == "json":
        print(json.dumps(summary | {"interrupted": False}), flush=True)
    else:
        text = (
            f"{len(lines)} item(s): {reporter.saved} saved, {reporter.failed} failed"
            f" ({reporter.resumed} from an earlier run) in {summary['elapsed_seconds']} s;"
            f" images in {out_dir}"
        )
        if sheet is not None:
            text += f"; contact sheet {sheet}"
        print(text, flush=True)
    return 0 if reporter.failed == 0 else 1


def _summary(
    reporter: _Reporter,
    total: int,
    out_dir: Path,
    manifest: Path,
    sheet: Path | None,
    started: float,
) -> dict[str, object]:
    return {
        "event": "summary",
        "total": total,
        "saved": reporter.saved,
        "failed": reporter.failed,
        "resumed": reporter.resumed,
        "output_dir": str(out_dir),
        "manifest": str(manifest),
        "contact_sheet": None if sheet is None else str(sheet),
        "elapsed_seconds": round(time.monotonic() - started, 3),
    }


def _precheck(manifest: Path, batch_id: str, requests: list[GenerationRequest]) -> None:
    try:
        opened = Manifest.open(manifest, batch_id=batch_id)
        try:
            opened.check(requests, base_url=None)
        finally:
            opened.close()
    except ManifestError as exc:
        raise UsageError(str(exc)) from None


def _forget_emulated(manifest: Path, batch_id: str, base_url: str) -> None:
    """Drop tasks of an earlier in-process emulator: they ended with its process."""
    try:
        opened = Manifest.open(manifest, batch_id=batch_id)
    except ManifestError as exc:
        raise UsageError(str(exc)) from None
    try:
        dropped = opened.forget_unfinished(base_url=base_url)
    finally:
        opened.close()
    if dropped:
        _say(
            f"{dropped} unfinished item(s) of an earlier emulator run will be generated "
            "again (an in-process emulator's tasks end with its process)"
        )


def _contact_sheet(images: list[Path], dest: Path) -> Path | None:
    from ._contact_sheet import make_contact_sheet

    if not images:
        _say("no image was saved, so no contact sheet was written")
        return None
    return make_contact_sheet(images, dest)


def _interrupted_message(
    reporter: _Reporter, manifest: Path, argv: Sequence[str], *, emulated: bool
) -> str:
    text = (
        f"interrupted: {reporter.saved} image(s) saved, {reporter.failed} failed. Every "
        f"task created so far is recorded in {manifest}; "
    )
    if emulated:
        text += (
            "the in-process emulator's tasks ended with it, so the same command "
            "generates the unfinished items again and keeps the saved ones:"
        )
    else:
        text += (
            "they keep running at the service (and are billed). Run the same command "
            "again to resume them without paying twice:"
        )
    return f"{text}\n  {shlex.join([PROG, *argv])}"


# -- entry point --------------------------------------------------------------------------


async def _run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    assert me is not None
    flag = {"interrupted": False}

    def interrupt() -> None:
        flag["interrupted"] = True
        me.cancel()

    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, interrupt)
            installed.append(signum)
    try:
        if args.command == "generate":
            return await _generate(args)
        if args.command == "task":
            return await _task(args)
        return await _batch(args, lambda: flag["interrupted"], argv)
    except asyncio.CancelledError:
        if not flag["interrupted"]:
            raise
        _say("interrupted")
        return 130
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``zimage`` command line; return the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(arguments)
    if args.command == "emulator":
        from .emulator import main as emulator_main

        return emulator_main(["--port", str(args.port), *extra])
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("zimage: %(levelname)s %(message)s"))
        logger = logging.getLogger("zimage_async")
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG if args.verbose > 1 else logging.INFO)
    try:
        return asyncio.run(_run(args, arguments))
    except UsageError as exc:
        _say(f"error: {exc}")
        return 2
    except ZImageError as exc:
        _say(f"error: {type(exc).__name__}: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
