"""What the spans say: the normalised outcome, image retries, a stream closed or cancelled."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from zimage_async import NoResultsError, Session, TaskFailedError
from zimage_async.emulator import Emulator, FaultPlan, FaultRule

from ._spans import OPEN, watched_spans
from ._spans import attributes as _attributes
from ._spans import one_span as _one
from .conftest import until

GET_TASK = "GET /v1/tasks/{id}"


@pytest.fixture
def spans(caplog: pytest.LogCaptureFixture) -> Iterator[InMemorySpanExporter]:
    """The process's in-memory exporter, emptied, with every started span watched."""
    yield from watched_spans(caplog)


def _exception_types(span: ReadableSpan) -> list[str]:
    """The names (without their module) of the exceptions recorded on *span*."""
    return [
        str(dict(event.attributes or {}).get("exception.type")).rsplit(".", 1)[-1]
        for event in span.events
        if event.name == "exception"
    ]


# -- the outcome is the normalised status; the wire's own is kept beside it ----------------


@pytest.mark.parametrize(
    ("wire", "outcome"),
    [("error", "failed"), ("canceled", "cancelled"), ("Failure", "failed")],
)
async def test_the_outcome_is_the_normalised_status_and_the_wire_status_is_kept(
    zs: Session, emulator: Emulator, spans: InMemorySpanExporter, wire: str, outcome: str
) -> None:
    """A gateway spelling of failed or cancelled gives the SDK's outcome, its own attribute."""
    emulator.faults = FaultPlan.script(
        "task", [FaultRule(kind="unknown_status", status_value=wire)]
    )
    with pytest.raises(TaskFailedError):  # the fault applies to a task still running
        await zs.generate("a slow fox [[duration:5]]")
    task = _one(spans, "zimage.task")
    assert _attributes(task)["zimage.outcome"] == outcome
    assert _attributes(task)["zimage.raw_status"] == wire
    assert task.status.status_code is StatusCode.ERROR
    assert task.status.description == "TaskFailedError"


@pytest.mark.parametrize(
    ("prompt", "outcome"),
    [("refused [[fail:content_policy_violation]]", "failed"), ("dropped [[cancel]]", "cancelled")],
)
async def test_a_status_as_documented_has_no_raw_status_attribute(
    zs: Session, spans: InMemorySpanExporter, prompt: str, outcome: str
) -> None:
    """``failed`` and ``cancelled`` as the service spells them: the outcome alone."""
    with pytest.raises(TaskFailedError):
        await zs.generate(prompt)
    task = _one(spans, "zimage.task")
    assert _attributes(task)["zimage.outcome"] == outcome
    assert "zimage.raw_status" not in _attributes(task)


async def test_a_task_completed_without_links_ends_as_no_results(
    zs: Session, spans: InMemorySpanExporter
) -> None:
    """NoResultsError: outcome ``no results``, an error, the error recorded."""
    with pytest.raises(NoResultsError):
        await zs.generate("nothing [[results:empty]]")
    task = _one(spans, "zimage.task")
    assert _attributes(task)["zimage.outcome"] == "no results"
    assert task.status.status_code is StatusCode.ERROR
    assert task.status.description == "NoResultsError"
    assert _exception_types(task) == ["NoResultsError"]


# -- image download retries ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "reason"), [("http_500", "status 500"), ("truncate", "APIConnectionError")]
)
async def test_image_retries_are_counted_and_shown_on_the_image_span(
    zs: Session, emulator: Emulator, spans: InMemorySpanExporter, fault: str, reason: str
) -> None:
    """Two failed tries of an image: ``zimage.retries`` 2, two ``retry`` events on its span."""
    handle = await zs.submit("a fox")
    await handle.wait()
    emulator.faults = FaultPlan.script("image", [fault, fault])
    await handle
    task = _one(spans, "zimage.task")
    assert _attributes(task)["zimage.retries"] == 2
    image = _one(spans, "GET image")
    assert image.status.status_code is not StatusCode.ERROR
    retries = [dict(e.attributes or {}) for e in image.events if e.name == "retry"]
    assert len(retries) == 2
    assert [r["zimage.reason"] for r in retries] == [reason, reason]
    assert all(float(str(r["zimage.delay_s"])) >= 0 for r in retries)


# -- a child span closed early or cancelled is no error -------------------------------------


async def test_an_iter_bytes_stream_closed_early_is_no_error(
    zs: Session, spans: InMemorySpanExporter
) -> None:
    """Leaving a stream after its first chunk (aclosing, break) marks no span an error."""
    handle = await zs.submit("a fox")
    async with contextlib.aclosing(handle.iter_bytes()) as chunks:
        async for _ in chunks:
            break
    image = _one(spans, "GET image")
    assert image.status.status_code is StatusCode.UNSET
    assert _exception_types(image) == []
    assert int(str(_attributes(image)["zimage.image_bytes"])) > 0


async def test_a_stream_cancelled_midway_says_so_on_its_image_span_without_an_error(
    zs: Session, emulator: Emulator, spans: InMemorySpanExporter
) -> None:
    """A cancelled download's span: ``zimage.stopped``, no error status, no exception."""
    handle = await zs.submit("a fox")
    await handle.wait()
    emulator.faults = FaultPlan.random(FaultRule(kind="slow", endpoint="image", delay_seconds=5))

    async def stream() -> None:
        async for _ in handle.iter_bytes():
            pass

    streaming = asyncio.ensure_future(stream())
    await until(lambda: "GET image" in OPEN.spans.values())
    streaming.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await streaming
    image = _one(spans, "GET image")
    assert _attributes(image)["zimage.stopped"] is True
    assert image.status.status_code is not StatusCode.ERROR
    assert _exception_types(image) == []
    task = _one(spans, "zimage.task")
    assert _attributes(task)["zimage.outcome"] == "stopped"


async def test_a_task_read_cancelled_midway_says_so_without_an_error(
    zs: Session, emulator: Emulator, spans: InMemorySpanExporter
) -> None:
    """A wait cancelled during a task read: the read's span says ``zimage.stopped``."""
    handle = await zs.submit("a fox")
    emulator.faults = FaultPlan.random(FaultRule(kind="slow", endpoint="task", delay_seconds=5))
    waiting = asyncio.ensure_future(handle.wait())
    await until(lambda: GET_TASK in OPEN.spans.values())
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    read = _one(spans, GET_TASK)
    assert _attributes(read)["zimage.stopped"] is True
    assert read.status.status_code is not StatusCode.ERROR
    assert _exception_types(read) == []
