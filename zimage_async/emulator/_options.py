"""The emulator's options that are checked before anything is built or bound."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, get_args

from ._idempotency import IdempotencyMode
from ._origin import ImageFraming

__all__ = ["CallbackMode", "check_options"]

CallbackMode = Literal["strict", "permissive"]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_seconds(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value) and value > 0
    except OverflowError:  # an int too large for a float
        return False


def _check_keys(api_keys: Sequence[str]) -> tuple[str, ...]:
    if isinstance(api_keys, (str, bytes)):
        raise ValueError(
            "api_keys must be a sequence of keys such as ('my-key',), not a single string "
            "(it would be taken one character at a time)."
        )
    keys = tuple(api_keys)
    if not keys or not all(isinstance(key, str) and key.strip() == key and key for key in keys):
        raise ValueError("api_keys must hold at least one non-empty key without spaces.")
    return keys


def check_options(
    *,
    api_keys: Sequence[str],
    ports: tuple[int, int],
    callback_mode: str,
    idempotency: str,
    image_framing: str,
    images_per_task: int,
    link_ttl: float,
    callback_retry_delays: Sequence[float],
    callback_timeout: float,
) -> tuple[str, ...]:
    """Raise ValueError for the first option out of its range; return the API keys."""
    keys = _check_keys(api_keys)
    for name, port in zip(("port", "image_port"), ports, strict=True):
        if not (_is_int(port) and 0 <= port <= 65535):
            raise ValueError(f"{name} must be an int from 0 (a free port) to 65535, got {port!r}.")
    if callback_mode not in ("strict", "permissive"):
        raise ValueError(f"callback_mode must be 'strict' or 'permissive': {callback_mode!r}.")
    if idempotency not in get_args(IdempotencyMode):
        raise ValueError(f"idempotency must be 'honour' or 'ignore', got {idempotency!r}.")
    if image_framing not in get_args(ImageFraming):
        raise ValueError(
            f"image_framing must be 'length', 'chunked' or 'close', got {image_framing!r}."
        )
    if not (_is_int(images_per_task) and 1 <= images_per_task <= 16):
        raise ValueError(f"images_per_task must be an int from 1 to 16, got {images_per_task!r}.")
    if not math.isfinite(link_ttl) or link_ttl <= 0:
        raise ValueError(f"link_ttl must be a positive number of seconds, got {link_ttl!r}.")
    if any(not math.isfinite(d) or d < 0 for d in callback_retry_delays):
        raise ValueError("callback_retry_delays must be finite numbers of seconds >= 0.")
    if not _positive_seconds(callback_timeout):
        raise ValueError(
            "callback_timeout must be a finite number of seconds above 0, "
            f"got {callback_timeout!r}."
        )
    return keys
