"""Every body the emulator sends conforms to the shipped openapi.yaml, as do its examples."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jsonschema  # type: ignore[import-untyped,unused-ignore]
import pytest

from zimage_async.emulator import FaultPlan, FaultRule, ManualClock

if TYPE_CHECKING:
    from tests.emulator.conftest import Api, ApiFactory, SchemaCheck

TASK_STATUSES = {"pending", "processing", "completed", "failed"}


def check_task_shape(body: dict[str, Any]) -> None:
    """The shape rules beyond the schema that both the examples and the emulator follow."""
    assert body["id"].startswith("task-unified-")
    assert body["object"] == "image.generation.task"
    assert 0 <= body["progress"] <= 100
    if body["status"] == "completed":
        assert body["progress"] == 100
        assert body["results"]
        assert "estimated_time" not in body.get("task_info", {})
    if body["status"] == "failed":
        assert set(body["error"]) == {"code", "message"}
        assert "results" not in body
    if body["status"] in ("pending", "processing"):
        assert "results" not in body
        assert "error" not in body


def check_error_shape(body: dict[str, Any], status: int) -> None:
    """Error envelopes carry code, message and type; code is the status unless a string."""
    error = body["error"]
    assert {"code", "message", "type"} <= set(error)
    assert error["code"] == status or isinstance(error["code"], str)


def _examples(openapi: dict[str, Any]) -> list[tuple[str, int, dict[str, Any]]]:
    found: list[tuple[str, int, dict[str, Any]]] = []
    responses = openapi["components"]["responses"]
    for path in openapi["paths"].values():
        for operation in path.values():
            for status, response in operation["responses"].items():
                if "$ref" in response:
                    response = responses[response["$ref"].rsplit("/", 1)[1]]
                content = response["content"]["application/json"]
                schema = content["schema"]["$ref"].rsplit("/", 1)[1]
                examples = [content["example"]] if "example" in content else []
                examples += [item["value"] for item in content.get("examples", {}).values()]
                found += [(schema, int(status), example) for example in examples]
    return found


def test_documented_examples_validate_and_have_the_emulator_shape(
    openapi: dict[str, Any], validate: SchemaCheck
) -> None:
    """Every example in openapi.yaml validates and passes the same shape checks."""
    examples = _examples(openapi)
    assert len(examples) >= 12
    for schema, status, example in examples:
        validate(schema, example)
        if schema == "Task":
            check_task_shape(example)
        else:
            check_error_shape(example, status)


async def test_create_reply_conforms(manual_api: Api, validate: SchemaCheck) -> None:
    """The create reply validates against the Task schema."""
    body = await manual_api.create_task(seed=3, size="3:4", nsfw_check=True)
    validate("Task", body)
    check_task_shape(body)


@pytest.mark.parametrize(
    ("prompt", "seconds", "status"),
    [
        pytest.param("a cat", 0.5, "pending", id="pending"),
        pytest.param("a cat", 5.0, "processing", id="processing"),
        pytest.param("a cat", 10.0, "completed", id="completed"),
        pytest.param("a cat [[fail:service_error]]", 10.0, "failed", id="failed"),
        pytest.param(
            "a cat [[fail:content_policy_violation]]", 10.0, "failed", id="failed-moderation"
        ),
    ],
)
async def test_task_bodies_conform_in_every_state(
    manual_api: Api,
    clock: ManualClock,
    validate: SchemaCheck,
    prompt: str,
    seconds: float,
    status: str,
) -> None:
    """GET /v1/tasks/{id} validates against the Task schema in each state."""
    created = await manual_api.create_task(prompt=prompt)
    clock.advance(seconds)
    body = await manual_api.task_body(created["id"])
    assert body["status"] == status
    validate("Task", body)
    check_task_shape(body)


async def test_error_replies_conform(api: Api, validate: SchemaCheck) -> None:
    """401, 400, 404 (model, task, route) and 405 bodies validate against ErrorResponse."""
    replies = [
        await api.create_raw(b"{}", headers={}),
        await api.create(prompt=""),
        await api.create(model="other"),
        await api.task("nope"),
        await api.task("task-unified-1-abcdefgh"),
        await api.request("GET", api.emulator.base_url + "/v1/models"),
        await api.request("GET", api.emulator.base_url + "/v1/images/generations"),
    ]
    assert [reply.status for reply in replies] == [401, 400, 404, 400, 404, 404, 405]
    for reply in replies:
        validate("ErrorResponse", reply.json())
        check_error_shape(reply.json(), reply.status)


@pytest.mark.parametrize("kind", ["http_429", "http_500", "http_502", "http_503"])
async def test_injected_error_replies_conform(
    api_factory: ApiFactory, validate: SchemaCheck, kind: str
) -> None:
    """Injected HTTP errors use the documented envelopes."""
    api = await api_factory(faults=FaultPlan.script("create", [kind]))
    reply = await api.create()
    validate("ErrorResponse", reply.json())
    check_error_shape(reply.json(), reply.status)


async def test_unknown_fields_still_conform(api_factory: ApiFactory, validate: SchemaCheck) -> None:
    """A task with injected unknown fields still validates (the schema allows extras)."""
    api = await api_factory(faults=FaultPlan.script("task", ["unknown_fields"]))
    created = await api.create_task()
    body = await api.task_body(created["id"])
    assert "x_emulator_trace" in body
    validate("Task", body)


async def test_unknown_status_violates_only_the_status_enum(
    api_factory: ApiFactory, clock: ManualClock, validate: SchemaCheck
) -> None:
    """An injected unknown status breaks the Task schema's status enum and nothing else."""
    api = await api_factory(
        clock=clock,
        task_duration=10.0,
        faults=FaultPlan.script("task", [FaultRule(kind="unknown_status", status_value="queued")]),
    )
    created = await api.create_task()
    body = await api.task_body(created["id"])
    assert body["status"] == "queued"
    with pytest.raises(jsonschema.ValidationError) as caught:
        validate("Task", body)
    assert list(caught.value.absolute_path) == ["status"]
    validate("Task", {**body, "status": "pending"})
