"""The billing ledger: one entry per accepted (billed) create call.

A replayed create (same ``Idempotency-Key``, same body) is not billed and adds no entry.

An entry keeps the request body's documented fields whole (``model``, ``prompt``,
``size``, ``seed``, ``nsfw_check``, ``callback_url``: all checked, so all small) and
its unknown fields, in the order received, while their compact JSON totals at most
4096 bytes (:data:`MAX_UNKNOWN_FIELD_BYTES`); an unknown field that does not fit is left
out, so a 1 MB field sent with every create is not kept with every billed task.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

import attrs

__all__ = ["KNOWN_FIELDS", "MAX_UNKNOWN_FIELD_BYTES", "Ledger", "LedgerEntry", "LedgerGrouping"]

LedgerGrouping = Literal["prompt", "idempotency_key"]

KNOWN_FIELDS = frozenset({"model", "prompt", "size", "seed", "nsfw_check", "callback_url"})
"""The create body's documented fields, kept whole in a ledger entry."""

MAX_UNKNOWN_FIELD_BYTES = 4096
"""The compact JSON bytes of unknown fields a ledger entry keeps in all."""

_SMALLEST_FIELD_BYTES = len('"":0,')


def _json_bytes(value: object) -> int | None:
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return None
    return len(text.encode("utf-8", "surrogatepass"))


def kept_body(body: Mapping[str, object]) -> Mapping[str, object]:
    """Return the part of a create *body* a ledger entry keeps (see the module doc)."""
    kept: dict[str, object] = {}
    room = MAX_UNKNOWN_FIELD_BYTES
    for name, value in body.items():
        if name in KNOWN_FIELDS:
            kept[name] = value
            continue
        if room < _SMALLEST_FIELD_BYTES:
            continue
        name_bytes = _json_bytes(name)
        if name_bytes is None or name_bytes + _SMALLEST_FIELD_BYTES > room:
            continue
        value_bytes = _json_bytes(value)
        if value_bytes is None:
            continue
        cost = name_bytes + value_bytes + 2  # the colon and the comma
        if cost <= room:
            kept[name] = value
            room -= cost
    return MappingProxyType(kept)


@attrs.frozen(kw_only=True)
class LedgerEntry:
    """A billed task: its id, the request body as received, the clock time of creation.

    ``request_body`` holds the documented fields as received and the unknown ones up to
    :data:`MAX_UNKNOWN_FIELD_BYTES` of JSON (see the module doc). ``idempotency_key`` is the
    ``Idempotency-Key`` header the create carried (None without one); it is recorded with
    ``idempotency="ignore"`` too. ``api_key`` is the API key the create was billed to
    (None for an entry made without one); it is left out of the repr.
    """

    task_id: str
    request_body: Mapping[str, object] = attrs.field(converter=kept_body)
    created_at: float
    credits: float
    idempotency_key: str | None = None
    api_key: str | None = attrs.field(default=None, repr=False)

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
        self,
        *,
        prompt: str | None = None,
        idempotency_key: str | None = None,
        api_key: str | None = None,
    ) -> tuple[LedgerEntry, ...]:
        """Return the entries matching every criterion given (None: any), oldest first."""
        return tuple(
            entry
            for entry in self._entries
            if (prompt is None or entry.prompt == prompt)
            and (idempotency_key is None or entry.idempotency_key == idempotency_key)
            and (api_key is None or entry.api_key == api_key)
        )

    def counts(self, by: LedgerGrouping) -> dict[str | None, int]:
        """Return the number of billed tasks per prompt or per idempotency key."""
        if by not in ("prompt", "idempotency_key"):
            raise ValueError(f"by must be 'prompt' or 'idempotency_key', not {by!r}.")
        counter: collections.Counter[str | None] = collections.Counter(
            entry.prompt if by == "prompt" else entry.idempotency_key for entry in self._entries
        )
        return dict(counter)
