"""The journal workload times begins at each journal size, with and without a limit."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from benchmarks._common import Options
from benchmarks._journal import KINDS, _fill, run
from zimage_async._journal import open_journal


def test_a_quick_run_times_every_size_and_kind_over_filled_journals() -> None:
    """One row per journal size and kind of begin, each a figure; the note compares sizes."""
    options = dataclasses.replace(Options.quick(), journal_sizes=(10, 500), journal_begins=5)
    (table,) = run(options)
    rows = [(row[0], row[1]) for row in table.rows]
    assert rows == [(f"{n:,}", kind) for n in (10, 500) for kind in KINDS]
    for row in table.rows:
        assert float(row[2]) > 0, row
    assert any("500 records costs" in note for note in table.notes), table.notes


async def test_the_fill_writes_the_records_the_size_names(tmp_path: Path) -> None:
    """A journal filled with 50 records holds 50 saved creates, counted in its totals."""
    path = tmp_path / "j.sqlite"
    await _fill(path, 50)
    async with await open_journal(path) as journal:
        spend = await journal.spent()
        assert len(await journal.records()) == 50
    assert (spend.creates, spend.uncertain) == (50, 0)
    assert spend.credits == pytest.approx(0.5)
