"""The display of ``zimage batch``: a live rich view on a terminal, plain lines, or JSON.

Also what it leaves at its end: a contact sheet, the summary (a record with ``--json``),
or how to resume.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from ._batch import Batch, BatchItem, ItemState
from ._batchfile import BatchLine
from ._cli_common import (
    CLI_EXTRA,
    UsageError,
    check_writable,
    printable_command,
    say,
    service_problem,
    shown,
)
from ._cli_words import batch_words
from ._exceptions import (
    APIConnectionError,
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    SubmissionUncertainError,
    ZImageError,
)

__all__ = [
    "Reporter",
    "ThisRun",
    "check_contact_sheet",
    "contact_sheet",
    "interrupted_message",
    "output_mode",
    "summary",
    "summary_text",
]


class Reporter:
    """Shows a batch's progress: rich on a terminal, plain lines otherwise, or JSON."""

    def __init__(
        self, lines: Sequence[BatchLine], *, mode: str, out: IO[str], out_dir: Path
    ) -> None:
        self.lines = lines
        self.mode = mode
        self.out = out
        self.out_dir = out_dir
        self._folder = os.path.realpath(out_dir)
        self.saved = 0
        self.failed = 0
        self.not_sent = 0
        self.interrupted = 0  # in flight at Ctrl-C: a task running, or a create on its way
        self.resumed = 0
        #: The items reported so far, by index.
        self.reported: set[int] = set()
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
        shared = (
            f"  batch {progress.batch_settled}/{progress.total}"
            if progress.batch_settled > done
            else ""
        )
        summary = Text.from_markup(
            f" {done}/{progress.total}  [green]saved {self.saved}[/]  {failed}  ETA {eta}{shared}"
        )
        bar = Table.grid()
        bar.add_row(ProgressBar(total=progress.total, completed=done, width=30), summary)
        return Group(bar, Text(states, style="dim"))

    def path(self, path: Path) -> str:
        """Return *path* as shown: under the output folder as given, as this run's are.

        The journal holds the absolute paths an earlier run saved.
        """
        if path.is_absolute() and os.path.realpath(path.parent) == self._folder:
            return str(self.out_dir / path.name)
        return str(path)

    def count(self, status: str) -> None:
        """Count an item reported with *status*."""
        if status == "saved":
            self.saved += 1
        elif status == "failed":
            self.failed += 1
        elif status == "not_sent":
            self.not_sent += 1
        elif status in ("interrupted", "uncertain"):
            self.interrupted += 1

    def item(self, item: BatchItem) -> None:
        line = self.lines[item.index].line
        self.resumed += item.resumed
        self.reported.add(item.index)
        status = "saved" if item.ok else "failed" if item.sent else "not_sent"
        self.count(status)
        paths = [self.path(p) for p in item.paths]
        if self.mode == "json":
            record = {
                "event": "item",
                "index": item.index,
                "line": line,
                "prompt": item.request.prompt,
                "status": status,
                "task_id": item.task_id,
                "paths": paths,
                "resumed": item.resumed,
                "error": None
                if item.error is None
                else {"type": type(item.error).__name__, "message": batch_words(str(item.error))},
            }
            self.print(record)
            return
        total = len(self.lines)
        count = f"[{self.saved + self.failed + self.not_sent}/{total}]"
        again = " (resumed)" if item.resumed else ""
        if item.ok:
            text = f"{count} saved line {line}{again}: {', '.join(paths)}"
        else:
            error = f"{type(item.error).__name__}: {shown(batch_words(str(item.error)))}"
            verdict = "FAILED" if item.sent else "NOT SENT"
            text = f"{count} {verdict} line {line}{again} (task {item.task_id or '-'}): {error}"
        text = shown(text)
        if self._live is not None:
            self._live.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.out, flush=True)

    def print(self, record: dict[str, object]) -> None:
        """Print one ``--json`` record."""
        print(json.dumps(record, ensure_ascii=False), file=self.out, flush=True)


# -- the batch's end: its contact sheet, its summary -----------------------------------


async def check_contact_sheet(
    path: Path | None, args: argparse.Namespace, journal: str | Path, saved: Sequence[Path]
) -> None:
    """Refuse a sheet that cannot be written or would replace a file the batch needs."""
    if path is None:
        return
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp"):
        raise UsageError(f"--contact-sheet {shown(path)}: the name must end in .png, .jpg or .webp")
    from ._contact_sheet import sheet_clash

    keep = [("the prompt file", args.file)]
    if isinstance(journal, Path):
        keep.append(("the journal", journal))
    clash = sheet_clash(path, keep=keep, folder=args.output_dir, template=args.name)
    if clash is None:
        kept = [("an image the journal records as saved", p) for p in saved]
        clash = sheet_clash(path, keep=kept, folder=args.output_dir, template=args.name)
    if clash is not None:
        raise UsageError(f"--contact-sheet {shown(path)}: {shown(clash)}; name another file")
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise UsageError(f"--contact-sheet needs Pillow: {CLI_EXTRA}") from None
    check_writable(path.parent, option=f"--contact-sheet {shown(path)}: ")


def contact_sheet(images: list[Path], dest: Path, stop: threading.Event) -> Path | None:
    """Draw the sheet of *images* at *dest*; say why not if it cannot (the batch is done)."""
    from ._contact_sheet import make_contact_sheet

    if not images:
        say("no image was saved, so no contact sheet was written")
        return None
    if dest.resolve() in {image.resolve() for image in images}:
        say(f"no contact sheet was written: {shown(dest)} is one of the saved images")
        return None

    def left_out(path: Path, why: str) -> None:
        say(f"the contact sheet leaves out {shown(path)}: {shown(why)}")

    try:  # the images are saved and paid for: the sheet is never worth the summary
        return make_contact_sheet(images, dest, on_skip=left_out, stop=stop)
    except (OSError, ValueError) as exc:
        say(f"no contact sheet was written: {shown(exc)}")
        return None


def output_mode(args: argparse.Namespace, out: IO[str]) -> str:
    if args.json:
        return "json"
    if not out.isatty():
        return "plain"
    try:
        import rich  # noqa: F401
    except ImportError:
        say(f"plain progress lines: install rich for a live display ({CLI_EXTRA})")
        return "plain"
    return "rich"


class ThisRun:
    """The outcomes of the items this run settled (not those reported from the journal)."""

    def __init__(self) -> None:
        self.seen = 0
        self.saved = 0
        self.failures: list[ZImageError] = []
        self.uncertain = 0  # items whose create may have made a task (reported ones too)

    def add(self, item: BatchItem, batch: Batch) -> None:
        self.seen += 1
        self.uncertain += isinstance(item.error, SubmissionUncertainError)
        if self.seen <= batch.stats.reported:  # a batch yields those settled earlier first
            return
        if item.ok:
            self.saved += 1
        elif item.error is not None:
            self.failures.append(item.error)

    def configuration_problem(self, base_url: str) -> Exception | None:
        """Return the configuration error every item of this run failed with, if any.

        Only when this run saved nothing and every item it settled failed the same way:
        a key refused (401 or 403), a connection that could not be opened (the request
        never left), or a create answered 404 at a base URL that does not end in
        ``/apiv1``. Then the batch ends as ``zimage generate`` does. Any other failure
        among them (a failed task, a create that may have made a task, a 404 under
        ``/apiv1``) makes them the items' own failures, reported as such.
        """
        failures = self.failures
        if self.saved or not failures:
            return None
        if all(isinstance(e, (AuthenticationError, PermissionDeniedError)) for e in failures):
            return failures[0]
        if all(isinstance(e, APIConnectionError) and not e.request_sent for e in failures):
            return service_problem(failures[0], base_url)
        if all(isinstance(e, NotFoundError) and e.method == "POST" for e in failures):
            return service_problem(failures[0], base_url)
        return None


def summary_text(
    reporter: Reporter,
    batch: Batch,
    summary: dict[str, object],
    out_dir: Path,
    sheet: Path | None,
) -> str:
    total = len(reporter.lines)
    handled = reporter.saved + reporter.failed + reporter.not_sent
    scope = f"{total} item(s)" if handled == total else f"{total} item(s), {handled} here"
    unsent = f", {reporter.not_sent} not sent" if reporter.not_sent else ""
    text = (
        f"{scope}: {reporter.saved} saved, {reporter.failed} failed{unsent}"
        f" ({reporter.resumed} from an earlier run) in {summary['elapsed_seconds']:.1f} s;"
        f" images in {shown(out_dir, None)}"
    )
    if sheet is not None:
        text += f"; contact sheet {shown(sheet, None)}"
    stats = batch.stats
    return (
        f"{text}\nworker {stats.worker_id}: claimed {stats.claimed} ({stats.taken_over} "
        f"taken over), submitted {stats.submitted}, resumed {stats.resumed}, saved "
        f"{stats.saved}, failed {stats.failed}, not sent {stats.not_sent}, reported "
        f"{stats.reported} in {stats.elapsed:.1f} s; journal {shown(summary['journal'], None)}"
    )


def summary(
    reporter: Reporter,
    batch: Batch | None,
    *,
    out_dir: Path,
    journal: str,
    batch_id: str,
    started: float,
    sheet: Path | None = None,
    interrupted: bool = False,
    error: BaseException | None = None,
) -> dict[str, object]:
    """Return the summary record ``--json`` ends with; *batch* None: the batch never began."""
    return {
        "event": "summary",
        "total": len(reporter.lines),
        "saved": reporter.saved,
        "failed": reporter.failed,
        "not_sent": reporter.not_sent,
        "resumed": reporter.resumed,
        "output_dir": str(out_dir),
        "journal": journal,
        "batch_id": batch_id,
        "worker": None if batch is None else batch.stats.to_json(),
        "contact_sheet": None if sheet is None else str(sheet),
        "elapsed_seconds": round(time.monotonic() - started, 3),
        "interrupted": interrupted,
        "error": None
        if error is None
        else {"type": type(error).__name__, "message": batch_words(str(error))},
    }


def interrupted_message(
    reporter: Reporter, journal: str, argv: Sequence[str], *, emulated: bool
) -> str:
    left = "".join(
        f", {count} {what}"
        for count, what in ((reporter.interrupted, "interrupted"), (reporter.not_sent, "not sent"))
        if count
    )
    text = (
        f"interrupted: {reporter.saved} image(s) saved, {reporter.failed} failed{left}. "
        f"Every task created so far is recorded in the journal {journal}; "
    )
    if emulated:
        text += (
            "the in-process emulator's tasks ended with it, so the same command "
            "generates the unfinished items again and keeps the saved ones:"
        )
    else:
        text += (
            "they keep running at the service (and are billed). Run the same command "
            "again to resume them without paying twice (a create cut off while it was "
            "being sent is reported uncertain then: add --resubmit-uncertain to send it "
            "again under its own key):"
        )
    return f"{text}\n  {printable_command(argv)}"
