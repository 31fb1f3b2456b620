"""OpenTelemetry spans, when the ``otel`` extra is installed; nothing at all otherwise.

One span per task, ``zimage.task``, from the create call to the delivered (or failed)
result, with a child span per HTTP call made for it: the create's tries, each task read,
each image download. The task span carries the task id, the number of polls and
retries, an upper bound of the detection lag (the time between the last look that saw
the task running and the one that saw it end), the credits reserved and the outcome.
The session keeps the task spans still open, to end them when it closes; a handle
dropped with its span open ends it (``abandoned``).

``opentelemetry-api`` is imported on the first span, never by ``import zimage_async``;
without it every function here returns at once. Whether spans are recorded and where
they go is the application's choice, through the OpenTelemetry SDK.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import os
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._models import Task

__all__ = [
    "NO_CHILD",
    "NO_SPAN",
    "TaskSpan",
    "child_span",
    "current_span",
    "end_open_spans",
    "handle_span",
    "task_span",
]

_NAME = "zimage_async"


@functools.lru_cache(maxsize=1)
def _api() -> Any:
    """Return ``opentelemetry.trace``, or None when the extra is not installed."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    return trace


_tracers: dict[int, tuple[Any, Any]] = {}  # id(provider) -> (provider, its tracer)
#: The variable that names a tracer provider to load; read once, into _provider_named.
_PROVIDER_VARIABLE = "OTEL_PYTHON_TRACER_PROVIDER"
_provider_named: list[bool] = []


def _no_provider(trace: Any) -> bool:
    """Whether no tracer provider is installed, without reading the environment each time.

    OpenTelemetry's ``get_tracer_provider()`` looks up ``OTEL_PYTHON_TRACER_PROVIDER``
    in the environment on every call while no provider is set in code: that lookup is
    done once here. A provider set in code later is still seen at once.
    """
    if getattr(trace, "_TRACER_PROVIDER", True) is not None:
        return False  # one is set in code (or this API keeps it elsewhere): ask the API
    if not _provider_named:
        _provider_named.append(_PROVIDER_VARIABLE in os.environ)
    return not _provider_named[0]


def _tracer() -> Any:
    """Return the tracer, or None while no provider that can record spans is installed.

    Without one (the API alone, or its no-op provider) every span would be a no-op
    anyway: none is made, which saves each HTTP call the work. The tracer is made once
    per provider.
    """
    trace = _api()
    if trace is None or _no_provider(trace):
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None
    known = _tracers.get(id(provider))
    if known is None or known[0] is not provider:
        from ._version import __version__

        known = _tracers[id(provider)] = (provider, provider.get_tracer(_NAME, __version__))
    return known[1]


class TaskSpan:
    """The span of one task (a stand-in that does nothing when telemetry is off).

    Made with a started *span*, or with *task_id* alone for one that the handle's first
    wait starts (:meth:`resume`). While it is open it sits in its session's set of open
    spans (see :meth:`watch`), which it leaves when it ends.
    """

    def __init__(self, span: Any, *, task_id: str | None = None) -> None:
        self._span = span
        self.polls = 0
        self.retries = 0
        self._ended = False
        self._stopped = False  # ended by a wait that stopped: a later wait starts anew
        self._pending = task_id is not None and span is None  # started by the first wait
        self._task_id: object = task_id
        self._running_seen: float | None = None
        self._completed = False  # the last snapshot seen was completed
        self._open: builtins.set[TaskSpan] | None = None  # the session's, once watched
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # where a finalizer ends it

    @property
    def recording(self) -> bool:
        """Whether there is a real span behind this one."""
        return self._span is not None

    def set(self, key: str, value: object) -> None:
        """Set attribute ``zimage.<key>`` (ignored for None values)."""
        if self._span is not None and value is not None:
            if key == "task_id":
                self._task_id = value
            self._span.set_attribute(f"zimage.{key}", value)

    def observe(self, task: Task, now: float) -> None:
        """Put what a snapshot of the task, seen at *now* (the loop's clock), tells."""
        if self._span is None:
            return
        if task.usage is not None:
            self.set("credits_reserved", task.usage.credits_reserved)
        if not task.is_terminal:
            self._running_seen = now
        elif self._running_seen is not None:
            # The task ended between the last look that saw it running and this one.
            self.set("detection_lag_max_s", now - self._running_seen)
            self._running_seen = None
        self._saw(task)

    def _saw(self, task: Task) -> None:
        """Note how *task* stands: completed or not, and its status as sent when it ended."""
        status = task.status
        self._completed = status.value == "completed"
        if task.is_terminal and task.raw_status != status.value:
            self.set("raw_status", task.raw_status)

    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        """Make this span the current one for the block (its HTTP calls become children).

        The block must not span a ``yield`` of an async generator.
        """
        if self._span is None:
            yield
            return
        with _api().use_span(self._span, end_on_exit=False):
            yield

    def end(self, outcome: str, *, error: BaseException | None = None, failed: bool = True) -> None:
        """End the span once, with its counters and *outcome*, for good.

        *error* is recorded as the span's exception; with *failed* it also gives the span
        an error status. A span ended here is never started again (see :meth:`stop`).
        """
        if self._span is None or self._ended:
            return
        self._ended = True
        self._unwatch()
        self.set("polls", self.polls)
        self.set("retries", self.retries)
        self.set("outcome", outcome)
        if error is not None:
            self._span.record_exception(error)
            if failed:
                from opentelemetry.trace import Status, StatusCode

                self._span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        self._span.end()

    def fail(self, task: Task, failure: BaseException) -> None:
        """End the span of a *task* that ended without a result: *failure* is its error.

        The outcome is the task's status (``failed``, ``cancelled``), or ``no results``
        for a completed task without any link (:class:`~zimage_async.NoResultsError`).
        """
        from ._exceptions import NoResultsError

        if self._span is None or self._ended:
            return
        self._saw(task)
        outcome = "no results" if isinstance(failure, NoResultsError) else task.status.value
        self.end(outcome, error=failure)

    def stop(self, exc: BaseException) -> None:
        """End the span of a wait that *exc* stopped before the handle's work was done.

        A :class:`~zimage_async.WaitTimeoutError` ends it as ``timeout``, a cancellation
        as ``stopped`` (neither an error: the task goes on), anything else as ``error``.
        The task may still be delivered: the next wait starts a new span (:meth:`resume`).
        An async generator closed by its consumer (``GeneratorExit``) ends nothing.
        """
        from ._exceptions import WaitTimeoutError

        if self._span is None or self._ended or isinstance(exc, GeneratorExit):
            return
        if isinstance(exc, WaitTimeoutError):
            self.end("timeout", error=exc, failed=False)
        elif isinstance(exc, Exception):
            self.end("error", error=exc)
        else:  # CancelledError, KeyboardInterrupt, SystemExit: the wait was stopped
            self.end("stopped")
        self._stopped = True

    def resume(self, last: Task | None = None) -> None:
        """Start the span, at a handle's first wait, or anew after a wait that stopped.

        A handle made from a task id starts its span with its first wait (*last* is the
        snapshot in hand). After a wait that stopped ended it, the new span carries the
        task id, counts its own polls and retries, is marked ``resumed`` and links to
        the span it follows. A span ended for good (delivered, saved, failed) stays ended.
        """
        if not (self._stopped or self._pending):
            return
        tracer = _tracer()
        if tracer is None:
            return
        links = [] if self._pending else [_api().Link(self._span.get_span_context())]
        self._span = tracer.start_span("zimage.task", links=links)
        self._ended = self._stopped = self._pending = False
        self.polls = self.retries = 0
        self._running_seen = None
        self.set("task_id", self._task_id)
        if links:
            self.set("resumed", True)
        if last is not None:
            self._saw(last)

    def watch(self, owner: object, open_spans: builtins.set[TaskSpan]) -> None:
        """Keep this span, while it is open, in *open_spans*; end it if *owner* is collected.

        *owner* is the handle whose span this is: should it be garbage-collected with the
        span open (a handle dropped without waiting), the span ends as ``abandoned``. The
        finalizer holds no reference to *owner*, and never runs while *owner* is referenced
        (nor at the interpreter's exit). Nothing is kept while the span is not recording.
        """
        if self._span is None or self._ended or not self._span.is_recording():
            return  # a span the sampler dropped records nothing: none to end
        self._open = open_spans
        open_spans.add(self)
        if self._finalizer is None:
            with contextlib.suppress(RuntimeError):  # no running loop: ended where collected
                self._loop = asyncio.get_running_loop()
            self._finalizer = weakref.finalize(owner, self._collected)
            self._finalizer.atexit = False

    def _unwatch(self) -> None:
        """Leave the session's open spans, and drop the finalizer (the span has ended)."""
        if self._open is not None:
            self._open.discard(self)
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None

    def _collected(self) -> None:
        """End the span of a handle that was garbage-collected, on its loop if it runs.

        A finalizer runs wherever the collector does, perhaps in the middle of another
        span's export: the end is handed to the event loop, unless it is closed.
        """
        with contextlib.suppress(Exception):  # closed meanwhile: ended here instead
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self.abandon)
                return
        self.abandon()

    def abandon(self) -> None:
        """End the span as ``abandoned`` (not an error); never raises."""
        with contextlib.suppress(Exception):  # a finalizer must let nothing escape
            self.end("abandoned")

    def close(self) -> None:
        """End the span because its session closes: ``completed`` or ``closed``, no error.

        ``completed`` when the last snapshot seen was completed (the images were not
        fetched), else ``closed``.
        """
        self.end("completed" if self._completed else "closed")


def end_open_spans(open_spans: set[TaskSpan]) -> None:
    """End every span still in *open_spans* (a session closes): see :meth:`TaskSpan.close`.

    A span that cannot be ended (a broken exporter) is left: the session closes anyway.
    """
    while open_spans:
        span = open_spans.pop()
        with contextlib.suppress(Exception):
            span.close()


#: A task span that records nothing.
NO_SPAN = TaskSpan(None)


def task_span() -> TaskSpan:
    """Start a ``zimage.task`` span (not made current), or return the no-op one."""
    tracer = _tracer()
    if tracer is None:
        return NO_SPAN
    return TaskSpan(tracer.start_span("zimage.task"))


def handle_span(
    started: TaskSpan | None, task_id: str, owner: object, open_spans: set[TaskSpan]
) -> TaskSpan:
    """Return the task span of a new handle, *owner*, of task *task_id*.

    *started* is the span the create call started, if it made this task; else the span
    is started by the handle's first wait (:meth:`TaskSpan.resume`), so that a handle
    only looked at (``refresh()``) starts none. While telemetry is off: the no-op span.
    """
    if started is None:
        return NO_SPAN if _tracer() is None else TaskSpan(None, task_id=task_id)
    started.set("task_id", task_id)
    started.watch(owner, open_spans)
    return started


def current_span() -> Any:
    """Return the current OpenTelemetry span, or None when telemetry is off."""
    trace = _api()
    return None if trace is None else trace.get_current_span()


#: What :func:`child_span` returns while no span can be recorded: one shared, reusable
#: context manager instead of a generator and its wrapper per HTTP call.
NO_CHILD: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()


def child_span(
    name: str, *, parent: TaskSpan | None = None, key: str = "", value: object = None
) -> contextlib.AbstractContextManager[Any]:
    """Open a span for one HTTP call, a child of *parent* (else of the current span).

    *key* names one attribute to set to *value* (when it is not None). Yields the span
    (or None when telemetry is off) so the caller can add the status; an exception
    leaving the block marks it as an error.
    """
    tracer = _tracer()
    if tracer is None:
        return NO_CHILD
    return _child_span(tracer, name, parent, {key: value} if key else {})


@contextlib.contextmanager
def _child_span(
    tracer: Any, name: str, parent: TaskSpan | None, attributes: dict[str, object]
) -> Iterator[Any]:
    context = None
    if parent is not None and parent.recording:
        context = _api().set_span_in_context(parent._span)
    # Not made current: the block may be the body of an async generator.
    span = tracer.start_span(name, context=context)
    try:
        for key, value in attributes.items():
            if value is not None:
                span.set_attribute(key, value)
        yield span
    except Exception as exc:
        from opentelemetry.trace import Status, StatusCode

        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    except GeneratorExit:  # a stream closed early by its consumer: nothing went wrong
        raise
    except BaseException:  # cancelled (or Ctrl-C): stopped, not failed, as a wait
        span.set_attribute("zimage.stopped", True)
        raise
    finally:
        span.end()
