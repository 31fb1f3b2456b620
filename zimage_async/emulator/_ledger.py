"""The billing ledger: one entry per accepted (billed) create call."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

__all__ = ["Ledger", "LedgerEntry"]


@attrs.frozen(kw_only=True)
class LedgerEntry:
    """A billed task: its id, the request body as received, and the clock time of creation."""

    task_id: str
    request_body: Mapping[str, object]
    created_at: float
    credits: float


class Ledger:
    """Billed tasks, oldest first."""

    def __init__(self) -> None:
        self._entries: list[LedgerEntry] = []

    def bill(self, entry: LedgerEntry) -> None:
        """Record one billed task."""
        self._entries.append(entry)

    @property
    def entries(self) -> tuple[LedgerEntry, ...]:
        """All billed tasks, oldest first."""
        return tuple(self._entries)
