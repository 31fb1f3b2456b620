"""The idempotency ledger: which task each ``Idempotency-Key`` made, for replays.

Not on the provider's page; seen in the gateway family, whose newest official client sends
``Idempotency-Key`` (16 to 96 characters) on every paid POST. Keys belong to the API key
that sent them: the same ``Idempotency-Key`` under another API key is another key. With the
emulator's ``idempotency="honour"`` (the default):

- a key of another length is refused with ``400 invalid_request_error``,
  ``param: "Idempotency-Key"``;
- a key used within the last 24 hours (on the emulator's clock) with the same body
  (compared as parsed JSON, so key order and spacing do not matter) answers 200 with the
  task that key made, *as it stands now*, and the response header
  ``idempotency-replayed: true``; nothing is billed;
- the same key with another body is refused with ``409 idempotency_error``, naming the key's
  task;
- a key is remembered as soon as its task is billed, even when the reply is then lost to a
  fault (``http_500_after_create``, ``reset_after_create``, ``html_5xx_after_create``, ...),
  so a retry with the same key gets that task back.

With ``idempotency="ignore"`` the header is not looked at and every create bills, like the
provider's page describes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Literal

import attrs

from ._envelopes import ApiError

__all__ = [
    "IDEMPOTENCY_HEADER",
    "MAX_KEY_CHARS",
    "MIN_KEY_CHARS",
    "REPLAYED_HEADER",
    "REPLAY_WINDOW_SECONDS",
    "IdempotencyLedger",
    "IdempotencyMode",
    "KeyUse",
    "body_fingerprint",
    "check_key",
    "key_conflict",
]

IdempotencyMode = Literal["honour", "ignore"]
IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "idempotency-replayed"
MIN_KEY_CHARS = 16
MAX_KEY_CHARS = 96
REPLAY_WINDOW_SECONDS = 86_400.0


def body_fingerprint(body: Mapping[str, object]) -> str:
    """Return the SHA-256 (hex) of a create body's canonical text, equal for equal objects.

    A digest, not the text: a remembered key does not keep its body (up to 1 MiB) alive.

    >>> body_fingerprint({"b": 1, "a": "x"}) == body_fingerprint({"a": "x", "b": 1})
    True
    """
    text = json.dumps(
        dict(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain
    )
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _plain(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"Cannot fingerprint a {type(value).__name__}.")


def check_key(key: str) -> ApiError | None:
    """Return the 400 refusal for a key of the wrong length, or None for a usable key."""
    if MIN_KEY_CHARS <= len(key) <= MAX_KEY_CHARS:
        return None
    return ApiError(
        status=400,
        message=f"The {IDEMPOTENCY_HEADER} header must be {MIN_KEY_CHARS} to {MAX_KEY_CHARS} "
        f"characters long, got {len(key)}; send a longer random value such as a UUID.",
        type="invalid_request_error",
        param=IDEMPOTENCY_HEADER,
    )


def key_conflict(key: str, task_id: str) -> ApiError:
    """Return the 409 refusal for a key reused with a different body."""
    return ApiError(
        status=409,
        message=f"The {IDEMPOTENCY_HEADER} {key!r} was already used within 24 hours with a "
        f"different request body (it made the task {task_id!r}); send the same body to get "
        "that task back, or use a new key for a new request.",
        type="idempotency_error",
        param=IDEMPOTENCY_HEADER,
    )


@attrs.frozen(kw_only=True)
class KeyUse:
    """The first billed use of a key: the body's fingerprint, the task and the clock time."""

    key: str
    api_key: str = attrs.field(repr=False)
    fingerprint: str
    task_id: str
    at: float


class IdempotencyLedger:
    """Keys of billed creates, each with the task it made, per API key."""

    def __init__(self, *, window_seconds: float = REPLAY_WINDOW_SECONDS) -> None:
        self._window = window_seconds
        self._uses: dict[tuple[str, str], KeyUse] = {}

    def lookup(self, key: str, *, api_key: str, now: float) -> KeyUse | None:
        """Return *api_key*'s use of *key* still within the replay window at *now*, or None."""
        use = self._uses.get((api_key, key))
        if use is None or now - use.at >= self._window:
            return None
        return use

    def remember(
        self, key: str, *, api_key: str, fingerprint: str, task_id: str, now: float
    ) -> None:
        """Record that *api_key* made *task_id* with *key* at *now* (replacing an expired use)."""
        self._uses[(api_key, key)] = KeyUse(
            key=key, api_key=api_key, fingerprint=fingerprint, task_id=task_id, at=now
        )

    @property
    def uses(self) -> tuple[KeyUse, ...]:
        """Every remembered key use, oldest first."""
        return tuple(sorted(self._uses.values(), key=lambda use: use.at))
