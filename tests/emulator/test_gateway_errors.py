"""Gateway-family error replies: proxy HTML pages, typeless envelopes, 402 and 403 refusals."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from zimage_async.emulator import FaultPlan, FaultRule

if TYPE_CHECKING:
    from tests.emulator.conftest import ApiFactory


@pytest.mark.parametrize("status", [500, 502, 503, 504, 520, 521, 522, 523, 524])
async def test_html_5xx_on_create_is_a_proxy_page_and_bills_nothing(
    api_factory: ApiFactory, status: int
) -> None:
    """html_5xx answers an HTML page with the chosen status and creates no task."""
    rule = FaultRule(kind="html_5xx", http_status=status)
    api = await api_factory(faults=FaultPlan.script("create", [rule]))
    reply = await api.create()
    assert reply.status == status
    assert reply.headers["Content-Type"].startswith("text/html")
    assert str(status) in reply.data.decode()
    assert not reply.data.lstrip().startswith(b"{")
    assert api.emulator.ledger == ()


async def test_html_5xx_defaults_to_502(api_factory: ApiFactory) -> None:
    """Without http_status, html_5xx is a 502 Bad Gateway page."""
    api = await api_factory(faults=FaultPlan.script("create", ["html_5xx"]))
    reply = await api.create()
    assert reply.status == 502
    assert b"Bad Gateway" in reply.data


async def test_html_5xx_after_create_bills_the_task_behind_the_page(
    api_factory: ApiFactory,
) -> None:
    """html_5xx_after_create bills a task, answers the proxy page, and the task is readable."""
    rule = FaultRule(kind="html_5xx_after_create", http_status=524)
    api = await api_factory(faults=FaultPlan.script("create", [rule]))
    reply = await api.create()
    assert reply.status == 524
    assert reply.headers["Content-Type"].startswith("text/html")
    (entry,) = api.emulator.ledger
    assert (await api.task(entry.task_id)).status == 200


async def test_typeless_5xx_on_create_is_an_envelope_without_type(api_factory: ApiFactory) -> None:
    """typeless_5xx answers a JSON envelope with code and message but no type, no task."""
    api = await api_factory(faults=FaultPlan.script("create", ["typeless_5xx"]))
    reply = await api.create()
    assert reply.status == 500
    assert reply.json() == {"error": {"code": 500, "message": "Internal Server Error"}}
    assert api.emulator.ledger == ()


async def test_typeless_5xx_after_create_bills_a_task(api_factory: ApiFactory) -> None:
    """typeless_5xx_after_create bills a task and answers the typeless envelope."""
    rule = FaultRule(kind="typeless_5xx_after_create", http_status=503)
    api = await api_factory(faults=FaultPlan.script("create", [rule]))
    reply = await api.create()
    assert reply.status == 503
    assert "type" not in reply.json()["error"]
    assert len(api.emulator.ledger) == 1


@pytest.mark.parametrize(
    ("kind", "content_type"),
    [("html_5xx", "text/html"), ("typeless_5xx", "application/json")],
)
async def test_task_reads_can_get_proxy_replies(
    api_factory: ApiFactory, kind: str, content_type: str
) -> None:
    """html_5xx and typeless_5xx hit GET /v1/tasks/{id}; the next read is normal."""
    rule = FaultRule(kind=kind, http_status=504)  # type: ignore[arg-type]
    api = await api_factory(faults=FaultPlan.script("task", [rule]))
    created = await api.create_task()
    reply = await api.task(created["id"])
    assert (reply.status, reply.headers["Content-Type"].split(";")[0]) == (504, content_type)
    assert (await api.task(created["id"])).status == 200


async def test_html_5xx_on_the_image_host(api_factory: ApiFactory) -> None:
    """The image origin can answer a proxy HTML page too."""
    api = await api_factory(faults=FaultPlan.script("image", ["html_5xx"]))
    body = await api.completed_task()
    reply = await api.request("GET", body["results"][0])
    assert (reply.status, reply.headers["Content-Type"].split(";")[0]) == (502, "text/html")


@pytest.mark.parametrize(
    "code",
    [
        "insufficient_quota",
        "quota_not_enough",
        "key_disabled",
        "key_model_not_allowed",
        "user_disabled",
    ],
)
async def test_402_is_a_pre_charge_refusal_with_the_gateway_code(
    api_factory: ApiFactory, code: str
) -> None:
    """http_402 answers insufficient_quota_error with the gateway code and bills nothing.

    Quota and key or account codes alike (the gateway family sends its key refusals as
    402), each with its own message.
    """
    rule = FaultRule(kind="http_402", error_code=code)
    api = await api_factory(faults=FaultPlan.script("create", [rule]))
    reply = await api.create()
    assert reply.status == 402
    error = reply.json()["error"]
    assert (error["code"], error["type"]) == (code, "insufficient_quota_error")
    assert "refused before charging" not in error["message"]
    assert api.emulator.ledger == ()


async def test_402_defaults_to_insufficient_quota(api_factory: ApiFactory) -> None:
    """Without error_code, http_402 carries the code insufficient_quota."""
    api = await api_factory(faults=FaultPlan.script("create", ["http_402"]))
    assert (await api.create()).json()["error"]["code"] == "insufficient_quota"


async def test_403_is_the_documented_permission_error(api_factory: ApiFactory) -> None:
    """http_403 answers the API's documented 403 (code 403, param model); nothing billed.

    It answered the gateway code ``key_model_not_allowed`` with a 403, where the gateway
    family sends its key refusals as 402 (``http_402`` with that ``error_code``).
    """
    api = await api_factory(faults=FaultPlan.script("create", ["http_403"]))
    reply = await api.create()
    assert reply.status == 403
    assert reply.json() == {
        "error": {
            "code": 403,
            "message": "Access denied for this model",
            "type": "permission_error",
            "param": "model",
        }
    }
    assert api.emulator.ledger == ()


def test_http_status_must_be_a_5xx() -> None:
    """A proxy fault with a non-5xx status is refused up front."""
    with pytest.raises(ValueError, match="http_status"):
        FaultRule(kind="html_5xx", http_status=404)


def test_402_only_hits_the_create_call() -> None:
    """http_402 is a pre-charge refusal: it cannot target task reads."""
    with pytest.raises(ValueError, match="applies to"):
        FaultRule(kind="http_402", endpoint="task")
