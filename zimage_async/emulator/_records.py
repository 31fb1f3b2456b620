"""What the emulator received: one record per request, plus counts per endpoint.

Endpoints are ``create``, ``task``, ``image`` (the image origin), ``callback`` (delivery
attempts the emulator made) and ``other`` (unknown routes and wrong methods). The value of
an ``Authorization`` header is never stored: it is replaced by :data:`REDACTED`.

What is kept is bounded, however many requests arrive and however large they are: the log
holds the newest 5,000 records (:data:`REQUEST_LOG_SIZE`; the counts per endpoint count
every request). A record keeps the path (with its query) cut to 2048 characters and at
most 32 headers in the order received, each name and value cut to 256 characters and
4096 characters of them in all (the headers past that are left out); the method is cut
to 32 characters.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable

import attrs

__all__ = [
    "MAX_HEADER_CHARS",
    "MAX_PATH_CHARS",
    "MAX_RECORDED_HEADERS",
    "MAX_RECORDED_HEADER_CHARS",
    "REDACTED",
    "REQUEST_LOG_SIZE",
    "RequestLog",
    "RequestRecord",
]

REDACTED = "<present>"
"""What a recorded ``Authorization`` header's value is replaced with."""

REQUEST_LOG_SIZE = 5_000
"""The number of request records kept (the newest); older ones are dropped."""

MAX_RECORDED_HEADERS = 32
"""The number of headers a record keeps, the first ones received."""

MAX_HEADER_CHARS = 256
"""The characters a recorded header name or value is cut to."""

MAX_RECORDED_HEADER_CHARS = 4096
"""The characters of header names and values a record keeps in all."""

MAX_PATH_CHARS = 2048
"""The characters a recorded path (with its query) is cut to."""

_MAX_METHOD_CHARS = 32


def _kept_headers(headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    kept: list[tuple[str, str]] = []
    room = MAX_RECORDED_HEADER_CHARS
    for name, value in headers:
        if len(kept) == MAX_RECORDED_HEADERS:
            break
        short_name = name[:MAX_HEADER_CHARS]
        redacted = short_name.lower() == "authorization"
        short_value = REDACTED if redacted else value[:MAX_HEADER_CHARS]
        room -= len(short_name) + len(short_value)
        if room < 0:
            break
        kept.append((short_name, short_value))
    return tuple(kept)


def _cut_path(path: str) -> str:
    return path[:MAX_PATH_CHARS]


def _cut_method(method: str) -> str:
    return method[:_MAX_METHOD_CHARS]


@attrs.frozen(kw_only=True)
class RequestRecord:
    """One request received: endpoint, method, path, the status answered and the headers.

    ``status`` is None when no reply was sent (an injected connection reset). ``replayed``
    tells whether the reply was an idempotent replay (``idempotency-replayed: true``).
    The path and headers are kept within the limits the module describes.
    """

    endpoint: str
    method: str = attrs.field(converter=_cut_method)
    path: str = attrs.field(converter=_cut_path)
    status: int | None
    headers: tuple[tuple[str, str], ...] = attrs.field(converter=_kept_headers)
    replayed: bool = False

    def header(self, name: str) -> str | None:
        """Return the first value of header *name* (any case), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)


class RequestLog:
    """The newest received requests, oldest first, and counts of every request per endpoint.

    *size* records are kept (default :data:`REQUEST_LOG_SIZE`); adding one more drops the
    oldest.
    """

    def __init__(self, size: int | None = None) -> None:
        maxlen = REQUEST_LOG_SIZE if size is None else size
        self._records: collections.deque[RequestRecord] = collections.deque(maxlen=maxlen)
        self._counts: collections.Counter[str] = collections.Counter()

    def add(self, record: RequestRecord) -> None:
        """Record one received request."""
        self._records.append(record)
        self._counts[record.endpoint] += 1

    def count(self, endpoint: str) -> None:
        """Count an event that has no request record (a callback delivery attempt)."""
        self._counts[endpoint] += 1

    @property
    def records(self) -> tuple[RequestRecord, ...]:
        """The requests kept (the newest :data:`REQUEST_LOG_SIZE`), oldest first."""
        return tuple(self._records)

    def counts(self) -> dict[str, int]:
        """Return the number of requests per endpoint."""
        return dict(self._counts)
