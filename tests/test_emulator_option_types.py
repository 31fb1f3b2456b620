"""Emulator options of the wrong type are refused with a ValueError naming the option and rule.

Strings, bools, None, containers, NaN, infinities and ints too large for a float used to
escape as a bare TypeError or OverflowError from ``math`` or ``random``, or were taken and
broke later. Each is refused when the emulator (or its clock) is made, like a value out of
range, through the constructor, the pytest plugin's factory and the command line.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from zimage_async._cli import main as zimage_main
from zimage_async.emulator import Emulator, FaultPlan, FaultRule, ManualClock, SystemClock
from zimage_async.emulator import main as emulator_main
from zimage_async.pytest_plugin import EmulatorFactory

HUGE = 10**400  # an int too large to convert to a float
UNPRINTABLE = 10**5000  # an int with too many digits to turn into text (a ValueError)

SECONDS = ["3", True, HUGE, [1], math.nan, math.inf, -1]
"""Wrong values for an option in seconds: a string, a bool, a huge int, a list, NaN, inf."""

WRONG_OPTIONS: list[tuple[str, list[object], str]] = [
    # (option, wrong values, the start of the message: the option and its rule)
    (
        "link_ttl",
        [*SECONDS, "86400", None, 0],
        "link_ttl must be a finite number of seconds above 0",
    ),
    ("task_duration", [*SECONDS, None], "task_duration must be a finite number of seconds"),
    ("queue_delay", SECONDS, "queue_delay must be a finite number of seconds"),
    (
        "image_padding_bytes",
        ["5", 1.5, 2.0, True, None, math.nan, [1], HUGE, -1],
        r"image_padding_bytes must be an int from 0 to 2\*\*31-1",
    ),
    (
        "callback_retry_delays",
        [
            ["1"],
            5,
            "1",
            None,
            [True],
            [HUGE],
            [math.nan],
            [math.inf],
            [-1.0],
            (d for d in [1.0]),
            {1.0: 2.0},
        ],
        "callback_retry_delays must be a sequence of finite numbers",
    ),
    ("seed", [[1], True, {"a": 1}], "seed must be an int, a float, a str, bytes or None"),
    ("api_keys", [5, None, b"key"], "api_keys must be a sequence of keys"),
    ("host", [2130706433, b"\x7f\x00\x00\x01"], "host must be a loopback address"),
    ("clock", [5, "x", SystemClock, ManualClock], "clock must be a Clock"),
    (
        "faults",
        ["x", 5, [FaultRule(kind="http_500")], FaultRule(kind="http_500")],
        "faults must be a FaultPlan or None",
    ),
    ("image_format", [["png"], {"png": 1}], "image_format must be"),
    (
        "block_script_user_agents",
        ["no", "", 1, 0, None],
        "block_script_user_agents must be True or False",
    ),
]


def _label(value: object) -> str:
    """A stable test id: the repr, or the type's name for reprs with an address in them."""
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return ",".join(f"{key}={_label(item)}" for key, item in value.items())
    text = repr(value).replace(str(HUGE), "10**400")
    return type(value).__name__ if " at 0x" in text else text[:40]


def _wrong_options() -> list[object]:
    return [
        pytest.param(option, value, rule, id=f"{option}-{_label(value)}")
        for option, values, rule in WRONG_OPTIONS
        for value in values
    ]


@pytest.mark.parametrize(("option", "value", "rule"), _wrong_options())
def test_an_option_of_the_wrong_type_is_refused(option: str, value: object, rule: str) -> None:
    """Each wrong value is a ValueError whose message names the option and its rule."""
    with pytest.raises(ValueError, match=f"^{rule}"):
        Emulator(**{option: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options",
    [
        {"port": UNPRINTABLE},
        {"link_ttl": UNPRINTABLE},
        {"callback_retry_delays": [UNPRINTABLE]},
        {"seed": [UNPRINTABLE]},
        {"image_padding_bytes": UNPRINTABLE},
    ],
    ids=lambda options: next(iter(options)),
)
def test_an_int_too_long_to_print_is_named_not_quoted(options: dict[str, object]) -> None:
    """The message names the option and its rule even when the value cannot be shown."""
    with pytest.raises(ValueError, match=f"^{next(iter(options))} must be .* too large to show"):
        Emulator(**options)  # type: ignore[arg-type]


def test_the_reviewed_cases_are_value_errors() -> None:
    """The six cases of the review: none escapes as TypeError or OverflowError."""
    cases: list[dict[str, object]] = [
        {"link_ttl": "86400"},
        {"link_ttl": HUGE},
        {"callback_retry_delays": ["1"]},
        {"callback_retry_delays": 5},
        {"task_duration": "3"},
        {"seed": [1]},
    ]
    for options in cases:
        with pytest.raises(ValueError, match=f"^{next(iter(options))} must be"):
            Emulator(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options",
    [
        {"link_ttl": 1},
        {"link_ttl": 0.5},
        {"task_duration": 0},
        {"task_duration": lambda body: 1.0},
        {"queue_delay": 0},
        {"queue_delay": None},
        {"image_padding_bytes": 0},
        {"image_padding_bytes": 2**31 - 1},
        {"callback_retry_delays": []},
        {"callback_retry_delays": [0, 1.5]},
        {"callback_retry_delays": range(3)},
        {"seed": 0},
        {"seed": -5},
        {"seed": HUGE},
        {"seed": None},
        {"seed": "ci-run-42"},
        {"seed": 4.5},
        {"seed": b"x"},
        {"clock": ManualClock()},
        {"clock": SystemClock(speed=2)},
        {"faults": FaultPlan.script("create", ["http_500"])},
        {"faults": None},
        {"block_script_user_agents": True},
        {"block_script_user_agents": False},
    ],
    ids=_label,
)
def test_values_of_the_right_type_are_still_taken(options: dict[str, object]) -> None:
    """Ints and floats in range, sequences, seeds and clocks of the documented types work."""
    Emulator(**options)  # type: ignore[arg-type]


def test_the_retry_delays_are_kept_as_given() -> None:
    """A valid sequence of delays is used whole (a one-shot iterable is refused, not emptied)."""
    emulator = Emulator(callback_retry_delays=[0, 1.5])
    assert emulator._callbacks._retry_delays == (0, 1.5)


@pytest.mark.parametrize("plan", ["x", 5, [FaultRule(kind="http_500")]], ids=_label)
def test_assigning_faults_of_the_wrong_type_is_refused(plan: object) -> None:
    """emulator.faults = <not a FaultPlan> is refused and leaves the plan in use as it was."""
    before = FaultPlan.script("create", ["http_500"])
    emulator = Emulator(faults=before)
    with pytest.raises(ValueError, match=r"^faults must be a FaultPlan or None"):
        emulator.faults = plan  # type: ignore[assignment]
    assert emulator.faults is before


CLOCK_NUMBER_CASES = ["2", True, HUGE, math.nan, math.inf, [1]]


@pytest.mark.parametrize(
    ("make", "rule"),
    [
        pytest.param(lambda v: SystemClock(speed=v), "speed must be", id="SystemClock-speed"),
        pytest.param(lambda v: SystemClock(start=v), "start must be", id="SystemClock-start"),
        pytest.param(lambda v: ManualClock(start=v), "start must be", id="ManualClock-start"),
        pytest.param(lambda v: ManualClock().advance(v), "seconds must be", id="advance"),
    ],
)
@pytest.mark.parametrize("value", CLOCK_NUMBER_CASES, ids=_label)
def test_clock_numbers_of_the_wrong_type_are_refused(
    make: Callable[[object], object], rule: str, value: object
) -> None:
    """The clocks given as ``clock`` refuse wrong numbers with a ValueError naming them."""
    with pytest.raises(ValueError, match=f"^{rule}"):
        make(value)


def test_clock_numbers_of_the_right_type_are_taken() -> None:
    """Ints and floats still make clocks (and a None start is the wall clock's now)."""
    assert SystemClock(speed=2, start=0).speed == 2.0
    assert SystemClock(start=None).now() > 0
    clock = ManualClock(start=10)
    clock.advance(1)
    clock.advance(0.5)
    assert clock.now() == 11.5


@pytest.mark.parametrize(
    ("field", "value", "kind"),
    [
        ("rate", "0.5", "slow"),
        ("rate", True, "slow"),
        ("rate", HUGE, "slow"),
        ("rate", None, "slow"),
        ("delay_seconds", "1", "slow"),
        ("delay_seconds", True, "slow"),
        ("delay_seconds", HUGE, "slow"),
        ("delay_seconds", None, "slow"),
        ("truncate_fraction", "0.5", "truncate"),
        ("truncate_fraction", HUGE, "truncate"),
        ("garbage_bytes", True, "trailing_garbage"),
        ("kind", ["http_500"], None),
        ("null_shape", ["absent"], "null_fields"),
    ],
    ids=_label,
)
def test_fault_rule_fields_of_the_wrong_type_are_refused(
    field: str, value: object, kind: str | None
) -> None:
    """The rules of the ``faults`` option refuse wrong types with a ValueError naming the field."""
    options: dict[str, object] = {field: value} if kind is None else {"kind": kind, field: value}
    with pytest.raises(ValueError, match=field.replace("kind", "fault kind")):
        FaultRule(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "rule"),
    [
        ({"link_ttl": "86400"}, "link_ttl must be"),
        ({"link_ttl": HUGE}, "link_ttl must be"),
        ({"callback_retry_delays": 5}, "callback_retry_delays must be"),
        ({"callback_retry_delays": ["1"]}, "callback_retry_delays must be"),
        ({"task_duration": "3"}, "task_duration must be"),
        ({"seed": [1]}, "seed must be"),
    ],
    ids=_label,
)
async def test_the_plugin_factory_refuses_wrong_types(
    zimage_emulator_factory: EmulatorFactory, options: dict[str, object], rule: str
) -> None:
    """zimage_emulator_factory(**options) goes through the same checks: a ValueError."""
    with pytest.raises(ValueError, match=f"^{rule}"):
        await zimage_emulator_factory(**options)


@pytest.mark.parametrize(
    ("argv", "rule"),
    [
        (["--link-ttl", "nan"], "link_ttl must be"),
        (["--link-ttl", "1e400"], "link_ttl must be"),
        (["--task-duration", "inf"], "task_duration must be"),
        (["--queue-delay", "nan"], "queue_delay must be"),
        (["--clock-speed", "1e400"], "speed must be"),
        (["--image-padding-bytes", "-1"], "image_padding_bytes must be"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else v,
)
@pytest.mark.parametrize("program", ["python -m zimage_async.emulator", "zimage emulator"])
def test_the_command_lines_refuse_nan_and_infinities(
    program: str, argv: list[str], rule: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """NaN, inf and overflowing floats from the command line exit 2 with one error line."""
    ports = ["--port", "0", "--image-port", "0"]
    if program == "zimage emulator":
        status = zimage_main(["emulator", *ports, *argv])
    else:
        status = emulator_main([*ports, *argv])
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {rule}")
    assert "Traceback" not in err
