"""Every way of waiting ends the task span once, with what happened, whatever happened."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from zimage_async import (
    ImageDownloadError,
    Session,
    TaskFailedError,
    TaskHandle,
    WaitTimeoutError,
)
from zimage_async.emulator import Emulator, FaultPlan, FaultRule

from ._spans import watched_spans
from .conftest import until

#: Image faults that make a download fail for good (every try gets one).
IMAGE_FAULTS = ["reset", "http_500", "truncate", "trailing_garbage"]


@pytest.fixture
def spans(caplog: pytest.LogCaptureFixture) -> Iterator[InMemorySpanExporter]:
    """The process's in-memory exporter, emptied (no span may be ended twice)."""
    yield from watched_spans(caplog)


def _task_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == "zimage.task"]


def _outcome(span: ReadableSpan) -> object:
    return dict(span.attributes or {}).get("zimage.outcome")


@pytest.mark.parametrize("kind", IMAGE_FAULTS)
@pytest.mark.parametrize("how", ["save", "result"])
async def test_a_failed_download_ends_the_span_as_an_error(
    zs: Session,
    emulator: Emulator,
    spans: InMemorySpanExporter,
    tmp_path: object,
    kind: str,
    how: str,
) -> None:
    """A download that fails for good ends the task's span, an error, the failure recorded."""
    handle = await zs.submit("a fox")
    emulator.faults = FaultPlan.random(FaultRule(kind=kind, endpoint="image"))  # type: ignore[arg-type]
    delivery = handle.save(str(tmp_path)) if how == "save" else handle.result()
    with pytest.raises(ImageDownloadError):
        await delivery
    (task,) = _task_spans(spans)
    attributes = dict(task.attributes or {})
    assert attributes["zimage.task_id"] == handle.id
    assert attributes["zimage.outcome"] == "error"
    assert task.status.status_code is StatusCode.ERROR
    assert task.status.description == "ImageDownloadError"
    assert any(event.name == "exception" for event in task.events)


async def test_a_timeout_ends_the_span_and_a_later_wait_has_a_new_linked_one(
    zs: Session, spans: InMemorySpanExporter, tmp_path: object
) -> None:
    """A timed-out wait ends its span (timeout); awaiting again starts another, linked."""
    handle = await zs.submit("a slow fox [[duration:1.5]]")
    with pytest.raises(WaitTimeoutError):
        await handle.save(str(tmp_path), timeout=0.05)
    (first,) = _task_spans(spans)
    assert _outcome(first) == "timeout"
    assert first.status.status_code is not StatusCode.ERROR  # the task itself goes on
    assert any(event.name == "exception" for event in first.events)
    await handle.save(str(tmp_path), timeout=30)
    first_again, second = _task_spans(spans)
    assert first_again.context.span_id == first.context.span_id
    assert _outcome(second) == "saved"
    assert dict(second.attributes or {})["zimage.task_id"] == handle.id
    assert [link.context.span_id for link in second.links] == [first.context.span_id]
    assert second.context.span_id != first.context.span_id


async def _wait_by(handle: TaskHandle, how: str) -> None:
    """Wait for *handle* with a timeout far shorter than its task, the way *how* names."""
    if how == "wait":
        await handle.wait(timeout=0.05)
    elif how == "result":
        await handle.result(timeout=0.05)
    elif how == "updates":
        async for _ in handle.updates(timeout=0.05):
            pass
    else:
        async for _ in handle.iter_bytes(timeout=0.05):
            pass


@pytest.mark.parametrize("how", ["wait", "updates", "result", "iter_bytes"])
async def test_every_way_of_waiting_ends_the_span_at_its_timeout(
    zs: Session, spans: InMemorySpanExporter, how: str
) -> None:
    """wait(), updates(), result() and iter_bytes() end the span when their time is up."""
    handle = await zs.submit("a slow fox [[duration:1.5]]")
    with pytest.raises(WaitTimeoutError):
        await _wait_by(handle, how)
    assert [_outcome(s) for s in _task_spans(spans)] == ["timeout"]


async def test_a_cancelled_wait_ends_the_span_as_stopped(
    zs: Session, spans: InMemorySpanExporter
) -> None:
    """A wait cancelled from outside ends the span, its outcome `stopped`."""
    handle = await zs.submit("a slow fox [[duration:1.5]]")
    waiter = asyncio.ensure_future(handle.result())
    await until(lambda: handle._span.polls >= 1)
    waiter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiter
    (task,) = _task_spans(spans)
    assert _outcome(task) == "stopped"


async def test_the_other_waiter_ends_the_span_when_one_times_out(
    zs: Session, spans: InMemorySpanExporter
) -> None:
    """Two waiters of one handle: the one that times out leaves the span to the other."""
    handle = await zs.submit("a fox [[duration:0.5]]")
    patient = asyncio.ensure_future(handle.result(timeout=30))
    with pytest.raises(WaitTimeoutError):
        await handle.wait(timeout=0.05)
    await patient
    assert [_outcome(s) for s in _task_spans(spans)] == ["delivered"]


async def test_a_failed_task_ends_its_span_once_however_often_it_is_awaited(
    zs: Session, spans: InMemorySpanExporter
) -> None:
    """A task that failed is final: awaiting it again makes no second span."""
    handle = await zs.submit("refused [[fail:content_policy_violation]]")
    for _ in range(2):
        with pytest.raises(TaskFailedError):
            await handle
    assert [_outcome(s) for s in _task_spans(spans)] == ["failed"]


async def test_a_wait_then_a_save_is_still_one_span(
    zs: Session, spans: InMemorySpanExporter, tmp_path: object
) -> None:
    """updates() and wait() to completion leave the span to the download that follows."""
    handle = await zs.submit("a fox")
    async for _ in handle.updates():
        pass
    await handle.wait()
    assert _task_spans(spans) == []
    await handle.save(str(tmp_path))
    assert [_outcome(s) for s in _task_spans(spans)] == ["saved"]


async def test_a_wait_that_fails_inside_updates_ends_the_span_when_the_loop_closes(
    zs: Session, spans: InMemorySpanExporter
) -> None:
    """A wait inside ``updates()`` times out; when the loop is then left, the span ends."""
    handle = await zs.submit("a slow fox [[duration:1.5]]")

    async def wait_inside_updates() -> None:
        async with contextlib.aclosing(handle.updates(timeout=30)) as updates:
            async for _ in updates:
                await handle.wait(timeout=0.05)

    with pytest.raises(WaitTimeoutError):
        await wait_inside_updates()
    (task,) = _task_spans(spans)
    assert _outcome(task) == "timeout"
