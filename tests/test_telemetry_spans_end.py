"""The task span of a journaled task, of a stopped create and of a stream ends, once.

A span that is started and never ended is never exported: these tests watch every span
started (a processor on the provider) besides the exported ones.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from zimage_async import ImageDownloadError, JournalError, Session, TaskHandle
from zimage_async.emulator import Emulator, FaultPlan, FaultRule
from zimage_async.pytest_plugin import EmulatorFactory

from ._spans import OPEN, watched_spans
from .conftest import FAST_POLL, FAST_RETRY, until

POST = "POST /v1/images/generations"


_OPEN = OPEN


@pytest.fixture
def spans(caplog: pytest.LogCaptureFixture) -> Iterator[InMemorySpanExporter]:
    """The process's in-memory exporter, emptied; no span may be left open at the end."""
    yield from watched_spans(caplog)


def _open_spans() -> list[str]:
    return sorted(_OPEN.spans.values())


def _task_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == "zimage.task"]


def _attributes(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


def _children(exporter: InMemorySpanExporter, parent: ReadableSpan, name: str) -> list[str]:
    """The names of *parent*'s exported children called *name*."""
    assert parent.context is not None
    return [
        s.name
        for s in exporter.get_finished_spans()
        if s.name == name and s.parent is not None and s.parent.span_id == parent.context.span_id
    ]


def _orphans(exporter: InMemorySpanExporter) -> list[str]:
    """Exported spans whose parent was never exported (never ended)."""
    finished = exporter.get_finished_spans()
    ids = {s.context.span_id for s in finished if s.context is not None}
    return [s.name for s in finished if s.parent is not None and s.parent.span_id not in ids]


@pytest.fixture
async def journaled(emulator: Emulator, tmp_path: Path) -> AsyncIterator[Session]:
    """A Session at the emulator that keeps a journal (SQLite)."""
    async with Session(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        poll=FAST_POLL,
        retry=FAST_RETRY,
        seed=1,
        journal=tmp_path / "journal.sqlite",
    ) as session:
        yield session


# -- D4: a journaled task has one task span, the create's span its child ---------------------


@pytest.mark.parametrize("how", ["generate", "save"])
async def test_a_journaled_task_has_one_span_with_the_create_as_its_child(
    journaled: Session, spans: InMemorySpanExporter, tmp_path: Path, how: str
) -> None:
    """With a journal as without: one ``zimage.task`` span, ended, the POST its child."""
    if how == "generate":
        task_id = (await journaled.generate("a journaled fox")).task.id
        outcome = "delivered"
    else:
        handle = await journaled.submit("a journaled fox")
        await handle.save(tmp_path / "out")
        task_id, outcome = handle.id, "saved"
    assert _open_spans() == []
    (task,) = _task_spans(spans)
    assert _attributes(task)["zimage.task_id"] == task_id
    assert _attributes(task)["zimage.outcome"] == outcome
    assert _children(spans, task, POST) == [POST]
    assert _orphans(spans) == []


async def test_a_journaled_create_whose_record_fails_ends_its_span(
    journaled: Session, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task made whose id the journal could not record gets no handle: its span ends."""
    book = journaled._book
    assert book is not None

    async def cannot_record(key: str, task_id: str, **fields: object) -> None:
        raise JournalError(f"task {task_id} was created and is billed but could not be recorded")

    monkeypatch.setattr(book, "_created", cannot_record)
    with pytest.raises(JournalError):
        await journaled.submit("a fox the journal forgets")
    assert _open_spans() == []
    (task,) = _task_spans(spans)
    assert _attributes(task)["zimage.outcome"] == "error"
    assert task.status.status_code is StatusCode.ERROR
    assert task.status.description == "JournalError"
    assert _children(spans, task, POST) == [POST]


# -- D5: a create stopped by anything ends its span -----------------------------------------


@pytest.mark.parametrize("journal", [False, True])
async def test_a_create_cancelled_mid_flight_ends_its_span_as_stopped(
    zs: Session,
    journaled: Session,
    emulator: Emulator,
    spans: InMemorySpanExporter,
    journal: bool,
) -> None:
    """Cancelled while its POST is at the service: the span ends, ``stopped``, no error."""
    session = journaled if journal else zs
    emulator.faults = FaultPlan.script("create", [FaultRule(kind="slow", delay_seconds=2.0)])
    creating = asyncio.ensure_future(session.submit("a fox cancelled mid-flight"))
    await until(lambda: POST in _OPEN.spans.values())
    creating.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await creating
    assert creating.cancelled()
    assert _open_spans() == []
    (task,) = _task_spans(spans)
    assert _attributes(task)["zimage.outcome"] == "stopped"
    assert task.status.status_code is not StatusCode.ERROR
    assert _children(spans, task, POST) == [POST]


async def test_a_create_stopped_by_an_unexpected_error_ends_its_span_as_an_error(
    zs: Session, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception that is no ZImageError ends the span too: ``error``, recorded."""

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug under the create")

    monkeypatch.setattr(zs._runtime.transport, "request", broken)
    with pytest.raises(RuntimeError):
        await zs.submit("a fox")
    assert _open_spans() == []
    (task,) = _task_spans(spans)
    assert _attributes(task)["zimage.outcome"] == "error"
    assert task.status.status_code is StatusCode.ERROR
    assert task.status.description == "RuntimeError"
    assert any(event.name == "exception" for event in task.events)


# -- D6: iter_bytes() to its end ends the span ----------------------------------------------


async def _stream(handle: TaskHandle, index: int = 0) -> int:
    size = 0
    async for chunk in handle.iter_bytes(index):
        size += len(chunk)
    return size


async def test_iter_bytes_to_its_end_ends_the_span_as_delivered(
    zs: Session, spans: InMemorySpanExporter
) -> None:
    """A stream read to its end ends the task span once, ``delivered``; awaiting adds none."""
    handle = await zs.submit("a streamed fox")
    assert await _stream(handle) > 0
    assert _open_spans() == []
    (task,) = _task_spans(spans)
    assert _attributes(task)["zimage.outcome"] == "delivered"
    assert _attributes(task)["zimage.task_id"] == handle.id
    assert task.status.status_code is not StatusCode.ERROR
    assert _children(spans, task, POST) == [POST]
    assert _children(spans, task, "GET image") == ["GET image"]
    await handle
    assert len(_task_spans(spans)) == 1


async def test_the_first_stream_of_several_images_to_end_ends_the_span(
    zimage_emulator_factory: EmulatorFactory, spans: InMemorySpanExporter
) -> None:
    """Two images: the first stream to end ends the span; the second's download is its child."""
    emulator = await zimage_emulator_factory(task_duration=0.05, seed=1, images_per_task=2)
    async with Session(
        api_key=emulator.api_key, base_url=emulator.base_url, poll=FAST_POLL, retry=FAST_RETRY
    ) as zs:
        handle = await zs.submit("two streamed foxes")
        await _stream(handle, 0)
        assert _open_spans() == []
        (task,) = _task_spans(spans)
        assert _attributes(task)["zimage.outcome"] == "delivered"
        await _stream(handle, 1)
    assert _open_spans() == []
    assert _task_spans(spans) == [task]
    assert _children(spans, task, "GET image") == ["GET image", "GET image"]


async def test_a_stream_that_fails_still_ends_the_span_as_an_error(
    zs: Session, emulator: Emulator, spans: InMemorySpanExporter
) -> None:
    """A download that fails for good under iter_bytes() ends the span, ``error``, as before."""
    handle = await zs.submit("a fox")
    await handle.wait()
    emulator.faults = FaultPlan.random(FaultRule(kind="http_500", endpoint="image"))
    with pytest.raises(ImageDownloadError):
        await _stream(handle)
    assert _open_spans() == []
    (task,) = _task_spans(spans)
    assert _attributes(task)["zimage.outcome"] == "error"
    assert task.status.status_code is StatusCode.ERROR


async def test_a_stream_cancelled_midway_ends_the_span_as_stopped(
    zs: Session, emulator: Emulator, spans: InMemorySpanExporter
) -> None:
    """A stream cancelled before its end ends the span ``stopped``, as before."""
    handle = await zs.submit("a fox")
    await handle.wait()
    emulator.faults = FaultPlan.random(FaultRule(kind="slow", endpoint="image", delay_seconds=5))
    streaming = asyncio.ensure_future(_stream(handle))
    await until(lambda: "GET image" in _OPEN.spans.values())
    streaming.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await streaming
    assert _open_spans() == []
    (task,) = _task_spans(spans)
    assert _attributes(task)["zimage.outcome"] == "stopped"
