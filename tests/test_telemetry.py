"""OpenTelemetry: one span per task, a child per HTTP call, nothing without the extra."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from zimage_async import Session, TaskFailedError

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def _provider() -> None:
    """Install, once per process, an SDK provider that keeps spans in memory."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def _task_span(finished: tuple[ReadableSpan, ...]) -> ReadableSpan:
    (task,) = [s for s in finished if s.name == "zimage.task"]
    return task


async def test_a_generation_is_one_task_span_with_its_calls(
    zs: Session, spans: InMemorySpanExporter
) -> None:
    """Submit to delivered image: a task span with the create, the reads and the image."""
    result = await zs.generate("a traced fox [[duration:0.2]]")
    finished = spans.get_finished_spans()
    task = _task_span(finished)
    attributes = dict(task.attributes or {})
    assert attributes["zimage.task_id"] == result.task.id
    assert attributes["zimage.outcome"] == "delivered"
    assert int(str(attributes["zimage.polls"])) >= 1
    assert "zimage.credits_reserved" in attributes
    assert "zimage.detection_lag_max_s" in attributes
    children = [
        s for s in finished if s.parent is not None and s.parent.span_id == task.context.span_id
    ]
    names = [s.name for s in children]
    assert names.count("POST /v1/images/generations") == 1
    assert names.count("GET /v1/tasks/{id}") == attributes["zimage.polls"]
    assert names.count("GET image") == 1


async def test_a_failed_task_ends_its_span_as_an_error(
    zs: Session, spans: InMemorySpanExporter
) -> None:
    """A task that fails ends its span with an error status and the failure recorded."""
    with pytest.raises(TaskFailedError):
        await zs.generate("refused [[fail:content_policy_violation]]")
    task = _task_span(spans.get_finished_spans())
    assert task.status.status_code is StatusCode.ERROR
    assert dict(task.attributes or {})["zimage.outcome"] == "failed"
    assert any(event.name == "exception" for event in task.events)


def test_nothing_is_imported_without_the_extra() -> None:
    """Without opentelemetry installed, the SDK works and never tries to load it again."""
    script = (
        "import sys, asyncio\n"
        "sys.modules['opentelemetry'] = None  # as if the extra were not installed\n"
        "import zimage_async\n"
        "from zimage_async.emulator import Emulator\n"
        "async def main():\n"
        "    async with Emulator(task_duration=0.05) as emu:\n"
        "        key, url = emu.api_key, emu.base_url\n"
        "        async with zimage_async.Session(api_key=key, base_url=url) as zs:\n"
        "            await zs.generate('untraced')\n"
        "asyncio.run(main())\n"
    )
    subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", script], check=True, cwd=Path(__file__).parents[1], timeout=60
    )


def test_import_does_not_load_opentelemetry() -> None:
    """``import zimage_async`` leaves opentelemetry unloaded until a span is made."""
    code = "import sys, zimage_async; assert 'opentelemetry' not in sys.modules"
    subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1], timeout=60
    )


class _CountingEnviron(dict[str, str]):
    """An environment that counts the lookups of the tracer provider's variable."""

    lookups = 0

    def __contains__(self, key: object) -> bool:
        if key == "OTEL_PYTHON_TRACER_PROVIDER":
            _CountingEnviron.lookups += 1
        return super().__contains__(key)


def test_without_a_provider_the_environment_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """No provider set in code: the provider variable is looked up once, not per request."""
    from zimage_async import _telemetry

    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    monkeypatch.setattr(_telemetry, "_provider_named", [])
    monkeypatch.setattr(_CountingEnviron, "lookups", 0)
    monkeypatch.setattr(os, "environ", _CountingEnviron())
    assert [_telemetry.task_span() for _ in range(3)] == [_telemetry.NO_SPAN] * 3
    with _telemetry.child_span("GET /v1/tasks/{id}") as span:
        assert span is None
    assert _CountingEnviron.lookups == 1
