"""The batch manifest and the batch-file reader: pure, file-level behaviour."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from zimage_async import GenerationRequest, ManifestError
from zimage_async._batchfile import BatchFileError, parse_batch_text
from zimage_async._manifest import Manifest, RowState


def test_a_recorded_row_is_read_back_after_reopening(tmp_path: Path) -> None:
    """Every record is committed: a fresh connection sees it."""
    manifest = Manifest.open(tmp_path / "m.sqlite", batch_id="b")
    request = GenerationRequest(prompt="a cat")
    manifest.record(0, request, RowState.CREATED, base_url="https://x", task_id="task-1")
    manifest.close()
    reopened = Manifest.open(tmp_path / "m.sqlite", batch_id="b")
    (row,) = reopened.rows().values()
    reopened.close()
    assert (row.index, row.state, row.task_id) == (0, RowState.CREATED, "task-1")


def test_a_file_that_is_not_a_manifest_is_refused(tmp_path: Path) -> None:
    """A random file gives ManifestError, and is left untouched."""
    path = tmp_path / "notes.txt"
    path.write_text("hello, not a database\n" * 100)
    with pytest.raises(ManifestError, match="not a zimage batch manifest"):
        Manifest.open(path, batch_id="b")
    assert path.read_text().startswith("hello")


def test_rows_of_tasks_at_another_address_are_refused(tmp_path: Path) -> None:
    """Unfinished tasks created at another base URL cannot be resumed here."""
    manifest = Manifest.open(tmp_path / "m.sqlite", batch_id="b")
    request = GenerationRequest(prompt="a")
    manifest.record(0, request, RowState.CREATED, base_url="http://127.0.0.1:1", task_id="t")
    with pytest.raises(ManifestError, match=r"created at http://127\.0\.0\.1:1"):
        manifest.check([request], base_url="http://127.0.0.1:2")
    assert manifest.forget_unfinished(base_url="http://127.0.0.1:2") == 1
    manifest.check([request], base_url="http://127.0.0.1:2")
    manifest.close()


def test_blank_lines_and_comments_are_skipped_and_lines_are_numbered() -> None:
    """Items keep the line number they came from."""
    items = parse_batch_text("# header\n\na cat\n   \na dog\n")
    assert [(i.line, i.request.prompt) for i in items] == [(3, "a cat"), (5, "a dog")]


def test_jsonl_rows_carry_request_fields() -> None:
    """A file whose first item starts with { is JSONL."""
    (item,) = parse_batch_text('{"prompt": "a cat", "size": "16:9", "seed": 7}\n')
    assert (item.request.size, item.request.seed) == ("16:9", 7)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            '{"prompt": "a"}\n{"prompt": "b", "seed": 0}\n', "line 2: field 'seed'", id="rule"
        ),
        pytest.param('{"prompt": "a"}\n\n{"prompt": "b",\n', "line 3: not valid JSON", id="json"),
        pytest.param('{"prompt": "a", "sede": 3}\n', "line 1: unknown field 'sede'", id="unknown"),
        pytest.param('{"size": "1:1"}\n', "line 1: field 'prompt' is missing", id="missing"),
        pytest.param("\n\n# only comments\n", "has no prompts", id="empty"),
    ],
)
def test_a_bad_batch_file_names_the_line_and_field(text: str, message: str) -> None:
    """The error says where and what, before anything could be submitted."""
    with pytest.raises(BatchFileError, match=message):
        parse_batch_text(text, name="f.jsonl")


_FIRST_FORMAT = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE items (
    idx INTEGER PRIMARY KEY, fingerprint TEXT NOT NULL, request TEXT NOT NULL,
    state TEXT NOT NULL, task_id TEXT, base_url TEXT NOT NULL, completed_at REAL,
    paths TEXT NOT NULL DEFAULT '[]', error_code TEXT, error_message TEXT,
    updated_at REAL NOT NULL
);
INSERT INTO meta VALUES ('format', 'zimage-batch-manifest/1'), ('batch_id', 'b');
INSERT INTO items VALUES (0, 'f', '{}', 'created', 'task-1', 'http://x', NULL, '[]',
    NULL, NULL, 0);
"""


def test_a_manifest_without_key_column_gains_it(tmp_path: Path) -> None:
    """A manifest written before idempotency keys opens, keeps its rows, and stores keys."""
    path = tmp_path / "old.sqlite"
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.executescript(_FIRST_FORMAT)
    manifest = Manifest.open(path, batch_id="b")
    try:
        assert manifest.rows()[0].task_id == "task-1"
        assert manifest.rows()[0].idempotency_key is None
        request = GenerationRequest(prompt="a fox")
        manifest.record(
            1, request, RowState.SUBMITTING, base_url="http://x", idempotency_key="k" * 20
        )
        assert manifest.rows()[1].idempotency_key == "k" * 20
    finally:
        manifest.close()


def test_a_later_state_keeps_the_key(tmp_path: Path) -> None:
    """Recording a new state without a key keeps the key written with ``submitting``."""
    manifest = Manifest.open(tmp_path / "m.sqlite", batch_id="b")
    try:
        request = GenerationRequest(prompt="a fox")
        manifest.record(0, request, RowState.SUBMITTING, base_url="x", idempotency_key="k" * 20)
        manifest.record(0, request, RowState.CREATED, base_url="x", task_id="task-1")
        row = manifest.rows()[0]
        assert (row.state, row.task_id, row.idempotency_key) == (
            RowState.CREATED,
            "task-1",
            "k" * 20,
        )
    finally:
        manifest.close()
