"""CallbackReceiver's options are checked like the SDK's other settings.

A value of the wrong type, a bool where a number is wanted, a fraction where a count is
wanted, or an absurd size is refused when the receiver is made, with an
:class:`InvalidRequestError` naming the option and its rule: never a bare TypeError from
deep inside, nor a receiver that then answers every genuine callback 413, nor a table
of hints that tries to take gigabytes. A value of the wrong type is named by its type
only. Pure: nothing is served.
"""

from __future__ import annotations

import math

import pytest

from zimage_async import CallbackReceiver, InvalidRequestError

#: The most a receiver accepts for its counts (the table of hints takes ~128 bytes an id).
MAX_HINTS = 1_000_000
MAX_BODY_BYTES = 16 * 1024 * 1024

REFUSED = [
    pytest.param("max_body_bytes", "65536", "a str", id="body-bytes-str"),
    pytest.param("max_body_bytes", True, "a bool", id="body-bytes-bool"),
    pytest.param("max_body_bytes", 65536.5, "65536.5", id="body-bytes-fraction"),
    pytest.param("max_body_bytes", 65536.0, "65536.0", id="body-bytes-float"),
    pytest.param("max_body_bytes", 0, "0", id="body-bytes-zero"),
    pytest.param("max_body_bytes", MAX_BODY_BYTES + 1, str(MAX_BODY_BYTES + 1), id="body-huge"),
    pytest.param("max_body_bytes", None, "None", id="body-bytes-none"),
    pytest.param("body_timeout", "5", "a str", id="timeout-str"),
    pytest.param("body_timeout", True, "a bool", id="timeout-bool"),
    pytest.param("body_timeout", 0, "0", id="timeout-zero"),
    pytest.param("body_timeout", math.inf, "inf", id="timeout-inf"),
    pytest.param("body_timeout", math.nan, "nan", id="timeout-nan"),
    pytest.param("hint_ttl", "60", "a str", id="ttl-str"),
    pytest.param("hint_ttl", True, "a bool", id="ttl-bool"),
    pytest.param("hint_ttl", -1.0, "-1.0", id="ttl-negative"),
    pytest.param("hint_ttl", math.inf, "inf", id="ttl-inf"),
    pytest.param("hint_ttl", None, "None", id="ttl-none"),
    pytest.param("max_hints", 4096.0, "4096.0", id="hints-float"),
    pytest.param("max_hints", None, "None", id="hints-none"),
    pytest.param("max_hints", False, "a bool", id="hints-bool"),
    pytest.param("max_hints", 0, "0", id="hints-zero"),
    pytest.param("max_hints", 10**9, "1000000000", id="hints-huge"),
    pytest.param("max_hints", "4096", "a str", id="hints-str"),
]


@pytest.mark.parametrize(("option", "value", "shown"), REFUSED)
def test_a_bad_option_is_refused_naming_it_and_its_rule(
    option: str, value: object, shown: str
) -> None:
    """InvalidRequestError names the option, what it got (a type by its name) and the rule."""
    with pytest.raises(InvalidRequestError) as caught:
        CallbackReceiver(**{option: value})  # type: ignore[arg-type]
    error = caught.value
    assert error.field == option
    assert error.problem == f"got {shown}"
    assert error.rule
    assert isinstance(error, ValueError)


@pytest.mark.parametrize("option", ["max_body_bytes", "max_hints"])
def test_the_counts_say_their_bounds(option: str) -> None:
    """The rule of a count states its range, so that a refused value can be corrected."""
    with pytest.raises(InvalidRequestError) as caught:
        CallbackReceiver(**{option: 0})
    most = MAX_BODY_BYTES if option == "max_body_bytes" else MAX_HINTS
    assert f"{most:,}" in caught.value.rule


def test_a_secret_looking_option_is_never_quoted() -> None:
    """A str where a number belongs is named by its type: it may be anything."""
    with pytest.raises(InvalidRequestError) as caught:
        CallbackReceiver(hint_ttl="sk-live-0123456789")  # type: ignore[arg-type]
    assert "sk-live" not in str(caught.value)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({}, id="defaults"),
        pytest.param({"max_body_bytes": 1, "max_hints": 1}, id="smallest"),
        pytest.param({"max_body_bytes": MAX_BODY_BYTES}, id="largest-body"),
        pytest.param({"body_timeout": 1, "hint_ttl": 0.5}, id="int-and-float-seconds"),
    ],
)
def test_sensible_options_are_accepted(options: dict[str, float]) -> None:
    receiver = CallbackReceiver(**options)  # type: ignore[arg-type]
    assert (receiver.accepted, receiver.refused, receiver.watched) == (0, 0, 0)
