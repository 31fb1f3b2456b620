"""Idempotency keys: replays of the first task, conflicts, key lengths, billing, the ignore mode."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import aiohttp
import pytest

from zimage_async.emulator import Emulator, FaultPlan, ManualClock

if TYPE_CHECKING:
    from tests.emulator.conftest import Api, ApiFactory, Reply

KEY = "run-0123456789abcdef"


async def _create(api: Api, key: str | None, **fields: object) -> Reply:
    headers = {**api.auth(), "Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    body = {"model": "z-image-turbo", "prompt": "a cute cat", **fields}
    return await api.create_raw(json.dumps(body).encode(), headers=headers)


async def test_same_key_and_body_replays_the_first_task_unbilled(api: Api) -> None:
    """A second create with the same key and body answers the first task, billed once."""
    first = await _create(api, KEY)
    second = await _create(api, KEY)
    assert second.status == 200
    assert second.json()["id"] == first.json()["id"]
    assert second.headers["idempotency-replayed"] == "true"
    assert "idempotency-replayed" not in first.headers
    assert len(api.emulator.billed_tasks(idempotency_key=KEY)) == 1


async def test_replay_shows_the_task_as_it_stands_now(
    api_factory: ApiFactory, clock: ManualClock
) -> None:
    """A replay after the task finished answers the completed task, with its links."""
    api = await api_factory(clock=clock, task_duration=1.0)
    await _create(api, KEY)
    clock.advance(1.0)
    body = (await _create(api, KEY)).json()
    assert body["status"] == "completed"
    assert body["results"]


async def test_body_key_order_does_not_matter(api: Api) -> None:
    """Bodies are compared as JSON objects, so reordered fields still replay."""
    headers = {**api.auth(), "Content-Type": "application/json", "Idempotency-Key": KEY}
    first = await api.create_raw(b'{"model":"z-image-turbo","prompt":"p"}', headers=headers)
    second = await api.create_raw(b'{"prompt": "p", "model": "z-image-turbo"}', headers=headers)
    assert second.json()["id"] == first.json()["id"]


async def test_same_key_with_another_body_is_a_409(api: Api) -> None:
    """Reusing a key for a different body is refused with idempotency_error, billing nothing."""
    first = await _create(api, KEY)
    reply = await _create(api, KEY, prompt="a different dog")
    assert reply.status == 409
    error = reply.json()["error"]
    assert (error["code"], error["type"], error["param"]) == (
        409,
        "idempotency_error",
        "Idempotency-Key",
    )
    assert first.json()["id"] in error["message"]
    assert len(api.emulator.ledger) == 1


@pytest.mark.parametrize("length", [1, 15, 97, 200])
async def test_keys_of_the_wrong_length_are_refused(api: Api, length: int) -> None:
    """A key shorter than 16 or longer than 96 characters is a 400 naming the header."""
    reply = await _create(api, "k" * length)
    assert reply.status == 400
    error = reply.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "Idempotency-Key")
    assert api.emulator.ledger == ()


@pytest.mark.parametrize("length", [16, 96])
async def test_keys_at_the_length_limits_are_accepted(api: Api, length: int) -> None:
    """Keys of exactly 16 and 96 characters are accepted."""
    assert (await _create(api, "k" * length)).status == 200


async def test_keys_expire_after_24_hours(api_factory: ApiFactory, clock: ManualClock) -> None:
    """After 24 clock hours the same key and body make (and bill) a new task."""
    api = await api_factory(clock=clock)
    first = await _create(api, KEY)
    clock.advance(86_400.0)
    second = await _create(api, KEY)
    assert second.json()["id"] != first.json()["id"]
    assert "idempotency-replayed" not in second.headers
    assert api.emulator.billed_counts(by="idempotency_key") == {KEY: 2}


@pytest.mark.parametrize(
    "kind",
    ["http_500_after_create", "html_5xx_after_create", "typeless_5xx_after_create"],
)
async def test_retry_after_a_billed_error_gets_the_original_task(
    api_factory: ApiFactory, kind: str
) -> None:
    """A create billed then answered with an error is replayed to a retry with its key."""
    api = await api_factory(faults=FaultPlan.script("create", [kind]))
    assert (await _create(api, KEY)).status >= 500
    (entry,) = api.emulator.ledger
    retry = await _create(api, KEY)
    assert (retry.status, retry.json()["id"]) == (200, entry.task_id)
    assert retry.headers["idempotency-replayed"] == "true"
    assert len(api.emulator.ledger) == 1


async def test_retry_after_a_reset_after_create_gets_the_original_task(
    api_factory: ApiFactory,
) -> None:
    """A create billed and then cut off by a reset is replayed to a retry with its key."""
    api = await api_factory(faults=FaultPlan.script("create", ["reset_after_create"]))
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await _create(api, KEY)
    retry = await _create(api, KEY)
    assert retry.json()["id"] == api.emulator.ledger[0].task_id
    assert [record.replayed for record in api.emulator.requests] == [False, True]


async def test_a_refused_create_does_not_claim_the_key(api_factory: ApiFactory) -> None:
    """A key whose create was refused before billing (503) makes a new task on retry."""
    api = await api_factory(faults=FaultPlan.script("create", ["http_503"]))
    assert (await _create(api, KEY)).status == 503
    retry = await _create(api, KEY)
    assert retry.status == 200
    assert "idempotency-replayed" not in retry.headers
    assert len(api.emulator.ledger) == 1


async def test_ignore_mode_bills_every_create(api_factory: ApiFactory) -> None:
    """With idempotency="ignore", the same key makes a new billed task every time."""
    api = await api_factory(idempotency="ignore")
    ids = {(await _create(api, KEY)).json()["id"] for _ in range(3)}
    assert len(ids) == 3
    assert api.emulator.billed_counts(by="idempotency_key") == {KEY: 3}


async def test_ignore_mode_does_not_check_key_lengths(api_factory: ApiFactory) -> None:
    """With idempotency="ignore", a short key is not refused."""
    api = await api_factory(idempotency="ignore")
    assert (await _create(api, "short")).status == 200


async def test_billed_counts_group_by_prompt(api: Api) -> None:
    """billed_counts(by="prompt") counts billed tasks per prompt; replays add nothing."""
    await _create(api, KEY, prompt="a")
    await _create(api, KEY, prompt="a")
    await _create(api, None, prompt="a")
    await _create(api, None, prompt="b")
    assert api.emulator.billed_counts(by="prompt") == {"a": 2, "b": 1}
    assert api.emulator.billed_counts(by="idempotency_key") == {KEY: 1, None: 2}
    assert [entry.prompt for entry in api.emulator.billed_tasks(prompt="a")] == ["a", "a"]
    assert len(api.emulator.replayed_requests) == 1


def test_unknown_idempotency_modes_are_refused() -> None:
    """The idempotency option must be honour or ignore."""
    with pytest.raises(ValueError, match="idempotency"):
        Emulator(idempotency="strict")  # type: ignore[arg-type]
