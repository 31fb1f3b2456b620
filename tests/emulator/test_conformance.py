"""Every body the emulator sends conforms to the shipped openapi.yaml, as do its examples."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jsonschema  # type: ignore[import-untyped,unused-ignore]
import pytest

from zimage_async.emulator import FaultPlan, FaultRule, ManualClock

if TYPE_CHECKING:
    from tests.emulator.conftest import Api, ApiFactory, SchemaCheck

TASK_STATUSES = {"pending", "processing", "completed", "failed", "cancelled"}


def check_task_shape(body: dict[str, Any]) -> None:
    """The shape rules beyond the schema that both the examples and the emulator follow."""
    assert body["id"].startswith("task-unified-")
    assert body["object"] == "image.generation.task"
    assert 0 <= body["progress"] <= 100
    if body["status"] == "completed":
        assert body["progress"] == 100
        assert body["results"]
        assert "estimated_time" not in body.get("task_info", {})
    if body["status"] in ("failed", "cancelled"):
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
                if not status.isdigit():
                    continue  # a range such as 5XX: proxy pages, checked on their own
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


def test_proxy_replies_are_documented_as_html_or_typeless(openapi: dict[str, Any]) -> None:
    """Both endpoints document 5XX proxy replies: an HTML page or an envelope without type."""
    proxy = openapi["components"]["responses"]["ProxyError"]["content"]
    assert set(proxy) == {"text/html", "application/json"}
    assert "type" not in proxy["application/json"]["example"]["error"]
    for path in openapi["paths"].values():
        for operation in path.values():
            assert operation["responses"]["5XX"] == {"$ref": "#/components/responses/ProxyError"}


async def test_gateway_refusals_conform(api_factory: ApiFactory, validate: SchemaCheck) -> None:
    """402, 403, 409 and the typeless 5xx envelope validate against ErrorResponse."""
    plan = FaultPlan.script("create", ["http_402", "http_403", "typeless_5xx", "ok"])
    api = await api_factory(faults=plan)
    replies = [await api.create() for _ in range(3)]
    headers = {**api.auth(), "Content-Type": "application/json", "Idempotency-Key": "k" * 20}
    await api.create_raw(b'{"model": "z-image-turbo", "prompt": "a"}', headers=headers)
    replies.append(
        await api.create_raw(b'{"model": "z-image-turbo", "prompt": "b"}', headers=headers)
    )
    assert [reply.status for reply in replies] == [402, 403, 500, 409]
    for reply in replies:
        validate("ErrorResponse", reply.json())
    for reply in (replies[0], replies[1], replies[3]):
        check_error_shape(reply.json(), reply.status)


async def test_cancelled_and_linkless_tasks_conform(
    manual_api: Api, clock: ManualClock, validate: SchemaCheck
) -> None:
    """Cancelled tasks and completed tasks without links validate against the Task schema."""
    prompts = ["a [[cancel]]", "a [[results:empty]]", "a [[results:null]]", "a [[results:missing]]"]
    created = [await manual_api.create_task(prompt=prompt) for prompt in prompts]
    clock.advance(10.0)
    bodies = [await manual_api.task_body(task["id"]) for task in created]
    assert [body["status"] for body in bodies] == ["cancelled"] + ["completed"] * 3
    for body in bodies:
        validate("Task", body)
    check_task_shape(bodies[0])


@pytest.mark.parametrize(
    "shape",
    [
        "absent",
        "results",
        "progress",
        "task_info",
        "usage",
        "error",
        "error_message",
        "error_code",
        "error_without_code",
        "error_string",
    ],
)
async def test_null_shapes_conform(
    api_factory: ApiFactory, clock: ManualClock, validate: SchemaCheck, shape: str
) -> None:
    """Every null shape still validates against the (nullable) Task schema."""
    rule = FaultRule(kind="null_fields", null_shape=shape)  # type: ignore[arg-type]
    api = await api_factory(clock=clock, task_duration=1.0, faults=FaultPlan.random(rule))
    running = await api.create_task()
    failing = await api.create_task(prompt="a [[fail:service_error]]")
    clock.advance(1.0)
    bodies = [running, await api.task_body(running["id"]), await api.task_body(failing["id"])]
    for body in bodies:
        validate("Task", body)
