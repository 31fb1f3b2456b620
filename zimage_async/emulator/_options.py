"""The emulator's options that are checked before anything is built or bound."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal, get_args

from ._idempotency import IdempotencyMode
from ._numbers import finite_number, is_int, shown
from ._origin import ImageFraming

__all__ = ["CallbackMode", "check_options", "check_seed"]

CallbackMode = Literal["strict", "permissive"]


def _positive_seconds(value: object) -> bool:
    number = finite_number(value)
    return number is not None and number > 0


def _delays(value: object) -> bool:
    """Tell whether *value* is a sequence of finite numbers of seconds >= 0 (not a string)."""
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes, bytearray)):
        return False
    numbers = [finite_number(delay) for delay in value]
    return all(number is not None and number >= 0 for number in numbers)


def _check_keys(api_keys: Sequence[str]) -> tuple[str, ...]:
    if isinstance(api_keys, (str, bytes, bytearray)):
        raise ValueError(
            "api_keys must be a sequence of keys such as ('my-key',), not a single string "
            "(it would be taken one character at a time)."
        )
    if not isinstance(api_keys, Iterable):  # the keys are not quoted: they are secrets
        raise ValueError(
            "api_keys must be a sequence of keys such as ('my-key',), "
            f"got a {type(api_keys).__name__}."
        )
    keys = tuple(api_keys)
    if not keys or not all(isinstance(key, str) and key.strip() == key and key for key in keys):
        raise ValueError("api_keys must hold at least one non-empty key without spaces.")
    return keys


def check_seed(seed: int | float | str | bytes | None) -> int | float | str | bytes | None:
    """Return *seed* if ``random.Random`` takes it (a bool is taken for a mistake); else raise."""
    if isinstance(seed, bool) or not isinstance(seed, (int, float, str, bytes, type(None))):
        raise ValueError(f"seed must be an int, a float, a str, bytes or None, got {shown(seed)}.")
    if isinstance(seed, str):
        try:
            seed.encode("utf-8")
        except UnicodeEncodeError as exc:
            at = f"U+{ord(seed[exc.start]):04X} at position {exc.start}"
            raise ValueError(f"seed must be UTF-8 text: it holds a lone surrogate, {at}.") from None
    return seed


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
    block_script_user_agents: bool,
) -> tuple[str, ...]:
    """Raise ValueError for the first option of a wrong type or out of range; return the keys."""
    keys = _check_keys(api_keys)
    for name, port in zip(("port", "image_port"), ports, strict=True):
        if not (is_int(port) and 0 <= port <= 65535):
            raise ValueError(
                f"{name} must be an int from 0 (a free port) to 65535, got {shown(port)}."
            )
    if callback_mode not in ("strict", "permissive"):
        raise ValueError(f"callback_mode must be 'strict' or 'permissive': {shown(callback_mode)}.")
    if idempotency not in get_args(IdempotencyMode):
        raise ValueError(f"idempotency must be 'honour' or 'ignore', got {shown(idempotency)}.")
    if image_framing not in get_args(ImageFraming):
        raise ValueError(
            f"image_framing must be 'length', 'chunked' or 'close', got {shown(image_framing)}."
        )
    if not (is_int(images_per_task) and 1 <= images_per_task <= 16):
        raise ValueError(
            f"images_per_task must be an int from 1 to 16, got {shown(images_per_task)}."
        )
    if not _positive_seconds(link_ttl):
        raise ValueError(
            f"link_ttl must be a finite number of seconds above 0, got {shown(link_ttl)}."
        )
    if not _delays(callback_retry_delays):
        raise ValueError(
            "callback_retry_delays must be a sequence of finite numbers of seconds >= 0, "
            f"such as (1.0, 2.0, 4.0); got {shown(callback_retry_delays)}."
        )
    if not _positive_seconds(callback_timeout):
        raise ValueError(
            "callback_timeout must be a finite number of seconds above 0, "
            f"got {shown(callback_timeout)}."
        )
    if not isinstance(block_script_user_agents, bool):
        raise ValueError(
            "block_script_user_agents must be True or False, "
            f"got {shown(block_script_user_agents)}."
        )
    return keys
