"""The in-memory spans of the tests of telemetry, every started span watched."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from .test_telemetry import _EXPORTER

__all__ = ["OPEN", "attributes", "one_span", "task_spans", "watched_spans"]


class _Open(SpanProcessor):
    """The spans started and not ended yet: span id -> name."""

    def __init__(self) -> None:
        self.spans: dict[int, str] = {}

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.spans[span.context.span_id] = span.name

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.pop(span.context.span_id, None)


#: The spans started and not ended yet: span id -> name.
OPEN = _Open()
_watching: list[TracerProvider] = []


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
        provider.add_span_processor(OPEN)
        _watching.append(provider)
    _EXPORTER.clear()
    OPEN.spans.clear()
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
