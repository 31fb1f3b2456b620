"""Gateway-family task outcomes: the cancelled status and completed tasks without links."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from zimage_async.emulator import ManualClock

if TYPE_CHECKING:
    from tests.emulator.conftest import ApiFactory


async def test_cancel_directive_ends_the_task_cancelled(
    api_factory: ApiFactory, clock: ManualClock
) -> None:
    """[[cancel]] makes the task end in status cancelled with the code request_cancelled."""
    api = await api_factory(clock=clock, task_duration=2.0)
    created = await api.create_task(prompt="a cat [[cancel]]")
    assert created["status"] == "pending"
    clock.advance(2.0)
    body = await api.task_body(created["id"])
    assert body["status"] == "cancelled"
    assert body["error"] == {"code": "request_cancelled", "message": "The request was cancelled."}
    assert "results" not in body
    assert "task_info" not in body


async def test_cancelled_task_was_billed_and_has_no_images(
    api_factory: ApiFactory, clock: ManualClock
) -> None:
    """A cancelled task stays on the ledger and the emulator has no image for it."""
    api = await api_factory(clock=clock, task_duration=1.0)
    created = await api.create_task(prompt="a cat [[cancel]]")
    clock.advance(1.0)
    assert [entry.task_id for entry in api.emulator.ledger] == [created["id"]]
    with pytest.raises(KeyError):
        await api.emulator.image_bytes(created["id"])


async def test_cancel_takes_precedence_over_fail(
    api_factory: ApiFactory, clock: ManualClock
) -> None:
    """With both [[cancel]] and [[fail:CODE]], the task is cancelled."""
    api = await api_factory(clock=clock, task_duration=1.0)
    created = await api.create_task(prompt="a cat [[fail:service_error]] [[cancel]]")
    clock.advance(1.0)
    assert (await api.task_body(created["id"]))["status"] == "cancelled"


@pytest.mark.parametrize(
    ("directive", "present", "value"),
    [
        pytest.param("[[results:empty]]", True, [], id="empty"),
        pytest.param("[[results:null]]", True, None, id="null"),
        pytest.param("[[results:missing]]", False, None, id="missing"),
    ],
)
async def test_completed_task_without_links(
    api_factory: ApiFactory, clock: ManualClock, directive: str, present: bool, value: object
) -> None:
    """[[results:...]] completes the task with results [], null, or no results field."""
    api = await api_factory(clock=clock, task_duration=1.0)
    created = await api.create_task(prompt=f"a cat {directive}")
    clock.advance(1.0)
    body = await api.task_body(created["id"])
    assert (body["status"], body["progress"]) == ("completed", 100)
    assert ("results" in body) is present
    assert body.get("results") == value
