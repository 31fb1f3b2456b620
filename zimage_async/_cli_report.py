"""The display of ``zimage batch``: a live rich view on a terminal, plain lines, or JSON."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import IO, Any

from ._batch import Batch, BatchItem, ItemState
from ._batchfile import BatchLine
from ._cli_common import CLI_EXTRA, say, service_problem, shown
from ._exceptions import (
    APIConnectionError,
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    SubmissionUncertainError,
    ZImageError,
)

__all__ = ["Reporter", "ThisRun", "output_mode"]


class Reporter:
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
                "status": "saved" if item.ok else "failed" if item.sent else "not_sent",
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
            error = f"{type(item.error).__name__}: {shown(item.error)}"
            verdict = "FAILED" if item.sent else "NOT SENT"
            text = f"{count} {verdict} line {line}{again} (task {item.task_id or '-'}): {error}"
        text = shown(text)
        if self._live is not None:
            self._live.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.out, flush=True)


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
