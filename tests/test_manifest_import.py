"""A batch manifest written before idempotency keys, taken over as the journal.

Its rows carry no key. A row that may have a task whose id is unknown (cut off while
``submitting``, ``uncertain``, or refused on an answer that today's create policy
calls uncertain) is reported as uncertain and sent again only when asked; rows known
to have no task run, and rows with a task are resumed by its id, nothing sent.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from zimage_async import (
    BatchItem,
    GenerationRequest,
    InvalidRequestError,
    Session,
    SubmissionUncertainError,
    TaskFailedError,
)
from zimage_async._journal import JournalState, open_journal
from zimage_async._manifest import Manifest, RowState, fingerprint
from zimage_async.emulator import Emulator, FaultPlan, FaultRule

from .test_cli_tasks import zimage

#: The manifest of the versions before idempotency keys: no ``idempotency_key`` column.
_KEYLESS_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE items (
    idx INTEGER PRIMARY KEY, fingerprint TEXT NOT NULL, request TEXT NOT NULL,
    state TEXT NOT NULL, task_id TEXT, base_url TEXT NOT NULL, completed_at REAL,
    paths TEXT NOT NULL DEFAULT '[]', error_code TEXT, error_message TEXT,
    updated_at REAL NOT NULL
);
INSERT INTO meta VALUES ('format', 'zimage-batch-manifest/1'), ('batch_id', 'old');
"""
_CREATE_PATH = "/v1/images/generations"


def _keyless_manifest(path: Path, base_url: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write a first-format manifest holding *rows* (index, prompt, state and fields)."""
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.executescript(_KEYLESS_SCHEMA)
        for row in rows:
            request = GenerationRequest(prompt=str(row["prompt"]))
            db.execute(
                "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row["index"],
                    fingerprint(request),
                    json.dumps(request.to_json(), ensure_ascii=False),
                    row["state"],
                    row.get("task_id"),
                    base_url,
                    row.get("completed_at"),
                    json.dumps([str(p) for p in row.get("paths", ())]),
                    row.get("error_code"),
                    row.get("error_message"),
                    time.time(),
                ),
            )


def _cut_off(path: Path, emulator: Emulator) -> None:
    """Write a first-format manifest whose one row, "p0", was cut off while submitting."""
    _keyless_manifest(
        path, emulator.base_url, [{"index": 0, "prompt": "p0", "state": "submitting"}]
    )


async def _run(zs: Session, prompts: Sequence[str], path: Path, **options: Any) -> list[BatchItem]:
    async with zs.generate_many(prompts, manifest=path, batch_id="old", **options) as batch:
        return sorted([item async for item in batch], key=lambda item: item.index)


def _billed(emulator: Emulator) -> Counter[object]:
    return Counter(entry.request_body["prompt"] for entry in emulator.ledger)


async def test_a_keyless_submitting_row_is_uncertain_and_sent_only_when_asked(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """Cut off while submitting, without a key: nothing is sent until resubmit_uncertain."""
    # The earlier run's create reached the service and made a billed task, but the
    # process died before its answer was recorded: the manifest says only "submitting".
    await zs.submit("p0 a cat")
    path = tmp_path / "zimage-manifest.sqlite"
    _keyless_manifest(
        path, emulator.base_url, [{"index": 0, "prompt": "p0 a cat", "state": "submitting"}]
    )

    first = await _run(zs, ["p0 a cat", "p1 a dog"], path, output_dir=tmp_path / "out")

    assert isinstance(first[0].error, SubmissionUncertainError)
    assert first[0].resumed
    assert first[1].ok
    assert _billed(emulator) == {"p0 a cat": 1, "p1 a dog": 1}
    async with await open_journal(path) as journal:
        (record,) = [r for r in await journal.unfinished() if r.item_index == 0]
    assert record.state is JournalState.UNCERTAIN

    again = await _run(zs, ["p0 a cat", "p1 a dog"], path, output_dir=tmp_path / "out")
    assert isinstance(again[0].error, SubmissionUncertainError)
    assert _billed(emulator) == {"p0 a cat": 1, "p1 a dog": 1}

    asked = await _run(
        zs, ["p0 a cat", "p1 a dog"], path, output_dir=tmp_path / "out", resubmit_uncertain=True
    )
    assert asked[0].ok and asked[1].ok and asked[1].resumed
    assert _billed(emulator) == {"p0 a cat": 2, "p1 a dog": 1}


async def test_recover_resends_an_imported_uncertain_row_only_when_asked(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """Session.recover leaves the imported row alone unless resubmit_uncertain=True."""
    path = tmp_path / "zimage-manifest.sqlite"
    _cut_off(path, emulator)
    async with Session(
        api_key=emulator.api_key, base_url=emulator.base_url, journal=path, seed=1
    ) as session:
        assert await session.recover() == []
        assert len(emulator.ledger) == 0
        (handle,) = await session.recover(resubmit_uncertain=True)
        await handle.wait()
    assert _billed(emulator) == {"p0": 1}


def _answered(status: int, kind: str | None) -> str:
    """The error message a pre-key version stored for a create answered *status*."""
    typed = f" ({kind})" if kind else ""
    return f"POST http://127.0.0.1:1{_CREATE_PATH} answered {status}{typed}: HTTP {status}"


#: (state, error_code, error_message) of a keyless row, and whether a rerun asked for
#: nothing reports it as uncertain (sending nothing) or sends it.
_NO_TASK_ID = [
    pytest.param("submitting", None, None, "uncertain", id="submitting"),
    pytest.param("uncertain", None, "reset after sending", "uncertain", id="uncertain"),
    pytest.param(
        "rejected", "APIError", _answered(408, None), "uncertain", id="rejected-untyped-408"
    ),
    pytest.param(
        "rejected", "APIError", _answered(303, None), "uncertain", id="rejected-untyped-303"
    ),
    pytest.param(
        "rejected",
        "BadRequestError",
        _answered(400, "invalid_request_error"),
        "sent",
        id="rejected-typed-400",
    ),
    pytest.param(
        "rejected",
        "ServiceUnavailableError",
        _answered(503, "service_unavailable_error"),
        "uncertain",
        id="rejected-typed-503",
    ),
    pytest.param(
        "rejected",
        "RateLimitError",
        _answered(429, "rate_limit_error"),
        "uncertain",
        id="rejected-typed-429",
    ),
    pytest.param("rejected", "APIError", _answered(307, None), "sent", id="rejected-untyped-307"),
    pytest.param(
        "rejected",
        "APIConnectionError",
        f"POST http://127.0.0.1:1{_CREATE_PATH}: connection refused",
        "sent",
        id="rejected-never-sent",
    ),
    pytest.param("rejected", None, None, "sent", id="rejected-bare"),
]


@pytest.mark.parametrize(("state", "code", "message", "expected"), _NO_TASK_ID)
async def test_a_keyless_row_without_task_id_is_sent_only_if_it_has_no_task(
    zs: Session,
    emulator: Emulator,
    tmp_path: Path,
    state: str,
    code: str | None,
    message: str | None,
    expected: str,
) -> None:
    """A row that may have a task is reported uncertain; one certainly refused is sent."""
    path = tmp_path / "m.sqlite"
    row = {"index": 0, "prompt": "p0", "state": state, "error_code": code, "error_message": message}
    _keyless_manifest(path, emulator.base_url, [row])

    (item,) = await _run(zs, ["p0"], path, output_dir=tmp_path / "out")

    if expected == "uncertain":
        assert isinstance(item.error, SubmissionUncertainError)
        assert len(emulator.ledger) == 0
        (asked,) = await _run(
            zs, ["p0"], path, output_dir=tmp_path / "out", resubmit_uncertain=True
        )
        assert asked.ok
    else:
        assert item.ok and not item.resumed
    assert _billed(emulator) == {"p0": 1}


@pytest.mark.parametrize("state", ["created", "completed", "saved", "failed"])
async def test_a_keyless_row_with_a_task_is_resumed_by_its_id(
    zs: Session, emulator: Emulator, tmp_path: Path, state: str
) -> None:
    """A task the earlier run recorded is waited for, downloaded or reported; never sent."""
    handle = await zs.submit("p0")
    await handle.wait()
    out = tmp_path / "out"
    saved = out / "earlier.png"
    saved.parent.mkdir()
    saved.write_bytes(b"kept")
    by_state: dict[str, dict[str, Any]] = {
        "created": {},
        "completed": {"completed_at": time.time()},
        "saved": {"completed_at": time.time(), "paths": [saved]},
        "failed": {"error_code": "content_policy_violation", "error_message": "no"},
    }
    fields = by_state[state]
    path = tmp_path / "m.sqlite"
    row = {"index": 0, "prompt": "p0", "state": state, "task_id": handle.id, **fields}
    _keyless_manifest(path, emulator.base_url, [row])

    (item,) = await _run(zs, ["p0"], path, output_dir=out)

    assert item.resumed and item.task_id == handle.id
    if state == "failed":
        assert isinstance(item.error, TaskFailedError)
    else:
        assert item.ok
    assert len(emulator.ledger) == 1


async def test_a_keyed_submitting_row_is_resent_with_its_own_key(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """A manifest that wrote the key before sending: the takeover resends with that key.

    The emulator honours keys, so the resend returns the task the first send made.
    """
    key = "order-4711-item-0000"
    first = await zs.submit("p0", idempotency_key=key)
    path = tmp_path / "m.sqlite"
    manifest = Manifest.open(path, batch_id="old")
    request = GenerationRequest(prompt="p0")
    manifest.record(
        0, request, RowState.SUBMITTING, base_url=emulator.base_url, idempotency_key=key
    )
    manifest.close()

    (item,) = await _run(zs, ["p0"], path, output_dir=tmp_path / "out")

    assert item.ok and item.task_id == first.id
    assert [entry.idempotency_key for entry in emulator.ledger] == [key]


@pytest.mark.parametrize(
    ("state", "message"),
    [
        pytest.param("submitting", None, id="submitting"),
        pytest.param("uncertain", "reset after sending", id="uncertain"),
        pytest.param("rejected", _answered(429, "rate_limit_error"), id="rejected-typed-429"),
    ],
)
async def test_an_imported_keyless_row_is_reported_as_resent_under_a_new_key(
    zs: Session, emulator: Emulator, tmp_path: Path, state: str, message: str | None
) -> None:
    """The report names what a resend really does: a new key, no protection from the first."""
    path = tmp_path / "m.sqlite"
    row = {"index": 0, "prompt": "p0", "state": state, "error_message": message}
    _keyless_manifest(path, emulator.base_url, [row])

    (item,) = await _run(zs, ["p0"], path, output_dir=tmp_path / "out")

    assert isinstance(item.error, SubmissionUncertainError)
    text = str(item.error)
    assert "original idempotency key" not in text
    assert "without an idempotency key" in text
    assert "new key" in text
    assert len(emulator.ledger) == 0


async def test_a_keyed_uncertain_row_is_reported_as_resent_with_its_own_key(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """A row that kept its key is resent with it, and its report says so."""
    path = tmp_path / "m.sqlite"
    manifest = Manifest.open(path, batch_id="old")
    manifest.record(
        0,
        GenerationRequest(prompt="p0"),
        RowState.UNCERTAIN,
        base_url=emulator.base_url,
        idempotency_key="order-4711-item-0000",
    )
    manifest.close()

    (item,) = await _run(zs, ["p0"], path, output_dir=tmp_path / "out")

    assert isinstance(item.error, SubmissionUncertainError)
    assert item.error.idempotency_key == "order-4711-item-0000"
    assert "original idempotency key" in str(item.error)
    assert "new key" not in str(item.error)
    # What the report offers works: session.resubmit sends it again, with that key.
    handle = await zs.resubmit(item.error)
    await handle.wait()
    assert [entry.idempotency_key for entry in emulator.ledger] == ["order-4711-item-0000"]


async def test_a_keyless_item_whose_resend_is_refused_is_still_reported_as_keyless(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """A refused resend leaves the first, keyless send as the only one that may have a task."""
    path = tmp_path / "m.sqlite"
    _cut_off(path, emulator)
    quota = FaultRule(kind="http_402", error_code="quota_not_enough")
    emulator.faults = FaultPlan.script("create", [quota, quota])  # refused before charging
    await _run(zs, ["p0"], path, output_dir=tmp_path / "out", resubmit_uncertain=True)
    emulator.faults = FaultPlan()
    assert len(emulator.ledger) == 0

    (again,) = await _run(zs, ["p0"], path, output_dir=tmp_path / "out")

    assert isinstance(again.error, SubmissionUncertainError)
    assert "without an idempotency key" in str(again.error)
    assert "original idempotency key" not in str(again.error)
    assert again.error.idempotency_key is None


async def test_a_keyless_item_held_back_by_a_stop_is_reported_as_keyless(
    zs: Session, emulator: Emulator, tmp_path: Path
) -> None:
    """A batch stopped before resending it says what a rerun will do: a new key."""
    path = tmp_path / "m.sqlite"
    _keyless_manifest(
        path, emulator.base_url, [{"index": 1, "prompt": "p1", "state": "submitting"}]
    )
    emulator.faults = FaultPlan.script("create", ["http_403"])  # item 0's create: a stop

    items = await _run(
        zs, ["p0", "p1"], path, output_dir=tmp_path / "out", resubmit_uncertain=True, concurrency=1
    )

    error = items[1].error
    assert isinstance(error, SubmissionUncertainError)
    assert error.idempotency_key is None
    assert "without an idempotency key" in str(error)
    assert len(emulator.ledger) == 0


async def test_tasks_collect_says_a_keyless_item_is_resent_under_a_new_key(
    emulator: Emulator, tmp_path: Path
) -> None:
    """`zimage tasks collect` does not promise the same key for a create that had none."""
    path = tmp_path / "m.sqlite"
    _cut_off(path, emulator)
    async with await open_journal(path):  # takes the manifest over
        pass

    status, stdout, stderr = await zimage(
        emulator, "tasks", "collect", "--journal", path, "-o", tmp_path / "o"
    )

    assert status == 1, stderr
    assert "with the same key" not in stdout + stderr
    assert "under a new key" in stdout + stderr
    assert len(emulator.ledger) == 0


async def test_a_key_of_ones_own_may_not_take_the_mark_of_a_keyless_import(
    zs: Session, emulator: Emulator
) -> None:
    """Its reports would say that its first send had no key: refused before sending."""
    with pytest.raises(InvalidRequestError) as info:
        await zs.submit("a fox", idempotency_key="zimage-keyless-order-4711")
    assert info.value.field == "idempotency_key"
    assert "zimage-keyless-" in str(info.value)
    assert len(emulator.ledger) == 0
