"""What an error reporter would send: Sentry's SDK sending to memory, tracebacks with locals."""

from __future__ import annotations

import asyncio
import contextlib
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import sentry_sdk
import sentry_sdk.envelope
import sentry_sdk.transport


class CapturingTransport(sentry_sdk.transport.Transport):
    """A Sentry transport that keeps every envelope in memory and sends nothing."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.envelopes: list[sentry_sdk.envelope.Envelope] = []

    def capture_envelope(self, envelope: sentry_sdk.envelope.Envelope) -> None:
        self.envelopes.append(envelope)


def report(capture: CapturingTransport, error: BaseException) -> bytes:
    """Send *error* through Sentry and return the serialised envelope it produced."""
    try:
        raise error
    except BaseException:
        sentry_sdk.capture_exception()
    sentry_sdk.flush()
    events = [e for e in capture.envelopes if e.get_event() is not None]
    assert events, "Sentry produced no event"
    return events[-1].serialize()


def rendered(error: BaseException) -> str:
    """The error as a traceback with every frame's locals, chained causes included."""
    return "".join(traceback.TracebackException.from_exception(error, capture_locals=True).format())


@contextlib.asynccontextmanager
async def raw_server(
    answer: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[str]:
    """A raw TCP server on 127.0.0.1 running *answer* per connection; yields its base URL."""
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()
