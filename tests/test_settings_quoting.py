"""A numeric setting of the wrong type is named by its type, never quoted.

A key or a password that lands in the wrong keyword (``timeout=os.environ[...]``) must
not be written out by the refusal, which ends up in logs and crash reports. A number
out of its range is shown as it is: numbers are no secrets, and seeing ``-1`` or
``inf`` says what went wrong.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import attrs
import pytest

from zimage_async import InvalidRequestError, PollSchedule, RetryPolicy, Session

KEY = "sk-test-QUOTING-0123456789"
BASE = "http://127.0.0.1:9/apiv1"  # never contacted: every Session here is refused first
SECRET = "sk-live-SECRET-0123456789"

#: Every numeric argument of Session.
SESSION_NUMBERS = (
    "timeout",
    "connect_timeout",
    "read_timeout",
    "link_ttl",
    "total_timeout",
    "image_timeout",
    "callback_poll_factor",
    "max_image_bytes",
    "max_task_bytes",
    "max_connections",
    "max_credits",
)

#: Values of the wrong type that hold the secret, and the type each must be named by.
WRONG_TYPES = [
    pytest.param(SECRET, "str", id="str"),
    pytest.param(SECRET.encode(), "bytes", id="bytes"),
    pytest.param([SECRET], "list", id="list"),
]


def _session(tmp_path: Path, **options: Any) -> Session:
    """Make a Session with the test key (and a journal, which max_credits needs)."""
    if "max_credits" in options:
        options["journal"] = tmp_path / "j.sqlite"
    return Session(api_key=KEY, base_url=BASE, environ={}, **options)


def _names_the_type_only(error: InvalidRequestError, field: str, kind: str) -> None:
    """Assert that *error* refuses *field*, names *kind*, and quotes none of the secret."""
    message = str(error)
    assert error.field == field
    assert SECRET not in message
    assert "SECRET" not in message  # not even a start of it
    assert f"a {kind}" in message or f"of type {kind}" in message, message


@pytest.mark.parametrize(("value", "kind"), WRONG_TYPES)
@pytest.mark.parametrize("setting", SESSION_NUMBERS)
def test_a_session_number_of_the_wrong_type_is_named_by_its_type(
    setting: str, value: object, kind: str, tmp_path: Path
) -> None:
    """Before: ``timeout: got 'sk-live-SECRET-...'``, the value quoted whole."""
    with pytest.raises(InvalidRequestError) as caught:
        _session(tmp_path, **{setting: value})
    _names_the_type_only(caught.value, setting, kind)


def _fields(cls: type[PollSchedule | RetryPolicy]) -> list[str]:
    return [field.name for field in attrs.fields(cls)]


@pytest.mark.parametrize(("value", "kind"), WRONG_TYPES)
@pytest.mark.parametrize(
    ("cls", "field"),
    [(cls, field) for cls in (PollSchedule, RetryPolicy) for field in _fields(cls)],
)
def test_a_schedule_field_of_the_wrong_type_is_named_by_its_type(
    cls: type[PollSchedule | RetryPolicy], field: str, value: object, kind: str
) -> None:
    """Every PollSchedule and RetryPolicy field: the type, never the value."""
    options: dict[str, Any] = {field: value}
    with pytest.raises(InvalidRequestError) as caught:
        cls(**options)
    _names_the_type_only(caught.value, field, kind)


@pytest.mark.parametrize(("value", "kind"), WRONG_TYPES)
@pytest.mark.parametrize("option", ["max_credits", "cost", "timeout", "concurrency", "lease"])
def test_a_batch_number_of_the_wrong_type_is_named_by_its_type(
    option: str, value: object, kind: str, tmp_path: Path
) -> None:
    """generate_many's numbers are refused as a Session's are, before anything is sent."""
    options: dict[str, Any] = {option: value}
    if option == "max_credits":
        options["journal"] = tmp_path / "j.sqlite"
    session = Session(api_key=KEY, base_url=BASE, environ={})
    with pytest.raises(InvalidRequestError) as caught:
        session.generate_many(["a cat"], **options)
    _names_the_type_only(caught.value, option, kind)


@pytest.mark.parametrize(
    ("setting", "value", "shown"),
    [
        ("timeout", -1, "got -1"),
        ("link_ttl", math.inf, "got inf"),
        ("read_timeout", math.nan, "got nan"),
        ("image_timeout", 0, "got 0"),
        ("callback_poll_factor", 0.5, "got 0.5"),
        ("max_connections", 0, "got 0"),
        ("max_connections", 2.5, "got 2.5"),
        ("max_image_bytes", -5, "got -5"),
        ("max_task_bytes", 1.5, "got 1.5"),
        ("max_credits", -1, "got -1"),
        ("timeout", 10**400, "bit integer"),
    ],
)
def test_a_session_number_out_of_its_range_is_shown(
    setting: str, value: object, shown: str, tmp_path: Path
) -> None:
    """A number is no secret: showing it says what is wrong with it."""
    with pytest.raises(InvalidRequestError) as caught:
        _session(tmp_path, **{setting: value})
    assert caught.value.field == setting
    assert shown in str(caught.value)
    assert len(str(caught.value)) < 300


@pytest.mark.parametrize(
    ("cls", "field", "value", "shown"),
    [
        (PollSchedule, "wait_min", -1, "got -1"),
        (PollSchedule, "timeout", math.inf, "got inf"),
        (RetryPolicy, "jitter", 2, "got 2"),
        (RetryPolicy, "max_attempts", 0, "got 0"),
        (RetryPolicy, "max_attempts", 2.5, "2.5"),
    ],
)
def test_a_schedule_number_out_of_its_range_is_shown(
    cls: type[PollSchedule | RetryPolicy], field: str, value: object, shown: str
) -> None:
    """The same rule for the schedules: a number is shown, whatever is wrong with it."""
    options: dict[str, Any] = {field: value}
    with pytest.raises(InvalidRequestError) as caught:
        cls(**options)
    assert caught.value.field == field
    assert shown in str(caught.value)


@pytest.mark.parametrize("setting", ["timeout", "max_connections", "max_image_bytes"])
def test_a_bool_for_a_number_is_named_by_its_type(setting: str, tmp_path: Path) -> None:
    """True is taken for a mistake, not for 1, and named as what it is."""
    with pytest.raises(InvalidRequestError) as caught:
        _session(tmp_path, **{setting: True})
    assert caught.value.field == setting
    assert "got a bool" in str(caught.value)


@pytest.mark.parametrize("setting", ["timeout", "max_task_bytes"])
def test_none_for_a_number_reads_as_none(setting: str, tmp_path: Path) -> None:
    """``got None``, not ``got NoneType`` (max_task_bytes takes None: no limit)."""
    if setting == "max_task_bytes":
        _session(tmp_path, max_task_bytes=None)
        return
    with pytest.raises(InvalidRequestError) as caught:
        _session(tmp_path, **{setting: None})
    assert "got None;" in str(caught.value)


@pytest.mark.parametrize(("value", "kind"), WRONG_TYPES)
@pytest.mark.parametrize("flag", ["metadata", "durable", "overwrite"])
async def test_a_save_flag_of_the_wrong_type_is_named_by_its_type(
    flag: str, value: object, kind: str, tmp_path: Path
) -> None:
    """save()'s flags are checked before any request (BASE's port refuses connections)."""
    options: dict[str, Any] = {flag: value}
    async with Session(api_key=KEY, base_url=BASE, environ={}) as zs:
        with pytest.raises(InvalidRequestError) as caught:
            await zs.task("task-unified-1-abcdefgh").save(tmp_path, **options)
    _names_the_type_only(caught.value, flag, kind)
