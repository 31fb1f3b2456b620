"""Every task span ends: after updates(), at the session's close, when its handle is dropped.

A span started and never ended is never exported: these tests watch every span started
(test_telemetry_spans_end's processor) besides the exported ones.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from zimage_async import Session, TaskHandle
from zimage_async import _telemetry as telemetry
from zimage_async.emulator import Emulator

from ._spans import OPEN, task_spans, watched_spans
from ._spans import attributes as _attributes
from .conftest import FAST_POLL, FAST_RETRY, until

GET_TASK = "GET /v1/tasks/{id}"


@pytest.fixture
def spans(caplog: pytest.LogCaptureFixture) -> Iterator[InMemorySpanExporter]:
    """The process's in-memory exporter, emptied, with every started span watched."""
    yield from watched_spans(caplog)


def _opentask_spans() -> list[str]:
    return [name for name in OPEN.spans.values() if name == "zimage.task"]


async def _session(emulator: Emulator) -> Session:
    return await Session(
        api_key=emulator.api_key,
        base_url=emulator.base_url,
        poll=FAST_POLL,
        retry=FAST_RETRY,
        seed=1,
    ).open()


# -- updates() to the end of a task that did not complete ----------------------------------


@pytest.mark.parametrize(
    ("prompt", "outcome"),
    [("refused [[fail:content_policy_violation]]", "failed"), ("dropped [[cancel]]", "cancelled")],
)
async def test_updates_to_the_end_of_a_task_that_did_not_complete_ends_its_span(
    zs: Session, spans: InMemorySpanExporter, prompt: str, outcome: str
) -> None:
    """updates() run to a failed or cancelled end ends the span: the status, an error."""
    handle = await zs.submit(prompt)
    seen = [task async for task in handle.updates()]
    assert seen[-1].status.value == outcome
    assert _opentask_spans() == []
    (task,) = task_spans(spans)
    assert _attributes(task)["zimage.outcome"] == outcome
    assert _attributes(task)["zimage.task_id"] == handle.id
    assert task.status.status_code is StatusCode.ERROR
    assert task.status.description == "TaskFailedError"
    exceptions = [e for e in task.events if e.name == "exception"]
    assert [
        str(dict(e.attributes or {})["exception.type"]).rsplit(".", 1)[-1] for e in exceptions
    ] == ["TaskFailedError"]


async def test_updates_left_at_a_failed_snapshot_has_ended_the_span(
    zs: Session, spans: InMemorySpanExporter
) -> None:
    """A loop that stops at the failed snapshot (break) finds the span ended too."""
    handle = await zs.submit("refused [[fail:content_policy_violation]]")
    updates = handle.updates()
    async for task in updates:
        if task.is_terminal:
            break
    await updates.aclose()
    assert [_attributes(s)["zimage.outcome"] for s in task_spans(spans)] == ["failed"]


# -- a handle made from an id starts its span with its first wait ---------------------------


async def test_a_handle_from_an_id_starts_no_task_span_to_refresh(
    zs: Session, spans: InMemorySpanExporter
) -> None:
    """zs.task(id).refresh() starts no task span; its read is a child of the caller's span."""
    task_id = (await zs.generate("a fox")).task.id
    spans.clear()
    tracer = trace.get_tracer("tests")
    with tracer.start_as_current_span("caller") as caller:
        for _ in range(2):
            await zs.task(task_id).refresh()
    assert _opentask_spans() == []
    assert task_spans(spans) == []
    reads = [s for s in spans.get_finished_spans() if s.name == GET_TASK]
    assert len(reads) == 2
    assert {s.parent.span_id for s in reads if s.parent is not None} == {
        caller.get_span_context().span_id
    }


async def test_a_handle_from_an_id_starts_its_span_at_its_first_wait(
    zs: Session, spans: InMemorySpanExporter
) -> None:
    """The first wait of such a handle starts one task span, not resumed, with its reads."""
    task_id = (await zs.generate("a fox")).task.id
    spans.clear()
    handle = zs.task(task_id)
    await handle.refresh()
    assert _opentask_spans() == []
    await handle
    (task,) = task_spans(spans)
    attributes = _attributes(task)
    assert attributes["zimage.task_id"] == task_id
    assert attributes["zimage.outcome"] == "delivered"
    assert "zimage.resumed" not in attributes
    assert task.links == ()
    assert task.context is not None
    children = [
        s.name
        for s in spans.get_finished_spans()
        if s.parent is not None and s.parent.span_id == task.context.span_id
    ]
    assert children.count(GET_TASK) == attributes["zimage.polls"]
    assert "GET image" in children


# -- Session.close() ends the spans still open ----------------------------------------------


async def test_close_ends_the_span_of_a_task_waited_for_but_not_fetched_as_completed(
    emulator: Emulator, spans: InMemorySpanExporter
) -> None:
    """wait() leaves the span to a download; closing without one ends it, ``completed``."""
    session = await _session(emulator)
    handle = await session.submit("a fox")
    await handle.wait()
    assert _opentask_spans() == ["zimage.task"]
    await session.close()
    assert _opentask_spans() == []
    (task,) = task_spans(spans)
    assert _attributes(task)["zimage.outcome"] == "completed"
    assert task.status.status_code is not StatusCode.ERROR
    assert len(session._runtime.open_spans) == 0


async def test_close_ends_the_span_of_a_task_still_running_as_closed(
    emulator: Emulator, spans: InMemorySpanExporter
) -> None:
    """A handle never awaited, still held, when the session closes: ``closed``, no error."""
    session = await _session(emulator)
    handle = await session.submit("a slow fox [[duration:5]]")
    await session.close()
    assert _opentask_spans() == []
    (task,) = task_spans(spans)
    assert _attributes(task)["zimage.outcome"] == "closed"
    assert _attributes(task)["zimage.task_id"] == handle.id
    assert task.status.status_code is not StatusCode.ERROR
    assert len(session._runtime.open_spans) == 0


# -- a handle dropped with its span open -----------------------------------------------------


async def test_a_dropped_handle_ends_its_span_as_abandoned_and_the_session_keeps_nothing(
    zs: Session, spans: InMemorySpanExporter
) -> None:
    """Submit, keep the id, drop the handle: the span ends, ``abandoned``; nothing is kept."""
    kept = await zs.submit("a fox kept [[duration:5]]")
    dropped = await zs.submit("a fox dropped [[duration:5]]")
    task_id = dropped.id
    assert len(zs._runtime.open_spans) == 2
    del dropped
    gc.collect()
    await until(lambda: len(task_spans(spans)) == 1)
    (task,) = task_spans(spans)
    assert _attributes(task)["zimage.task_id"] == task_id
    assert _attributes(task)["zimage.outcome"] == "abandoned"
    assert task.status.status_code is not StatusCode.ERROR
    assert len(zs._runtime.open_spans) == 1
    # The handle still held keeps its span open, whatever the collector does.
    gc.collect()
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(task_spans(spans)) == 1
    assert kept._span.recording
    assert _opentask_spans() == ["zimage.task"]


async def test_a_span_the_sampler_drops_is_not_kept(
    zs: Session, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A span that records nothing (sampled out) is neither kept nor watched for its end."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    tracer = telemetry._tracer()
    assert tracer is not None
    monkeypatch.setattr(tracer, "sampler", ALWAYS_OFF)
    handles = [await zs.submit(f"a fox {n} [[duration:5]]") for n in range(3)]
    assert not any(handle._span._span.is_recording() for handle in handles)
    assert len(zs._runtime.open_spans) == 0
    assert all(handle._span._finalizer is None for handle in handles)


async def test_a_handle_that_ended_its_span_leaves_nothing_behind(
    zs: Session, spans: InMemorySpanExporter
) -> None:
    """A delivered handle is out of the session's spans; dropping it ends nothing again."""
    handle = await zs.submit("a fox")
    await handle
    assert len(zs._runtime.open_spans) == 0
    del handle
    gc.collect()
    for _ in range(5):
        await asyncio.sleep(0)
    assert [_attributes(s)["zimage.outcome"] for s in task_spans(spans)] == ["delivered"]


def test_ending_from_a_finalizer_lets_no_exception_escape() -> None:
    """A collected owner whose span cannot end (a broken exporter): nothing escapes.

    No running loop here: the finalizer ends the span where the collector runs it. An
    exception escaping it would be an unraisable one, which pytest turns into an error.
    """

    class Broken:
        def is_recording(self) -> bool:
            return True

        def set_attribute(self, key: str, value: object) -> None:
            raise RuntimeError("the exporter broke")

        def end(self) -> None:
            raise RuntimeError("the exporter broke")

    class Owner:
        pass

    open_spans: set[telemetry.TaskSpan] = set()
    span = telemetry.TaskSpan(Broken())
    owner = Owner()
    span.watch(owner, open_spans)
    assert open_spans == {span}
    del owner
    gc.collect()
    assert open_spans == set()
    span.abandon()  # called again, directly: no exception either


async def test_nothing_is_kept_per_task_while_tracing_is_off(
    zs: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a provider, handles have the no-op span, and the session keeps no span."""
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    monkeypatch.setattr(telemetry, "_provider_named", [False])
    handle: TaskHandle = await zs.submit("an untraced fox")
    other = zs.task(handle.id)
    await handle.wait()
    await other.refresh()
    assert handle._span is telemetry.NO_SPAN
    assert other._span is telemetry.NO_SPAN
    assert len(zs._runtime.open_spans) == 0
    finalizers: list[Any] = [handle._span._finalizer, other._span._finalizer]
    assert finalizers == [None, None]
