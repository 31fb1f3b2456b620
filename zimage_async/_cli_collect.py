"""``zimage tasks collect``: wait for the journal's unfinished tasks and save their images.

Everything goes through :meth:`~zimage_async.Session.recover`: tasks with an id are
resumed (nothing is created); creates whose task id is unknown are sent again, with
their own idempotency key, only with ``--resubmit-uncertain``; only records made at the
session's base URL are collected, and completed tasks whose links expired are settled
as ``expired``. This module reports each record's outcome and saves the images.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ._cli_common import (
    Interruption,
    UsageError,
    echo,
    journal_exists,
    journal_label,
    journal_target,
    open_session,
    say,
    shown,
    tasks_command,
    wants_emulator,
)
from ._cli_hints import collectable, error_words, timeout_text
from ._cli_words import cli_words
from ._exceptions import WaitTimeoutError, ZImageError
from ._handle import TaskHandle
from ._idempotency import first_sent_without_key
from ._journal_records import JournalRecord
from ._session import Session

__all__ = ["excerpt", "run_collect", "when"]

#: How many characters of a prompt a listing shows.
EXCERPT = 40


def when(stamp: float | None) -> str | None:
    """Return a Unix time as UTC text, or None."""
    return None if not stamp else time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(stamp))


def excerpt(text: str) -> str:
    """Return the start of *text* on one line, at most EXCERPT characters."""
    line = " ".join(text.split())
    return line if len(line) <= EXCERPT else line[: EXCERPT - 3] + "..."


#: The outcomes of ``zimage tasks collect``, in the order the summary names them.
OUTCOMES = ("saved", "failed", "timeout", "expired", "uncertain", "elsewhere")


class _Collector:
    """Collects the journal's unfinished tasks; prints a line per task and a summary."""

    def __init__(self, args: argparse.Namespace, zs: Session | None, journal: str) -> None:
        self._args = args
        self._zs = zs
        self._journal = journal
        self._gate = asyncio.Semaphore(args.concurrency)
        self.counts = dict.fromkeys(OUTCOMES, 0)
        self.resubmit_uncertain = bool(args.resubmit_uncertain)

    def report(
        self,
        record: JournalRecord,
        outcome: str,
        text: str,
        *,
        task_id: str | None = None,
        paths: list[Path] | None = None,
        error: Exception | None = None,
        said: str = "",
    ) -> None:
        """Print what became of *record*: *text* on a line, or a ``--json`` record.

        The record's error is *error*'s type and *said*, its message in the command's words.
        """
        self.counts[outcome] += 1
        task_id = task_id or record.task_id
        if self._args.json:
            _print(
                {
                    "event": "task",
                    "key": record.key,
                    "task_id": task_id,
                    "status": outcome,
                    "paths": [str(path) for path in paths or []],
                    "error": None
                    if error is None
                    else {"type": type(error).__name__, "message": said},
                }
            )
        else:
            label = "FAILED" if outcome == "failed" else outcome
            echo(f"{label} {shown(task_id or record.key)}: {shown(cli_words(text))}")

    async def save(self, record: JournalRecord, handle: TaskHandle) -> None:
        """Wait for the task of *record* and save its images."""
        options = {} if self._args.timeout is None else {"timeout": self._args.timeout}
        async with self._gate:
            try:
                paths = await handle.save(self._args.output_dir, **options)
            except WaitTimeoutError as exc:
                said = self.said(exc)
                self.report(record, "timeout", said, task_id=handle.id, error=exc, said=said)
            except (ZImageError, OSError, ValueError) as exc:
                # This task's own failure (the service's answer, a file that cannot be
                # written, ...): reported, and the other tasks go on.
                said = self.said(exc)
                text = f"{type(exc).__name__}: {said}"
                self.report(record, "failed", text, task_id=handle.id, error=exc, said=said)
            else:
                text = ", ".join(map(str, paths))
                self.report(record, "saved", text, task_id=handle.id, paths=paths)

    def said(self, exc: Exception) -> str:
        """Say why a task was not saved, in the command's words; and, if it can be, how to.

        A task still running, or billed and not downloaded, stays in the journal: this
        command, run again, saves it. The library's own advice (for Python callers) is
        left out. Not escaped: ``--json`` prints it exactly.
        """
        again = tasks_command(self._journal, "collect", "-o", str(self._args.output_dir))
        saves = "to save its image(s), without creating another task"
        later = f"run `{again}` again later {saves}"
        if isinstance(exc, WaitTimeoutError):
            if exc.stage == "download":
                return f"{timeout_text(exc)}; its image links live 24 hours: {later}"
            return f"{timeout_text(exc)}; it keeps running at the service: {later}"
        if isinstance(exc, OSError):
            return f"{exc}; fix that, then run `{again}` again {saves}"
        if isinstance(exc, ZImageError) and collectable(exc):
            return f"{error_words(exc)}; the task is billed and stays in the journal: {later}"
        return error_words(exc)

    def summary(self) -> int:
        total = sum(self.counts.values())
        if self._args.json:
            _print(
                {"event": "summary", "total": total}
                | self.counts
                | {
                    "journal": journal_label(self._journal),
                    "output_dir": str(self._args.output_dir),
                }
            )
        else:
            parts = [f"{count} {name}" for name, count in self.counts.items() if count]
            echo(f"{total} unfinished task(s): {', '.join(parts) or 'nothing to do'}")
        return 0 if self.counts["saved"] == total else 1


def _plan(
    collector: _Collector,
    before: list[JournalRecord],
    after: dict[str, JournalRecord],
    handles: list[TaskHandle],
    zs: Session,
) -> list[Callable[[], Awaitable[None]]]:
    """Report what was not recovered; return the jobs that save the rest.

    *before* and *after* are the unfinished records before and after ``recover()``, the
    latter by key: a record ``recover()`` settled is no longer in it.
    """
    by_id = {handle.id: handle for handle in handles}
    jobs: list[Callable[[], Awaitable[None]]] = []
    for record in before:
        prompt = excerpt(record.request().prompt)
        now = after.get(record.key)
        task_id = record.task_id or (None if now is None else now.task_id)
        if record.base_url != zs.base_url:
            collector.report(
                record,
                "elsewhere",
                f"made at {record.base_url}, not at {zs.base_url}: collect it with "
                f"ZIMAGE_BASE_URL={record.base_url} (and that service's key)",
            )
        elif task_id is not None and task_id in by_id:
            jobs.append(functools.partial(collector.save, record, by_id[task_id]))
        elif record.task_id is not None:
            collector.report(
                record,
                "expired",
                f"({prompt}) completed at {when(record.completed_at)}; its image links "
                "have expired (they live 24 hours), so its images can no longer be saved",
            )
        elif now is None:
            collector.report(record, "failed", f"({prompt}) sent again, and the service refused it")
        elif collector.resubmit_uncertain and now.updated_at == record.updated_at:
            collector.report(  # left as it was by recover(): in flight, or a batch's
                record,
                "uncertain",
                f"({prompt}) not sent again: begun {when(record.updated_at)}, it may still be "
                "on its way from another session or batch worker; run this again later",
            )
        elif collector.resubmit_uncertain:
            collector.report(
                record, "uncertain", f"sent again, still uncertain: {shown(now.error_message)}"
            )
        else:
            collector.report(
                record,
                "uncertain",
                f"({prompt}) the create may have made a task whose id is unknown; "
                "--resubmit-uncertain sends it again "
                + (
                    "under a new key (its first send, by an earlier version, had none)"
                    if first_sent_without_key(record.key)
                    else "with the same key"
                ),
            )
    return jobs


async def run_collect(args: argparse.Namespace, interruption: Interruption) -> int:
    """Collect every unfinished task of the journal; return the exit status."""
    if wants_emulator(args):
        raise UsageError(
            "zimage tasks collect needs the service that made the tasks, and an in-process "
            "emulator is new and knows no task: set ZIMAGE_API_KEY (and ZIMAGE_BASE_URL "
            "for an emulator started with `zimage emulator`)"
        )
    if args.concurrency < 1:
        raise UsageError(f"--concurrency: at least 1, not {args.concurrency}")
    journal = journal_target(args, emulated=False)
    assert journal is not None
    try:
        args.output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot write to the output directory {shown(args.output_dir)}: "
            f"{exc.strerror or shown(exc)}"
        ) from None
    if not journal_exists(journal):
        say(f"no journal at {shown(journal_label(journal))} yet: nothing to collect")
        return _Collector(args, None, journal).summary()
    interruption.hint = (
        "the tasks keep running; run the same command again to collect the rest "
        "(the images saved so far are recorded)"
    )
    async with open_session(args) as target:
        zs = target.session
        collector = _Collector(args, zs, journal)
        before = await zs.unfinished()
        handles = await zs.recover(resubmit_uncertain=collector.resubmit_uncertain)
        after = {record.key: record for record in await zs.unfinished()}
        jobs = _plan(collector, before, after, handles, zs)
        await asyncio.gather(*(job() for job in jobs))
    interruption.hint = None
    return collector.summary()


def _print(record: dict[str, Any]) -> None:
    print(json.dumps(record, ensure_ascii=False), flush=True)
