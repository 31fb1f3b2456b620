"""The ``http_429/502/503_after_create`` faults: a task billed, then a typed 429/502/503.

That is what a gateway sends whose busy answer came after the task was made.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from zimage_async.emulator import FaultPlan, FaultRule

if TYPE_CHECKING:
    from tests.emulator.conftest import Api, ApiFactory, Reply

KEY = "run-0123456789abcdef"
BUSY = [
    pytest.param("http_429_after_create", 429, "rate_limit_error", id="429"),
    pytest.param("http_502_after_create", 502, "upstream_error", id="502"),
    pytest.param("http_503_after_create", 503, "service_unavailable_error", id="503"),
]


async def _create(api: Api) -> Reply:
    headers = {**api.auth(), "Content-Type": "application/json", "Idempotency-Key": KEY}
    body = {"model": "z-image-turbo", "prompt": "a cute cat"}
    return await api.create_raw(json.dumps(body).encode(), headers=headers)


@pytest.mark.parametrize(("kind", "status", "error_type"), BUSY)
async def test_the_task_is_billed_then_the_typed_error_answers(
    api_factory: ApiFactory, kind: str, status: int, error_type: str
) -> None:
    """The typed envelope of the status goes out, and the ledger holds the task."""
    api = await api_factory(faults=FaultPlan.script("create", [kind]))
    reply = await _create(api)
    assert reply.status == status
    assert reply.json()["error"]["type"] == error_type
    (entry,) = api.emulator.ledger
    assert entry.idempotency_key == KEY


@pytest.mark.parametrize(("kind", "status", "error_type"), BUSY)
async def test_every_send_bills_again_when_keys_are_ignored(
    api_factory: ApiFactory, kind: str, status: int, error_type: str
) -> None:
    """With ``idempotency="ignore"``, each create answered so bills one more task."""
    api = await api_factory(idempotency="ignore", faults=FaultPlan.script("create", [kind] * 3))
    for _ in range(3):
        assert (await _create(api)).status == status
    assert api.emulator.billed_counts(by="idempotency_key") == {KEY: 3}


@pytest.mark.parametrize(("kind", "status", "error_type"), BUSY)
async def test_a_retry_with_the_key_gets_the_original_task(
    api_factory: ApiFactory, kind: str, status: int, error_type: str
) -> None:
    """Where keys are honoured, the retry is answered with the task already made."""
    api = await api_factory(faults=FaultPlan.script("create", [kind]))
    await _create(api)
    retry = await _create(api)
    assert (retry.status, retry.json()["id"]) == (200, api.emulator.ledger[0].task_id)
    assert retry.headers["idempotency-replayed"] == "true"
    assert len(api.emulator.ledger) == 1


async def test_the_advice_is_sent_as_for_the_plain_kinds(api_factory: ApiFactory) -> None:
    """``retry_after_seconds`` and ``retry_after_in`` shape the answer as for ``http_429``."""
    rules = [
        FaultRule(kind="http_429_after_create", retry_after_seconds=7, retry_after_in="header"),
        FaultRule(kind="http_503_after_create", retry_after_seconds=9),
    ]
    api = await api_factory(idempotency="ignore", faults=FaultPlan.script("create", rules))
    first = await _create(api)
    assert first.headers["Retry-After"] == "7"
    assert "fallback_suggestion" not in first.json()["error"]
    second = await _create(api)
    assert second.json()["error"]["fallback_suggestion"] == "retry after 9 seconds"
    assert len(api.emulator.ledger) == 2


def test_the_kinds_hit_only_the_create_call() -> None:
    """Like the other ``*_after_create`` kinds, they apply to the create endpoint only."""
    with pytest.raises(ValueError, match="applies to create"):
        FaultRule(kind="http_503_after_create", endpoint="task")
