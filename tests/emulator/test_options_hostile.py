"""Emulator options given the wrong type or a value out of range are refused when made."""

from __future__ import annotations

import math

import pytest

from zimage_async.emulator import Emulator, main


def test_a_lone_string_as_api_keys_is_refused() -> None:
    """api_keys="my-key" is not split into one-character keys: it is refused, naming the rule."""
    with pytest.raises(ValueError, match=r"api_keys.*sequence.*\('my-key',\)"):
        Emulator(api_keys="my-key")


def test_a_sequence_of_keys_is_still_taken() -> None:
    """A list or tuple of keys is accepted as before, the first being api_key."""
    emulator = Emulator(api_keys=["first-key", "second-key"])
    assert emulator.api_keys == ("first-key", "second-key")
    assert emulator.api_key == "first-key"


@pytest.mark.parametrize(
    "value",
    [0, -5, 0.0, math.nan, math.inf, "10", True, None, 10**400],
    ids=["zero", "negative", "zero-float", "nan", "inf", "str", "bool", "none", "huge"],
)
def test_callback_timeout_out_of_range_is_refused(value: object) -> None:
    """callback_timeout must be a finite number of seconds above 0."""
    with pytest.raises(ValueError, match="callback_timeout"):
        Emulator(callback_timeout=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0.5, 3, 10.0])
def test_callback_timeout_in_range_is_taken(value: float) -> None:
    """A positive number of seconds, int or float, is accepted."""
    Emulator(callback_timeout=value)


@pytest.mark.parametrize("value", [2.5, 2.0, "2", True, None], ids=repr)
def test_images_per_task_must_be_an_int(value: object) -> None:
    """images_per_task=2.5 (which made every completed task answer 500) is refused."""
    with pytest.raises(ValueError, match="images_per_task"):
        Emulator(images_per_task=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("option", ["port", "image_port"])
@pytest.mark.parametrize("value", [-1, 65536, 70000, True, 1.5, "8000"], ids=repr)
def test_ports_out_of_range_are_refused(option: str, value: object) -> None:
    """The ports must be ints from 0 to 65535, checked before anything binds."""
    with pytest.raises(ValueError, match=f"{option} must be"):
        Emulator(**{option: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("option", ["port", "image_port"])
@pytest.mark.parametrize("value", [0, 65535])
def test_ports_at_the_ends_of_the_range_are_taken(option: str, value: int) -> None:
    """0 (a free port) and 65535 are valid ports."""
    Emulator(**{option: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "argv",
    [["--port", "70000"], ["--port", "-1"], ["--port", "0", "--image-port", "65536"]],
    ids=["port-70000", "port-minus-1", "image-port-65536"],
)
def test_the_command_line_refuses_a_port_out_of_range(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A port out of range exits 2 with one 'error: ...' line, not an OverflowError traceback."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "port must be" in err
    assert "Traceback" not in err
