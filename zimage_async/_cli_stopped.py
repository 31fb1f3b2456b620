"""What `zimage batch` prints, on Ctrl-C, for the items it had not reported yet.

With ``--json``, every item gets one record saying what became of it. Those this run
had not reported when it was interrupted are read back from the journal once the batch
has given its items back: a create cut off on its way is ``uncertain`` (with its key and
the command that sends it again under that key), a task still running is
``interrupted`` (the same command resumes it, not paying again), an item whose create
was never sent (or was stopped before it left) is ``not_sent``. A journal that cannot
be read within a few seconds leaves them ``interrupted``, with the command that resumes
the batch.

The plain output prints the same, as a line like the other items' lines, for each
item but those never sent: the closing message counts these, which on a long file
could be thousands of lines saying the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from ._cli_common import journal_exists, printable_command, shown
from ._cli_report import Reporter
from ._cli_words import batch_words
from ._deadlines import within
from ._exceptions import JournalError
from ._journal import open_journal
from ._journal_records import JournalItem, JournalState

__all__ = ["report_left"]

#: Seconds the journal may take to say where the items stand.
READ_SECONDS = 5.0
_UNCERTAIN = frozenset({JournalState.SUBMITTING, JournalState.UNCERTAIN})
_RUNNING = frozenset({JournalState.CREATED, JournalState.COMPLETED})


async def _items(journal: str | Path, batch_id: str) -> dict[int, JournalItem] | None:
    """Return the batch's items in the journal by index; None if it cannot be read."""
    if not journal_exists(str(journal)):
        return {}  # stopped before the batch began: nothing was sent

    async def read() -> list[JournalItem]:
        async with await open_journal(journal) as store:
            return await store.items(batch_id)

    try:
        return {item.index: item for item in await within(read(), READ_SECONDS)}
    except (JournalError, asyncio.TimeoutError, TimeoutError):
        return None


async def report_left(
    reporter: Reporter,
    journal: str | Path,
    batch_id: str,
    argv: Sequence[str],
    *,
    emulated: bool,
    where: str,
) -> None:
    """Print a ``--json`` record, or a line, for each item *reporter* has not reported yet."""
    left = [i for i in range(len(reporter.lines)) if i not in reporter.reported]
    if not left:
        return
    unsent = 0  # plain output: counted last, so that the lines' counts follow the lines
    items = await _items(journal, batch_id)
    again = f"`{printable_command(argv)}`"
    resend = argv if "--resubmit-uncertain" in argv else [*argv, "--resubmit-uncertain"]
    for index in left:
        entry = reporter.lines[index]
        item = None if items is None else items.get(index)
        record = None if item is None else item.record
        key: str | None = None
        paths: list[str] = []
        task_id = None if record is None else record.task_id
        error: dict[str, str] | None = {"type": "Interrupted", "message": ""}
        if items is None:
            status = "interrupted"
            message = (
                f"the run was interrupted, and the journal {where} did not say in time "
                f"where this item stands; run the same command again to resume it (saved "
                f"items are kept, nothing is paid twice): {again}"
            )
        elif record is None or record.state is JournalState.REJECTED:
            status = "not_sent"
            message = (
                "the run was interrupted before this item's create was sent, so no task was "
                f"made; run the same command again to send it: {again}"
            )
        elif record.state in _UNCERTAIN:
            status, key = "uncertain", record.key
            billed = "nothing was billed" if emulated else "and billed"
            message = (
                "the run was interrupted while this item's create was on its way: a task "
                f"may have been made ({billed}) whose id is unknown. The journal records "
                f"the create as uncertain, under its idempotency key {key}; this sends it "
                "again with that key (where keys are honoured, that returns the task "
                f"already made, not a new one): `{printable_command(resend)}`"
            )
        elif record.state in _RUNNING:
            status = "interrupted"
            goes_on = (
                "ended with the in-process emulator (nothing was billed); run the same "
                "command again to generate the item again"
                if emulated
                else "keeps running at the service, where it is billed; run the same "
                "command again to resume it without paying twice"
            )
            message = (
                f"the run was interrupted while waiting for task {task_id}, which {goes_on}: "
                f"{again}"
            )
        elif record.state is JournalState.SAVED:
            status, error, message = "saved", None, ""
            paths = [reporter.path(path) for path in record.paths]
        else:  # failed, or its links expired: settled meanwhile, not yet reported
            status = "failed"
            error = {"type": "TaskFailedError", "message": ""}
            message = (
                f"task {task_id} ended {record.state.value}: "
                f"{batch_words(record.error_message or record.error_code or 'no reason given')}"
            )
        if error is not None:
            error["message"] = message
        reporter.reported.add(index)
        if reporter.mode != "json":
            if status == "not_sent":
                unsent += 1
            else:
                _line(reporter, entry.line, status, task_id, paths, error)
            continue
        reporter.count(status)
        reporter.print(
            {
                "event": "item",
                "index": index,
                "line": entry.line,
                "prompt": entry.request.prompt,
                "status": status,
                "task_id": task_id,
                "paths": paths,
                "resumed": False,
                "error": error,
                **({} if key is None else {"idempotency_key": key}),
            }
        )
    for _ in range(unsent):
        reporter.count("not_sent")


def _line(
    reporter: Reporter,
    line: int,
    status: str,
    task_id: str | None,
    paths: list[str],
    error: dict[str, str] | None,
) -> None:
    """Print an item's plain line, as :meth:`Reporter.item` prints the others."""
    reporter.count(status)
    count = f"[{reporter.saved + reporter.failed + reporter.not_sent + reporter.interrupted}"
    count += f"/{len(reporter.lines)}]"
    if error is None:
        text = f"{count} saved line {line}: {', '.join(paths)}"
    elif status == "failed":
        text = f"{count} FAILED line {line} (task {task_id or '-'}): {error['type']}: "
        text += error["message"]
    else:  # its task still running, or its create cut off on its way
        text = f"{count} INTERRUPTED line {line} (task {task_id or '-'}): {error['message']}"
    print(shown(text), file=reporter.out, flush=True)
