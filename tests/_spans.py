"""The in-memory spans of the tests of telemetry, every started span watched."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from .test_telemetry import _EXPORTER
from .test_telemetry_spans_end import _OPEN, _watching

__all__ = ["OPEN", "attributes", "one_span", "task_spans", "watched_spans"]

#: The spans started and not ended yet: span id -> name.
OPEN = _OPEN


def watched_spans(caplog: pytest.LogCaptureFixture) -> Iterator[InMemorySpanExporter]:
    """Yield the process's in-memory exporter, emptied, with every started span watched.

    After the test, no span may have been ended twice (the SDK warns when one is).
    """
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    if provider not in _watching:
        provider.add_span_processor(_OPEN)
        _watching.append(provider)
    _EXPORTER.clear()
    _OPEN.spans.clear()
    caplog.set_level(logging.WARNING, logger="opentelemetry")
    yield _EXPORTER
    _EXPORTER.clear()
    assert not [r for r in caplog.records if "ended span" in r.getMessage()]


def task_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    """The exported ``zimage.task`` spans, in the order they ended."""
    return [s for s in exporter.get_finished_spans() if s.name == "zimage.task"]


def one_span(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    """The one exported span called *name*."""
    (span,) = [s for s in exporter.get_finished_spans() if s.name == name]
    return span


def attributes(span: ReadableSpan) -> dict[str, object]:
    """The attributes of *span*, as a dict."""
    return dict(span.attributes or {})
