"""The Emulator object: listeners, URLs, lifecycle, options and inspection."""

from __future__ import annotations

import re
import socket
from typing import TYPE_CHECKING

import aiohttp
import pytest

from zimage_async.emulator import Emulator

if TYPE_CHECKING:
    from tests.emulator.conftest import Api, ApiFactory


async def test_urls_point_at_two_loopback_listeners(api: Api) -> None:
    """base_url is the /apiv1 prefix on one port; the image origin is on another."""
    emulator = api.emulator
    base = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/apiv1", emulator.base_url)
    origin = re.fullmatch(r"http://127\.0\.0\.1:(\d+)", emulator.image_base_url)
    assert base is not None and origin is not None
    assert base.group(1) != origin.group(1)
    assert emulator.api_key == "zimage-emulator-key"


async def test_result_links_point_at_the_image_origin(api: Api) -> None:
    """Result URLs have the documented shape on the origin, not on the API."""
    body = await api.completed_task()
    pattern = (
        re.escape(api.emulator.image_base_url)
        + r"/files/task-unified-\d+-[a-z0-9]{8}/0\.png\?expires=\d+&sig=[0-9a-f]{64}"
    )
    assert re.fullmatch(pattern, body["results"][0])


async def test_fixed_ports_are_used(api_factory: ApiFactory) -> None:
    """Explicit port and image_port are bound as given."""
    ports = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    api = await api_factory(port=ports[0], image_port=ports[1])
    assert api.emulator.base_url == f"http://127.0.0.1:{ports[0]}/apiv1"
    assert api.emulator.image_base_url == f"http://127.0.0.1:{ports[1]}"


async def test_start_and_close_are_idempotent() -> None:
    """start() twice and close() twice are harmless; start after close is an error."""
    emulator = Emulator()
    await emulator.start()
    await emulator.start()
    await emulator.close()
    await emulator.close()
    with pytest.raises(RuntimeError):
        await emulator.start()


def test_urls_need_a_running_emulator() -> None:
    """base_url before start is a RuntimeError that says how to start it."""
    with pytest.raises(RuntimeError, match="start"):
        _ = Emulator().base_url


async def test_closed_emulator_refuses_connections(session: aiohttp.ClientSession) -> None:
    """After the context manager exits, the port no longer answers."""
    async with Emulator() as emulator:
        url = emulator.base_url + "/v1/tasks/task-unified-1-abcdefgh"
    with pytest.raises(aiohttp.ClientConnectionError):
        async with session.get(url):
            pass


@pytest.mark.parametrize(
    "host",
    ["0.0.0.0", "192.168.1.10", "localhost", "example.com", "::"],  # noqa: S104
)
def test_non_loopback_hosts_are_refused(host: str) -> None:
    """The emulator refuses to bind anything but a loopback address."""
    with pytest.raises(ValueError, match="loopback"):
        Emulator(host=host)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"task_duration": -1.0}, id="negative-duration"),
        pytest.param({"queue_delay": float("nan")}, id="nan-queue-delay"),
        pytest.param({"images_per_task": 0}, id="no-images"),
        pytest.param({"link_ttl": 0.0}, id="zero-ttl"),
        pytest.param({"api_keys": ()}, id="no-keys"),
        pytest.param({"callback_mode": "lenient"}, id="unknown-callback-mode"),
        pytest.param({"image_format": "gif"}, id="unknown-format"),
        pytest.param({"callback_retry_delays": (-1.0,)}, id="negative-retry-delay"),
    ],
)
def test_invalid_options_are_refused(options: dict[str, object]) -> None:
    """Nonsensical options raise ValueError when the emulator is made."""
    with pytest.raises(ValueError):  # noqa: PT011 - each message is option-specific
        Emulator(**options)  # type: ignore[arg-type]


async def test_unknown_route_answers_404_envelope(api: Api) -> None:
    """A path the API does not document answers 404 with the JSON envelope."""
    reply = await api.request(
        "POST", api.emulator.base_url + "/v1/tasks/x/cancel", headers=api.auth()
    )
    assert reply.status == 404
    assert reply.json()["error"]["type"] == "not_found_error"
    assert api.emulator.request_counts == {"other": 1}


async def test_wrong_method_answers_405_envelope(api: Api) -> None:
    """DELETE on a task answers 405 with the JSON envelope."""
    reply = await api.request("DELETE", api.emulator.base_url + "/v1/tasks/task-unified-1-x")
    assert reply.status == 405
    assert reply.json()["error"]["code"] == 405


async def test_requests_are_recorded_with_redacted_authorization(api: Api) -> None:
    """Each request is recorded with endpoint, method, path and status, key redacted."""
    created = await api.create_task()
    await api.task(created["id"])
    create, task = api.emulator.requests
    assert (create.endpoint, create.method, create.path, create.status) == (
        "create",
        "POST",
        "/apiv1/v1/images/generations",
        200,
    )
    assert (task.endpoint, task.method, task.status) == ("task", "GET", 200)
    assert create.header("authorization") == "<present>"
    assert api.emulator.api_key not in repr(api.emulator.requests)
    assert api.emulator.request_counts == {"create": 1, "task": 1}


async def test_image_bytes_rejects_unknown_and_failed_tasks(api: Api) -> None:
    """image_bytes raises KeyError for unknown ids and for tasks that fail."""
    failed = await api.create_task(prompt="[[fail:service_error]]")
    with pytest.raises(KeyError):
        await api.emulator.image_bytes("task-unified-1-nothere0")
    with pytest.raises(KeyError):
        await api.emulator.image_bytes(failed["id"])


async def test_snapshot_of_an_unknown_task_is_a_key_error(api: Api) -> None:
    """emulator.task(id) raises KeyError for ids it never issued."""
    with pytest.raises(KeyError):
        api.emulator.task("task-unified-1-nothere0")


async def test_repr_shows_state_without_secrets(api: Api) -> None:
    """The repr names the state and the task count, not the keys."""
    await api.create_task()
    assert repr(api.emulator) == "<Emulator open tasks=1>"
