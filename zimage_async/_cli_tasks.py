"""``zimage tasks``: the journal's paid creates: list them, collect them, show the spend.

``list`` and ``spend`` only read the journal (no key, no request); ``collect`` waits for
and saves every unfinished task the journal has an id for, through the session's
:meth:`~zimage_async.Session.recover`, so nothing is created again.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ._cli_collect import excerpt, run_collect, when
from ._cli_common import (
    JOURNAL_VARIABLE,
    Interruption,
    echo,
    journal_exists,
    journal_label,
    journal_refused,
    journal_target,
    say,
    shown,
    tasks_command,
)
from ._cli_numbers import finite, seconds, whole_number
from ._exceptions import JournalError
from ._journal import Journal, open_journal
from ._journal_records import JournalRecord

__all__ = ["add_journal_options", "add_tasks_parser", "credits_amount", "run_tasks"]


def credits_amount(text: str) -> float:
    """Parse ``--max-credits``: a finite number of credits >= 0."""
    return finite(text, zero=True, rule="a number of credits >= 0")


def add_journal_options(
    parser: argparse.ArgumentParser, *, optional: bool = True, spend_limit: bool = True
) -> None:
    """Add ``--journal`` to *parser*; :func:`journal_target` reads the options back.

    With *optional*, also ``--no-journal``; with *spend_limit*, ``--max-credits``.
    """
    group = parser.add_mutually_exclusive_group() if optional else parser
    group.add_argument(
        "--journal",
        metavar="PATH|URL",
        help=f"the journal of paid creates: an SQLite file or a postgresql:// URL "
        f"(default: ${JOURNAL_VARIABLE}, else $XDG_STATE_HOME/zimage/journal.sqlite, "
        "~/.local/state/zimage/journal.sqlite without XDG_STATE_HOME)",
    )
    if optional:
        group.add_argument(
            "--no-journal",
            action="store_true",
            help="keep no journal (no --max-credits, and `zimage tasks` cannot see the task)"
            if spend_limit
            else "keep no journal (`zimage tasks` cannot see the task)",
        )
    if spend_limit:
        parser.add_argument(
            "--max-credits",
            type=credits_amount,
            metavar="N",
            help="refuse (exit 3, nothing sent) a create that would take the credits the "
            "journal counts as reserved, uncertain creates included, over N",
        )


def add_tasks_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """Add ``zimage tasks list|collect|spend`` to the command parsers."""
    tasks = commands.add_parser(
        "tasks", help="the journal of paid creates: list the unfinished, collect them, spend"
    )
    sub = tasks.add_subparsers(dest="tasks_command", metavar="SUBCOMMAND", required=True)
    listing = sub.add_parser("list", help="list the unfinished creates of the journal")
    add_journal_options(listing, optional=False, spend_limit=False)
    listing.add_argument(
        "--all",
        action="store_true",
        help="also the finished ones (saved, failed, rejected, expired)",
    )
    listing.add_argument("--json", action="store_true", help="print the records as JSON")
    collect = sub.add_parser(
        "collect",
        parents=[common],
        help="wait for every unfinished task of the journal and save its images",
    )
    collect.add_argument(
        "-o", "--output-dir", required=True, type=Path, metavar="DIR", help="where images go"
    )
    add_journal_options(collect, optional=False, spend_limit=False)
    collect.add_argument(
        "--resubmit-uncertain",
        action="store_true",
        help="send again the creates that may have made a task whose id is unknown, with "
        "their original idempotency key (a gateway that ignores keys bills them again; "
        "one imported from an earlier version's manifest, sent then without a key, goes "
        "under a new one)",
    )
    collect.add_argument(
        "--timeout",
        type=seconds,
        metavar="SECONDS",
        help="how long to wait for each task (default 600); it goes on running after",
    )
    collect.add_argument(
        "--concurrency", type=whole_number, default=8, metavar="N", help="tasks at once (default 8)"
    )
    collect.add_argument(
        "--json", action="store_true", help="print one JSON object per task, then a summary"
    )
    spend = sub.add_parser("spend", help="show the credits the journal counts as reserved")
    add_journal_options(spend, optional=False, spend_limit=False)
    spend.add_argument("--json", action="store_true", help="print the figures as JSON")


async def run_tasks(args: argparse.Namespace, interruption: Interruption) -> int:
    """Run ``zimage tasks SUBCOMMAND``."""
    if args.tasks_command == "collect":
        return await run_collect(args, interruption)
    journal = journal_target(args, emulated=False)
    assert journal is not None
    if args.tasks_command == "list":
        return await _list(args, journal)
    return await _spend(args, journal)


def _print(record: dict[str, Any]) -> None:
    print(json.dumps(record, ensure_ascii=False), flush=True)


def _prompt(record: JournalRecord) -> str:
    return record.request().prompt


@contextlib.asynccontextmanager
async def _reading(journal: str, args: argparse.Namespace) -> AsyncIterator[Journal | None]:
    """Open the journal to read it; None when its file does not exist (nothing recorded)."""
    if not journal_exists(journal):
        say(f"no journal at {shown(journal_label(journal))} yet: nothing was recorded there")
        yield None
        return
    try:
        store = await open_journal(journal)
    except JournalError as exc:
        raise journal_refused(exc, journal, args) from None
    async with store:
        yield store


class _Prices:
    """The cost of each record: its own, else the last price of its model and size."""

    def __init__(self, store: Journal) -> None:
        self._store = store
        self._seen: dict[tuple[str, str | None], float | None] = {}

    async def cost(self, record: JournalRecord) -> float | None:
        if not record.state.counts_as_spent:
            return 0.0
        if record.cost is not None:
            return record.cost
        key = (record.model, record.size)
        if key not in self._seen:
            self._seen[key] = await self._store.last_price(record.model, record.size)
        return self._seen[key]


def _row(record: JournalRecord, credits: float | None) -> dict[str, Any]:
    return {
        "key": record.key,
        "state": record.state.value,
        "task_id": record.task_id,
        "prompt": _prompt(record),
        "created_at": when(record.created_at),
        "credits": credits,
        "batch_id": record.batch_id,
        "item_index": record.item_index,
        "base_url": record.base_url,
        "error": record.error_code,
    }


async def _list(args: argparse.Namespace, journal: str) -> int:
    rows = []
    async with _reading(journal, args) as store:
        if store is not None:
            records = await (store.records() if args.all else store.unfinished())
            prices = _Prices(store)
            rows = [_row(record, await prices.cost(record)) for record in records]
    if args.json:
        _print({"journal": journal_label(journal), "records": rows})
        return 0
    if rows:
        print(f"{'CREATED (UTC)':<21} {'STATE':<11} {'TASK':<34} {'CREDITS':>7}  KEY  PROMPT")
    for row in rows:
        credits = "?" if row["credits"] is None else f"{row['credits']:g}"
        echo(
            f"{row['created_at'] or '-':<21} {shown(row['state']):<11} "
            f"{shown(row['task_id'] or '-'):<34} {credits:>7}  {shown(row['key'])}  "
            f"{shown(excerpt(row['prompt']))}"
        )
    what = "create(s)" if args.all else "unfinished create(s)"
    say(f"{len(rows)} {what} in the journal {shown(journal_label(journal))}")
    if rows and not args.all:
        say(f"collect them with: {tasks_command(journal, 'collect', '-o', 'DIR')}")
    return 0


async def _spend(args: argparse.Namespace, journal: str) -> int:
    figures: dict[str, Any] = {"credits": 0.0, "creates": 0, "uncertain": 0, "unpriced": 0}
    by_state: dict[str, list[float]] = {}
    by_batch: dict[str | None, list[float]] = {}
    async with _reading(journal, args) as store:
        if store is not None:
            spend = await store.spent()
            figures = {
                "credits": spend.credits,
                "creates": spend.creates,
                "uncertain": spend.uncertain,
                "unpriced": spend.unpriced,
            }
            prices = _Prices(store)
            for record in await store.records():
                if not record.state.counts_as_spent:
                    continue
                cost = await prices.cost(record) or 0.0
                for group in (
                    by_state.setdefault(record.state.value, [0, 0.0]),
                    by_batch.setdefault(record.batch_id, [0, 0.0]),
                ):
                    group[0] += 1
                    group[1] += cost
    if args.json:
        _print(
            {"journal": journal_label(journal)}
            | figures
            | {
                "by_state": [
                    {"state": s, "creates": int(n), "credits": c} for s, (n, c) in by_state.items()
                ],
                "by_batch": [
                    {"batch_id": b, "creates": int(n), "credits": c}
                    for b, (n, c) in by_batch.items()
                ],
            }
        )
        return 0
    echo(
        f"reserved: {figures['credits']:g} credit(s) by {figures['creates']} create(s) "
        f"({figures['uncertain']} uncertain, {figures['unpriced']} of unknown cost) in "
        f"the journal {shown(journal_label(journal))}"
    )
    for title, groups in (("state", by_state), ("batch", by_batch)):
        if groups:
            echo(f"by {title}:")
        for name, (count, credits) in groups.items():
            label = "(single creates)" if name is None else shown(name)
            echo(f"  {label:<24} {int(count):>5} create(s) {credits:>10g} credit(s)")
    return 0
