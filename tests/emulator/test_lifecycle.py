"""Task lifecycle on a clock the tests control, ids, estimates, outcomes and the ledger."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from zimage_async.emulator import ManualClock

if TYPE_CHECKING:
    from tests.emulator.conftest import Api, ApiFactory

ID_PATTERN = re.compile(r"task-unified-(\d+)-[a-z0-9]{8}")


async def test_create_reply_is_a_pending_billed_task(manual_api: Api, clock: ManualClock) -> None:
    """The create call answers the pending task with usage, like the documented example."""
    body = await manual_api.create_task()
    match = ID_PATTERN.fullmatch(body["id"])
    assert match is not None
    assert int(match.group(1)) == body["created"] == math.floor(clock.now())
    assert body["status"] == "pending"
    assert body["progress"] == 0
    assert body["object"] == "image.generation.task"
    assert body["type"] == "image"
    assert body["model"] == "z-image-turbo"
    assert body["task_info"]["can_cancel"] is True
    assert isinstance(body["task_info"]["estimated_time"], int)
    assert body["usage"] == {
        "billing_rule": "per_call",
        "credits_reserved": 0.026,
        "user_group": "default",
    }


async def test_task_stays_pending_during_the_queue_delay(
    manual_api: Api, clock: ManualClock
) -> None:
    """Before queue_delay has passed the task is pending with progress 0."""
    created = await manual_api.create_task()
    clock.advance(0.9)
    body = await manual_api.task_body(created["id"])
    assert (body["status"], body["progress"], body["task_info"]["can_cancel"]) == (
        "pending",
        0,
        True,
    )


async def test_progress_rises_linearly_while_processing(
    manual_api: Api, clock: ManualClock
) -> None:
    """While processing, progress climbs from 1 towards 99 in step with the clock."""
    created = await manual_api.create_task()
    seen = []
    for _ in range(9):
        clock.advance(1.0)
        body = await manual_api.task_body(created["id"])
        assert body["status"] == "processing"
        assert body["task_info"]["can_cancel"] is False
        seen.append(body["progress"])
    assert seen[0] == 1
    assert seen == sorted(seen)
    assert min(seen) >= 1
    assert max(seen) <= 99
    assert seen[4] == 1 + math.floor(98 * 4 / 9)


async def test_task_completes_after_its_duration(manual_api: Api, clock: ManualClock) -> None:
    """At its duration the task is completed with progress 100, results and no estimate."""
    created = await manual_api.create_task()
    clock.advance(10.0)
    body = await manual_api.task_body(created["id"])
    assert body["status"] == "completed"
    assert body["progress"] == 100
    assert body["task_info"] == {"can_cancel": False}
    assert len(body["results"]) == 1
    assert "error" not in body


async def test_estimate_is_near_the_remaining_time(manual_api: Api, clock: ManualClock) -> None:
    """estimated_time stays within 0.7..1.4 times the remaining seconds, rounded up, min 1."""
    created = await manual_api.create_task()
    for elapsed in (0.0, 2.5, 5.0, 9.5, 9.99):
        clock.advance(elapsed - (clock.now() - created["created"]))
        remaining = 10.0 - elapsed
        estimate = (await manual_api.task_body(created["id"]))["task_info"]["estimated_time"]
        assert max(1, math.ceil(remaining * 0.7)) <= estimate <= max(1, math.ceil(remaining * 1.4))


async def test_fail_directive_fails_the_task_with_that_code(
    manual_api: Api, clock: ManualClock
) -> None:
    """A [[fail:CODE]] directive makes the task fail with CODE and a message."""
    created = await manual_api.create_task(prompt="a cat [[fail:service_error]]")
    clock.advance(10.0)
    body = await manual_api.task_body(created["id"])
    assert body["status"] == "failed"
    assert body["error"]["code"] == "service_error"
    assert body["error"]["message"]
    assert "results" not in body
    assert body["progress"] == 99


async def test_content_policy_failure_never_starts_processing(
    manual_api: Api, clock: ManualClock
) -> None:
    """A failure blamed on the request keeps the task pending, then fails it at progress 0."""
    created = await manual_api.create_task(prompt="[[fail:content_policy_violation]] a cat")
    clock.advance(5.0)
    assert (await manual_api.task_body(created["id"]))["status"] == "pending"
    clock.advance(5.0)
    body = await manual_api.task_body(created["id"])
    assert body["status"] == "failed"
    assert body["progress"] == 0
    assert body["error"] == {
        "code": "content_policy_violation",
        "message": "Content policy violation.",
    }


async def test_unknown_failure_codes_are_passed_through(
    manual_api: Api, clock: ManualClock
) -> None:
    """A code the protocol does not list is reported as given."""
    created = await manual_api.create_task(prompt="a cat [[fail:gpu_on_fire]]")
    clock.advance(10.0)
    assert (await manual_api.task_body(created["id"]))["error"]["code"] == "gpu_on_fire"


async def test_fail_next_fails_the_next_tasks_only(manual_api: Api, clock: ManualClock) -> None:
    """fail_next(code, count=2) fails the next two tasks and then no more."""
    manual_api.emulator.fail_next("generation_timeout", "too slow", count=2)
    ids = [(await manual_api.create_task())["id"] for _ in range(3)]
    clock.advance(10.0)
    bodies = [await manual_api.task_body(task_id) for task_id in ids]
    assert [body["status"] for body in bodies] == ["failed", "failed", "completed"]
    assert bodies[0]["error"] == {"code": "generation_timeout", "message": "too slow"}


async def test_duration_directive_sets_the_task_duration(
    manual_api: Api, clock: ManualClock
) -> None:
    """A [[duration:2.5]] directive completes the task after 2.5 clock seconds."""
    created = await manual_api.create_task(prompt="quick [[duration:2.5]]")
    clock.advance(2.4)
    assert (await manual_api.task_body(created["id"]))["status"] == "processing"
    clock.advance(0.1)
    assert (await manual_api.task_body(created["id"]))["status"] == "completed"


async def test_task_duration_callable_sees_the_request_body(
    api_factory: ApiFactory, clock: ManualClock
) -> None:
    """A callable task_duration is given the request body and sets the duration."""
    seen: list[Mapping[str, object]] = []

    def duration(body: Mapping[str, object]) -> float:
        seen.append(body)
        return 4.0 if body.get("size") == "16:9" else 8.0

    api = await api_factory(clock=clock, task_duration=duration)
    created = await api.create_task(size="16:9")
    clock.advance(4.0)
    assert (await api.task_body(created["id"]))["status"] == "completed"
    assert seen[0]["size"] == "16:9"


async def test_the_same_seed_makes_the_same_task_ids(api_factory: ApiFactory) -> None:
    """Two emulators with the same seed and clock hand out the same ids."""
    first = await api_factory(clock=ManualClock(), seed=11)
    second = await api_factory(clock=ManualClock(), seed=11)
    assert (await first.create_task())["id"] == (await second.create_task())["id"]


async def test_snapshot_matches_the_http_body(manual_api: Api, clock: ManualClock) -> None:
    """emulator.task(id) returns what GET /v1/tasks/{id} answers."""
    created = await manual_api.create_task()
    clock.advance(3.0)
    assert manual_api.emulator.task(created["id"]) == await manual_api.task_body(created["id"])


async def test_every_accepted_create_is_in_the_ledger(manual_api: Api, clock: ManualClock) -> None:
    """Each accepted create is billed once, with the body as received and its time."""
    first = await manual_api.create_task(extra={"kept": True})
    second = await manual_api.create_task(prompt="a dog")
    ledger = manual_api.emulator.ledger
    assert [entry.task_id for entry in ledger] == [first["id"], second["id"]]
    assert ledger[0].request_body["extra"] == {"kept": True}
    assert ledger[1].request_body["prompt"] == "a dog"
    assert ledger[0].created_at == clock.now()
    assert ledger[0].credits == 0.026


async def test_identical_bodies_make_two_billed_tasks(api: Api) -> None:
    """There is no idempotency: sending the same body twice bills two tasks."""
    first = await api.create_task(seed=5)
    second = await api.create_task(seed=5)
    assert first["id"] != second["id"]
    assert len(api.emulator.ledger) == 2


async def test_fast_tasks_complete_on_the_system_clock(api: Api) -> None:
    """With the fixture's 0.05 s duration a task completes on the real clock."""
    body = await api.completed_task()
    assert body["status"] == "completed"
