"""What the emulator received: one record per request, plus counts per endpoint.

Endpoints are ``create``, ``task``, ``image`` (the image origin), ``callback`` (delivery
attempts the emulator made) and ``other`` (unknown routes and wrong methods). The value of
an ``Authorization`` header is never stored: it is replaced by :data:`REDACTED`.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable

import attrs

__all__ = ["REDACTED", "RequestLog", "RequestRecord"]

REDACTED = "<present>"
"""What a recorded ``Authorization`` header's value is replaced with."""


def _redact(headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple(
        (name, REDACTED if name.lower() == "authorization" else value) for name, value in headers
    )


@attrs.frozen(kw_only=True)
class RequestRecord:
    """One request received: endpoint, method, path, the status answered and the headers.

    ``status`` is None when no reply was sent (an injected connection reset). ``replayed``
    tells whether the reply was an idempotent replay (``idempotency-replayed: true``).
    """

    endpoint: str
    method: str
    path: str
    status: int | None
    headers: tuple[tuple[str, str], ...] = attrs.field(converter=_redact)
    replayed: bool = False

    def header(self, name: str) -> str | None:
        """Return the first value of header *name* (any case), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)


class RequestLog:
    """Received requests, oldest first, and counts per endpoint."""

    def __init__(self) -> None:
        self._records: list[RequestRecord] = []
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
        """All received requests, oldest first."""
        return tuple(self._records)

    def counts(self) -> dict[str, int]:
        """Return the number of requests per endpoint."""
        return dict(self._counts)
