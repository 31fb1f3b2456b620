"""The emulator against clients that send what it cannot take, and callbacks it must not send.

Every request goes over real HTTP to the emulator on 127.0.0.1 (as raw bytes where
aiohttp's client would not send them). The emulator must answer as documented, bill
nothing it should not, keep each API key's tasks to that key, record no crash in
``internal_errors``, and never send a callback to another machine.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import attrs
import pytest

from zimage_async.emulator import Emulator, ManualClock, _callbacks
from zimage_async.emulator._images import ImageSpec, render
from zimage_async.pytest_plugin import EmulatorFactory

from .conftest import until

CREATE = "/v1/images/generations"
KEY_A = "key-of-team-a"
KEY_B = "key-of-team-b"
IDEMPOTENCY_KEY = "order-4711-0001-xx"
JSON = {"Content-Type": "application/json"}


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _post(
    client: aiohttp.ClientSession, emulator: Emulator, data: bytes, headers: dict[str, str]
) -> tuple[int, Any, str | None]:
    url = emulator.base_url + CREATE
    async with client.post(url, data=data, headers={**JSON, **headers}) as reply:
        return reply.status, await reply.json(), reply.headers.get("idempotency-replayed")


async def _get(
    client: aiohttp.ClientSession, emulator: Emulator, task_id: str, key: str
) -> tuple[int, Any]:
    url = f"{emulator.base_url}/v1/tasks/{task_id}"
    async with client.get(url, headers=_auth(key)) as reply:
        return reply.status, await reply.json()


def _api_port(emulator: Emulator) -> int:
    return int(emulator.base_url.rsplit(":", 1)[1].split("/", 1)[0])


# -- a prompt UTF-8 cannot encode ------------------------------------------------------------


async def test_a_prompt_with_a_lone_surrogate_is_refused_and_not_billed(
    zimage_emulator: Emulator, client: aiohttp.ClientSession
) -> None:
    """A prompt holding a lone surrogate (valid JSON) gets the prompt's 400, not a task."""
    body = b'{"model": "z-image-turbo", "prompt": "a cat \\ud800"}'
    status, reply, _ = await _post(client, zimage_emulator, body, _auth(zimage_emulator.api_key))
    assert status == 400, reply
    assert reply["error"]["type"] == "invalid_request_error"
    assert reply["error"]["param"] == "prompt"
    assert "surrogate" in reply["error"]["message"]
    assert zimage_emulator.ledger == ()
    assert zimage_emulator.internal_errors == ()


@pytest.mark.parametrize("renderer", ["plain", "pillow"])
def test_an_image_of_a_prompt_with_a_lone_surrogate_still_renders(renderer: str) -> None:
    """The image code does not crash on text UTF-8 cannot encode (U+FFFD is drawn instead)."""
    spec = ImageSpec(
        prompt="a cat \ud800",
        seed=1,
        width_pixels=64,
        height_pixels=64,
        image_format="png",
        renderer="pillow" if renderer == "pillow" else "plain",
    )
    assert render(spec).startswith(b"\x89PNG\r\n\x1a\n")
    assert spec.digest() != attrs.evolve(spec, prompt="a cat \ud801").digest()


# -- a body that cannot be read --------------------------------------------------------------


async def test_a_create_body_with_broken_gzip_is_refused_with_400(
    zimage_emulator: Emulator, client: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """A body the emulator cannot decode answers 400 (no task was made), not a 500 crash."""
    headers = {**_auth(zimage_emulator.api_key), "Content-Encoding": "gzip"}
    with caplog.at_level(logging.ERROR, logger="aiohttp"):
        status, reply, _ = await _post(client, zimage_emulator, b"0123456789", headers)
        await until(lambda: zimage_emulator.request_counts.get("create", 0) == 1)
        await asyncio.sleep(0.05)  # aiohttp would log a leftover body's error just after
    assert status == 400, reply
    assert reply["error"]["type"] == "invalid_request_error"
    assert "could not be read" in reply["error"]["message"]
    assert [record.status for record in zimage_emulator.requests] == [400]
    assert zimage_emulator.ledger == ()
    assert zimage_emulator.internal_errors == ()
    assert caplog.records == []  # not logged as an unhandled exception either


async def test_a_client_hanging_up_mid_body_is_dropped_without_a_crash(
    zimage_emulator: Emulator,
) -> None:
    """A create whose client leaves before sending its whole body is dropped quietly."""
    head = (
        f"POST /apiv1{CREATE} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {zimage_emulator.api_key}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    ).encode()
    _, writer = await asyncio.open_connection("127.0.0.1", _api_port(zimage_emulator))
    writer.write(head + b'{"model"')
    await writer.drain()
    writer.close()
    await until(lambda: zimage_emulator.request_counts.get("create", 0) == 1)
    (record,) = zimage_emulator.requests
    assert record.status is None  # no reply: the client was gone
    assert zimage_emulator.internal_errors == ()
    assert zimage_emulator.ledger == ()


# -- tasks and idempotency keys belong to one API key ----------------------------------------


async def test_a_task_read_with_another_api_key_is_not_found(
    zimage_emulator_factory: EmulatorFactory, client: aiohttp.ClientSession
) -> None:
    """Key B reading key A's task gets the same 404 as for a task that does not exist."""
    emulator = await zimage_emulator_factory(api_keys=(KEY_A, KEY_B))
    body = json.dumps({"model": "z-image-turbo", "prompt": "a cat"}).encode()
    status, created, _ = await _post(client, emulator, body, _auth(KEY_A))
    assert status == 200, created
    task_id = created["id"]
    unknown = "task-unified-1-zzzzzzzz"
    assert (await _get(client, emulator, task_id, KEY_A))[0] == 200
    status, reply = await _get(client, emulator, task_id, KEY_B)
    not_found_status, not_found = await _get(client, emulator, unknown, KEY_B)
    assert (status, not_found_status) == (404, 404)
    assert json.dumps(reply) == json.dumps(not_found).replace(unknown, task_id)


async def test_the_same_idempotency_key_under_another_api_key_is_a_new_task(
    zimage_emulator_factory: EmulatorFactory, client: aiohttp.ClientSession
) -> None:
    """Another key's Idempotency-Key neither replays nor refuses: it is a new create."""
    emulator = await zimage_emulator_factory(api_keys=(KEY_A, KEY_B))
    body = json.dumps({"model": "z-image-turbo", "prompt": "a cat"}).encode()
    other = json.dumps({"model": "z-image-turbo", "prompt": "a dog"}).encode()
    a_headers = {**_auth(KEY_A), "Idempotency-Key": IDEMPOTENCY_KEY}
    b_headers = {**_auth(KEY_B), "Idempotency-Key": IDEMPOTENCY_KEY}
    _, a_task, _ = await _post(client, emulator, body, a_headers)
    status, b_task, replayed = await _post(client, emulator, body, b_headers)
    assert (status, replayed) == (200, None), b_task
    assert b_task["id"] != a_task["id"]
    status, again, replayed = await _post(client, emulator, body, a_headers)
    assert (status, replayed, again["id"]) == (200, "true", a_task["id"])
    status, refused, _ = await _post(client, emulator, other, b_headers)
    assert status == 409, refused  # B's own use of the key, naming B's task only
    assert b_task["id"] in refused["error"]["message"]
    assert a_task["id"] not in refused["error"]["message"]
    assert len(emulator.ledger) == 2


async def test_billed_tasks_of_an_idempotency_key_are_counted_per_api_key(
    zimage_emulator_factory: EmulatorFactory, client: aiohttp.ClientSession
) -> None:
    """One key used by two API keys: billed once for each, and each counted on its own."""
    emulator = await zimage_emulator_factory(api_keys=(KEY_A, KEY_B))
    body = json.dumps({"model": "z-image-turbo", "prompt": "a cat"}).encode()
    for key in (KEY_A, KEY_A, KEY_B):  # A's second create is a replay
        await _post(client, emulator, body, {**_auth(key), "Idempotency-Key": IDEMPOTENCY_KEY})
    assert len(emulator.billed_tasks(idempotency_key=IDEMPOTENCY_KEY)) == 2
    for key in (KEY_A, KEY_B):
        (entry,) = emulator.billed_tasks(idempotency_key=IDEMPOTENCY_KEY, api_key=key)
        assert entry.api_key == key
        assert key not in repr(entry)
    assert emulator.billed_tasks(api_key="key-of-nobody") == ()


# -- callbacks go to loopback hosts only -----------------------------------------------------


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.1.2.3", "[::1]", "[::ffff:127.0.0.1]", "localhost", "LOCALHOST"]
)
def test_loopback_hosts_are_deliverable(host: str) -> None:
    """A plain loopback address literal, or the name localhost, may get a callback."""
    assert _callbacks.is_deliverable(f"http://{host}:8080/hook")


@pytest.mark.parametrize(
    "host",
    [
        "hooks.example.com",
        "93.184.216.34",
        "10.0.0.1",
        "[2001:db8::1]",
        "localhost.",
        "api.localhost",
        "0x7f.1",
        "2130706433",
        "127.0.0.1.example.com",
    ],
)
def test_other_hosts_are_not_deliverable(host: str) -> None:
    """Any other host, or a loopback address spelled so a resolver would be asked, is not."""
    assert not _callbacks.is_deliverable(f"https://{host}/hook")


async def test_a_callback_to_a_public_host_is_recorded_and_never_sent(
    zimage_emulator_factory: EmulatorFactory,
    client: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Strict mode accepts a public callback_url but records one unsent attempt, no retry."""
    looked_up: list[object] = []

    async def no_lookup(host: object, *args: object, **kwargs: object) -> list[object]:
        looked_up.append(host)  # a delivery would resolve the name first: refuse it here
        raise OSError("the test allows no name lookups")

    clock = ManualClock()
    emulator = await zimage_emulator_factory(
        clock=clock, task_duration=10.0, callback_mode="strict", callback_retry_delays=(1.0,)
    )
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", no_lookup)
    url = "https://hooks.example.com/x"
    body = json.dumps({"model": "z-image-turbo", "prompt": "a cat", "callback_url": url})
    status, created, _ = await _post(client, emulator, body.encode(), _auth(emulator.api_key))
    assert status == 200, created
    clock.advance(10.0)
    await asyncio.wait_for(emulator.wait_for_callbacks(), timeout=2.0)
    clock.advance(100.0)  # past every retry delay: no second attempt
    await asyncio.wait_for(emulator.wait_for_callbacks(), timeout=2.0)
    (attempt,) = emulator.callback_attempts
    assert (attempt.task_id, attempt.url, attempt.attempt) == (created["id"], url, 1)
    assert attempt.status is None
    assert attempt.error is not None and "loopback addresses only" in attempt.error
    assert looked_up == []
    assert emulator.internal_errors == ()
