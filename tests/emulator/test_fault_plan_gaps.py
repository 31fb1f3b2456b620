"""Fault plans that injected nothing, and options taken that the wire or the host could not.

* A script step waiting for a body it applies to (``null_fields`` with an ``error_*``
  shape, while the task runs) turned off every rule and later script of its endpoint
  until then: a resilience test passed with no fault injected.
* Such a step on ``create``, whose answer is always ``pending``, could never apply, and
  blocked its endpoint's faults for good; it is refused when the plan is made.
* ``fail_next`` took a code that is no string (an integer ``error.code`` on the wire),
  codes with spaces, a message that is no string, a count of ``2.5`` (a bare TypeError)
  or ``True``.
* ``redirect_host`` took any host name (a typo sends the client elsewhere), and
  ``status_value`` any value (``None`` went out as ``"status": null``).
"""

from __future__ import annotations

import pytest

from zimage_async.emulator import FaultPlan, FaultRule

from .conftest import Api, ApiFactory


async def test_a_waiting_script_step_leaves_the_rules_on(api_factory: ApiFactory) -> None:
    """The step waits for a failed task; meanwhile the task reads get the rule's 503."""
    plan = FaultPlan.script(
        "task", [FaultRule(kind="null_fields", null_shape="error_string")]
    ) + FaultPlan(rules=(FaultRule(kind="http_503", endpoint="task", rate=1.0),))
    api: Api = await api_factory(task_duration=30.0, faults=plan)
    task = await api.create_task(prompt="a cat")
    reply = await api.task(task["id"])
    assert reply.status == 503
    assert api.emulator.faults_injected == {"http_503": 1}


async def test_a_waiting_step_leaves_the_next_script_on(api_factory: ApiFactory) -> None:
    """Two scripts on ``task``: the first waits, the second's 500 still comes."""
    plan = FaultPlan.script(
        "task", [FaultRule(kind="null_fields", null_shape="error_message")]
    ) + FaultPlan.script("task", ["http_500"])
    api: Api = await api_factory(task_duration=30.0, faults=plan)
    task = await api.create_task(prompt="a cat")
    assert (await api.task(task["id"])).status == 500
    assert (await api.task(task["id"])).status == 200


@pytest.mark.parametrize(
    "shape", ["error_message", "error_code", "error_without_code", "error_string"]
)
def test_a_step_that_can_never_apply_to_a_create_is_refused(shape: str) -> None:
    with pytest.raises(ValueError, match="create"):
        FaultPlan.script("create", [FaultRule(kind="null_fields", null_shape=shape)])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="create"):
        FaultRule(kind="null_fields", endpoint="create", null_shape=shape)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "options", "named"),
    [
        ((123,), {}, "code"),
        (("a b",), {}, "code"),
        (("line\nbreak",), {}, "code"),
        (("x" * 65,), {}, "code"),
        (("service_error", 5), {}, "message"),
        (("service_error",), {"count": 2.5}, "count"),
        (("service_error",), {"count": True}, "count"),
        (("service_error",), {"count": 0}, "count"),
    ],
    ids=repr,
)
async def test_fail_next_refuses_what_the_wire_cannot_carry(
    api: Api, args: tuple[object, ...], options: dict[str, object], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        api.emulator.fail_next(*args, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("host", ["example.invalid", "10.0.0.1", "", "127.0.0.1 "])
def test_a_redirect_host_that_is_not_this_machine_is_refused(host: str) -> None:
    with pytest.raises(ValueError, match="redirect_host"):
        FaultRule(kind="redirect", redirect_host=host)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.0.0.2", "::1"])
def test_a_loopback_redirect_host_is_taken(host: str) -> None:
    assert FaultRule(kind="redirect", redirect_host=host).redirect_host == host


@pytest.mark.parametrize("value", [None, "", "completed", "failed", "cancelled", 3], ids=repr)
def test_a_status_value_that_is_no_unfinished_status_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match="status_value"):
        FaultRule(kind="unknown_status", status_value=value)  # type: ignore[arg-type]
