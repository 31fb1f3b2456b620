"""Shared aiohttp pieces: JSON replies, connection aborts, and the recording middleware.

The middleware records every request and makes sure nothing escapes as an unformatted
error.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from aiohttp import web
from aiohttp.typedefs import Middleware

from ._envelopes import ApiError
from ._records import RequestLog, RequestRecord

__all__ = [
    "ErrorRenderer",
    "RawReply",
    "abort_connection",
    "error_response",
    "error_then_close",
    "json_response",
    "middleware",
    "send_raw",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ErrorRenderer = Callable[[web.Request, int, str], web.Response]
"""Makes the reply for an HTTP error raised by the router (status, reason)."""


def json_response(
    body: object, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """Return a compact JSON reply."""
    return web.Response(
        status=status,
        body=json.dumps(body, separators=(",", ":")).encode(),
        content_type="application/json",
        headers=headers,
    )


def error_response(error: ApiError, *, headers: dict[str, str] | None = None) -> web.Response:
    """Return the JSON envelope reply for *error*."""
    return json_response(error.body(), status=error.status, headers=headers)


def abort_connection(request: web.Request) -> web.Response:
    """Drop the connection without a reply; the returned response is never sent."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=499)


class RawReply(web.Response):
    """Stands for a reply already written to the connection by :func:`send_raw`."""

    def __init__(self, sent_status: int) -> None:
        super().__init__(status=499)
        self.sent_status = sent_status


def send_raw(request: web.Request, data: bytes, *, status: int) -> web.Response:
    """Write the bytes of a whole reply to the connection, then close it cleanly."""
    transport = request.transport
    if transport is not None:
        transport.write(data)
        transport.close()
    return RawReply(status)


def error_then_close(request: web.Request, error: ApiError) -> web.Response:
    """Send the JSON envelope for *error* with ``Connection: close``, then close.

    For a body aiohttp could not read (a broken content coding): after an ordinary reply
    aiohttp would read the rest of that body, meet the same error again and log it as an
    unhandled exception. Closing the connection leaves nothing more to read.
    """
    payload = json.dumps(error.body(), separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    )
    return send_raw(request, head.encode("latin-1") + payload, status=error.status)


def _connection_dropped(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def middleware(
    *,
    log: RequestLog,
    classify: Callable[[web.Request], str],
    render_error: ErrorRenderer,
    on_crash: Callable[[BaseException], None],
) -> Middleware:
    """Return a middleware recording each request and turning every error into a reply.

    Router errors (404, 405, 413) become *render_error* replies; any other exception is
    passed to *on_crash* and answered with a 500 reply, so the client always gets a body
    of the documented shape (the emulator's tests assert *on_crash* is never called).
    """

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        response: web.StreamResponse
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = render_error(request, exc.status, exc.reason)
        except Exception as exc:  # last line of defence, reported via on_crash
            on_crash(exc)
            response = render_error(request, 500, "Internal server error")
        status = None if _connection_dropped(request) else response.status
        if isinstance(response, RawReply):
            status = response.sent_status
        log.add(
            RequestRecord(
                endpoint=classify(request),
                method=request.method,
                path=request.path_qs,
                status=status,
                headers=tuple(request.headers.items()),
                replayed=response.headers.get("idempotency-replayed") == "true",
            )
        )
        return response

    return record
