"""Null shapes: optional task fields sent as null, one shape at a time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from zimage_async.emulator import FaultPlan, FaultRule, ManualClock

if TYPE_CHECKING:
    from tests.emulator.conftest import ApiFactory


def _nulls(shape: str) -> FaultRule:
    return FaultRule(kind="null_fields", null_shape=shape)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("shape", "check"),
    [
        pytest.param("results", lambda b: b["results"] is None, id="results"),
        pytest.param("progress", lambda b: b["progress"] is None, id="progress"),
        pytest.param("task_info", lambda b: b["task_info"] is None, id="task_info"),
        pytest.param("usage", lambda b: b["usage"] is None, id="usage"),
        pytest.param("error", lambda b: b["error"] is None, id="error"),
    ],
)
async def test_create_reply_can_carry_one_null(
    api_factory: ApiFactory, shape: str, check: Any
) -> None:
    """A null_fields rule on create sends exactly that field as null, and bills the task."""
    api = await api_factory(faults=FaultPlan.script("create", [_nulls(shape)]))
    body = (await api.create()).json()
    assert check(body)
    assert len(api.emulator.ledger) == 1


async def test_absent_shape_sends_every_missing_optional_field_as_null(
    api_factory: ApiFactory,
) -> None:
    """The absent shape turns a pending task's missing results and error into nulls."""
    api = await api_factory(faults=FaultPlan.script("create", [_nulls("absent")]))
    body = (await api.create()).json()
    assert (body["results"], body["error"]) == (None, None)
    assert body["task_info"]["can_cancel"] is True


@pytest.mark.parametrize(
    ("shape", "error"),
    [
        pytest.param(
            "error_message", {"code": "service_error", "message": None}, id="error_message"
        ),
        pytest.param("error_code", {"code": None, "message": "x"}, id="error_code"),
        pytest.param("error_without_code", {"message": "x"}, id="error_without_code"),
        pytest.param("error_string", "x", id="error_string"),
    ],
)
async def test_failed_task_reads_can_carry_odd_errors(
    api_factory: ApiFactory, clock: ManualClock, shape: str, error: object
) -> None:
    """Error shapes change the error object of a failed task's read."""
    api = await api_factory(
        clock=clock, task_duration=1.0, faults=FaultPlan.script("task", [_nulls(shape)])
    )
    created = await api.create_task(prompt="a cat [[fail:service_error]]")
    clock.advance(1.0)
    body = await api.task_body(created["id"])
    message = "The generation service failed; try again later."
    expected = message if error == "x" else error
    if isinstance(expected, dict):
        expected = {k: (message if v == "x" else v) for k, v in expected.items()}
    assert body["error"] == expected


async def test_a_shape_waits_for_a_body_it_applies_to(
    api_factory: ApiFactory, clock: ManualClock
) -> None:
    """An error shape scripted on task reads skips the pending read and hits the failed one."""
    api = await api_factory(
        clock=clock, task_duration=1.0, faults=FaultPlan.script("task", [_nulls("error_string")])
    )
    created = await api.create_task(prompt="a cat [[fail:service_error]]")
    assert (await api.task_body(created["id"]))["status"] == "pending"
    clock.advance(1.0)
    assert isinstance((await api.task_body(created["id"]))["error"], str)
    assert api.emulator.faults_injected == {"null_fields": 1}


async def test_results_null_does_not_hit_a_completed_task(
    api_factory: ApiFactory, clock: ManualClock
) -> None:
    """A results shape never removes the links of a completed task."""
    api = await api_factory(
        clock=clock,
        task_duration=1.0,
        faults=FaultPlan.random(FaultRule(kind="null_fields", null_shape="results")),
    )
    created = await api.create_task()
    clock.advance(1.0)
    assert (await api.task_body(created["id"]))["results"]


def test_unknown_null_shapes_are_refused() -> None:
    """A misspelt null_shape is a ValueError."""
    with pytest.raises(ValueError, match="null_shape"):
        FaultRule(kind="null_fields", null_shape="everything")  # type: ignore[arg-type]


class _TickingClock(ManualClock):
    """A manual clock that, once armed, moves by *step* right after its next reading."""

    armed: float | None = None

    def now(self) -> float:
        reading = super().now()
        if self.armed is not None:
            step, self.armed = self.armed, None
            self.advance(step)
        return reading


async def test_a_shape_is_drawn_for_the_body_actually_sent(api_factory: ApiFactory) -> None:
    """A task ending while its read is being answered gets the shape of the body sent.

    The clock moves past the task's end right after the read's first look at it: the
    fault must be judged on the status of the body that goes out, not on an earlier one.
    """
    clock = _TickingClock()
    api = await api_factory(
        clock=clock, task_duration=1.0, faults=FaultPlan.script("task", [_nulls("error_string")])
    )
    created = await api.create_task(prompt="a cat [[fail:service_error]]")
    clock.advance(0.5)
    clock.armed = 1.0  # the task fails between this read's first and second look at it
    for _ in range(2):
        body = await api.task_body(created["id"])
        if body["status"] == "failed":
            break
    assert body["status"] == "failed"
    assert isinstance(body["error"], str)
