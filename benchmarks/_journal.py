"""Workload 7, journal: what a create's journal write costs as the journal grows.

A long-lived service keeps one journal, which gains a record per create. Each create
is begun in the journal before it is sent; under a session-wide ``max_credits`` the
begin also checks what the journal has reserved. This workload fills SQLite journal
files with *N* settled records (written straight into the file, as many creates would
have left them), then times begins one after another, with and without a session-wide
limit, in rounds that alternate the journal sizes and the two kinds. The measure is
wall time per begin (each commits with ``synchronous=FULL``, so the disk's flush is in
it), the median of the rounds' means, with the rounds' range.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path

from ._common import Options, Table, median

__all__ = ["run"]

BASE = "https://api.example"
KINDS = ("no limit", "session-wide max_credits")


async def _fill(path: Path, records: int) -> None:
    """Create the journal at *path* holding *records* saved creates of 0.01 credit each."""
    from zimage_async import GenerationRequest
    from zimage_async._journal import JournalRecord, JournalState, open_journal

    record = JournalRecord.for_request(
        GenerationRequest(prompt="journal benchmark"), key="fill-template-key", base_url=BASE
    )
    async with await open_journal(path) as journal:
        await journal.begin(record)
        await journal.update(record.key, JournalState.CREATED, task_id="t-template")
        await journal.update(record.key, JournalState.SAVED, credits_reserved=0.01)
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO zimage_creates SELECT 'fill-' || n.value, fingerprint, request, model,"
            " size, state, base_url, expected_cost, credits_reserved, 't-' || n.value,"
            " completed_at, paths, error_code, error_message, batch_id, item_index, created_at,"
            " updated_at FROM zimage_creates, (WITH RECURSIVE c(value) AS (SELECT 1 UNION ALL"
            " SELECT value + 1 FROM c WHERE value < ?) SELECT value FROM c) n"
            " WHERE key = 'fill-template-key'",
            (records - 1,),
        )
    db.close()


async def _begins(path: Path, count: int, *, limited: bool, tag: str) -> float:
    """Seconds per begin of *count* new creates in the journal at *path*."""
    from zimage_async import GenerationRequest
    from zimage_async._journal import JournalRecord, SpendLimit, open_journal

    limits = [SpendLimit(max_credits=1e12)] if limited else []
    records = [
        JournalRecord.for_request(
            GenerationRequest(prompt=f"begin {tag} {i}"), key=f"begin-{tag}-{i:06d}", base_url=BASE
        )
        for i in range(count)
    ]
    async with await open_journal(path) as journal:
        started = time.perf_counter()
        for record in records:
            await journal.begin(record, limits=limits)
        return (time.perf_counter() - started) / count


def run(options: Options) -> list[Table]:
    """Time begins at each journal size, kinds and sizes interleaved; return the table."""
    sizes = options.journal_sizes
    micros: dict[tuple[int, str], list[float]] = {(n, k): [] for n in sizes for k in KINDS}
    with tempfile.TemporaryDirectory(prefix="zimage-bench-journal-") as folder:
        paths = {n: Path(folder) / f"journal-{n}.sqlite" for n in sizes}
        for n, path in paths.items():
            asyncio.run(_fill(path, n))
        for r in range(options.journal_rounds):
            for n, path in paths.items():
                for kind in KINDS:
                    seconds = asyncio.run(
                        _begins(
                            path,
                            options.journal_begins,
                            limited=kind != KINDS[0],
                            tag=f"{r}-{KINDS.index(kind)}",
                        )
                    )
                    micros[n, kind].append(seconds * 1e6)
    table = Table(
        f"7. Journal begins: {options.journal_begins} begins one after another per round, "
        f"{options.journal_rounds} rounds, SQLite file",
        ["records in the journal", "begin", "median us/begin", "range us"],
    )
    for n in sizes:
        for kind in KINDS:
            values = micros[n, kind]
            table.rows.append(
                [f"{n:,}", kind, f"{median(values):.0f}", f"{min(values):.0f}-{max(values):.0f}"]
            )
    small, large = sizes[0], sizes[-1]
    limited = KINDS[1]
    growth = median(micros[large, limited]) / median(micros[small, limited])
    table.notes.append(
        f"a begin under a session-wide limit with {large:,} records costs {growth:.2f}x "
        f"one with {small:,} (no target)"
    )
    return [table]
