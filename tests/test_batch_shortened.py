"""A batch run again with fewer items than its journal holds, on SQLite and on PostgreSQL.

Items past the end of the shorter list that were never begun are left out of the run
(and kept in the journal: the longer list runs them later); items past the end whose
create may have a task are refused before anything is sent, by index.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from zimage_async import BatchItem, GenerationRequest, JournalError, Session
from zimage_async._journal import open_journal
from zimage_async.emulator import Emulator, FaultPlan

from ._postgres import PostgresServer


@pytest.fixture(params=["sqlite", "postgresql"])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """A new, empty journal: an SQLite file, or a database on the throwaway server."""
    if request.param == "sqlite":
        return tmp_path / "j.sqlite"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database()


async def _collect(zs: Session, prompts: list[str], **options: object) -> list[BatchItem]:
    async with zs.generate_many(prompts, batch_id="b", **options) as batch:  # type: ignore[arg-type]
        return sorted([item async for item in batch], key=lambda item: item.index)


def _billed(emulator: Emulator) -> Counter[object]:
    return Counter(entry.request_body["prompt"] for entry in emulator.ledger)


async def test_items_never_begun_past_the_end_are_left_out_until_the_list_grows_back(
    zs: Session, emulator: Emulator, journal: str | Path, tmp_path: Path
) -> None:
    """Six items in the journal, none begun, three in the list: three run, then the rest."""
    prompts = [f"p{n}" for n in range(6)]
    async with await open_journal(journal) as store:
        await store.enqueue("b", [GenerationRequest(prompt=p) for p in prompts])
    first = await _collect(zs, prompts[:3], journal=journal, output_dir=tmp_path)
    assert [(item.index, item.ok) for item in first] == [(0, True), (1, True), (2, True)]
    assert _billed(emulator) == Counter(prompts[:3])
    again = await _collect(zs, prompts, journal=journal, output_dir=tmp_path)
    assert [(item.index, item.ok, item.resumed) for item in again] == [
        (n, True, n < 3) for n in range(6)
    ]
    assert _billed(emulator) == Counter(prompts)


async def test_a_rejected_item_past_the_end_is_left_out(
    zs: Session, emulator: Emulator, journal: str | Path, tmp_path: Path
) -> None:
    """An item whose create was refused (nothing billed) is like one never begun."""
    prompts = ["a cat", "refused"]
    emulator.faults = FaultPlan.script("create", ["ok", "http_402"])
    first = await _collect(zs, prompts, journal=journal, output_dir=tmp_path, concurrency=1)
    assert [item.ok for item in first] == [True, False]
    (item,) = await _collect(zs, prompts[:1], journal=journal, output_dir=tmp_path)
    assert item.ok and item.resumed
    assert len(emulator.ledger) == 1


async def test_items_past_the_end_with_creates_are_refused_by_index(
    zs: Session, emulator: Emulator, journal: str | Path, tmp_path: Path
) -> None:
    """Items cut off the end after their creates were sent: refused, nothing sent."""
    prompts = [f"p{n}" for n in range(5)]
    await _collect(zs, prompts, journal=journal, output_dir=tmp_path)
    requests_before = len(emulator.requests)
    with pytest.raises(JournalError, match=r"past the end .*item index 3, 4\)") as refused:
        await _collect(zs, prompts[:3], journal=journal, output_dir=tmp_path)
    assert "put them back at the end, or use another batch id" in str(refused.value)
    assert len(emulator.requests) == requests_before
