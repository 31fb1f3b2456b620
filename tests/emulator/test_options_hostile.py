"""Emulator options given the wrong type or a value out of range are refused when made."""

from __future__ import annotations

import pytest

from zimage_async.emulator import Emulator


def test_a_lone_string_as_api_keys_is_refused() -> None:
    """api_keys="my-key" is not split into one-character keys: it is refused, naming the rule."""
    with pytest.raises(ValueError, match=r"api_keys.*sequence.*\('my-key',\)"):
        Emulator(api_keys="my-key")


def test_a_sequence_of_keys_is_still_taken() -> None:
    """A list or tuple of keys is accepted as before, the first being api_key."""
    emulator = Emulator(api_keys=["first-key", "second-key"])
    assert emulator.api_keys == ("first-key", "second-key")
    assert emulator.api_key == "first-key"


@pytest.mark.parametrize("value", [2.5, 2.0, "2", True, None], ids=repr)
def test_images_per_task_must_be_an_int(value: object) -> None:
    """images_per_task=2.5 (which made every completed task answer 500) is refused."""
    with pytest.raises(ValueError, match="images_per_task"):
        Emulator(images_per_task=value)  # type: ignore[arg-type]
