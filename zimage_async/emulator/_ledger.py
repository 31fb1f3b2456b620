"""The billing ledger: one entry per accepted (billed) create call.

A replayed create (same ``Idempotency-Key``, same body) is not billed and adds no entry.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from typing import Literal

import attrs

__all__ = ["Ledger", "LedgerEntry", "LedgerGrouping"]

LedgerGrouping = Literal["prompt", "idempotency_key"]


@attrs.frozen(kw_only=True)
class LedgerEntry:
    """A billed task: its id, the request body as received, the clock time of creation.

    ``idempotency_key`` is the ``Idempotency-Key`` header the create carried (None without
    one); it is recorded with ``idempotency="ignore"`` too.
    """

    task_id: str
    request_body: Mapping[str, object]
    created_at: float
    credits: float
    idempotency_key: str | None = None

    @property
    def prompt(self) -> str:
        """The request's prompt."""
        return str(self.request_body.get("prompt", ""))


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

    def select(
        self, *, prompt: str | None = None, idempotency_key: str | None = None
    ) -> tuple[LedgerEntry, ...]:
        """Return the entries with this *prompt* and/or *idempotency_key*, oldest first."""
        return tuple(
            entry
            for entry in self._entries
            if (prompt is None or entry.prompt == prompt)
            and (idempotency_key is None or entry.idempotency_key == idempotency_key)
        )

    def counts(self, by: LedgerGrouping) -> dict[str | None, int]:
        """Return the number of billed tasks per prompt or per idempotency key."""
        if by not in ("prompt", "idempotency_key"):
            raise ValueError(f"by must be 'prompt' or 'idempotency_key', not {by!r}.")
        counter: collections.Counter[str | None] = collections.Counter(
            entry.prompt if by == "prompt" else entry.idempotency_key for entry in self._entries
        )
        return dict(counter)
