"""Errors name the call by its path, whichever way it failed.

``APIError.path`` and ``APIConnectionError.path`` say which call failed, so that
handlers can group errors by it: both hold the URL's path (``/apiv1/v1/tasks/...``),
never the scheme, host and port of one but not the other.
"""

from __future__ import annotations

import socket

import pytest

from zimage_async import (
    APIConnectionError,
    APIError,
    NotFoundError,
    RetryPolicy,
    Session,
)
from zimage_async.emulator import Emulator

TASK_ID = "task-unified-1796221075-zzzzzzzz"
QUICK = RetryPolicy(wait_initial=0.01, wait_max=0.02, max_attempts=1)


async def test_a_task_read_answered_with_an_error_names_the_path(emulator: Emulator) -> None:
    """A 404 to a task read: ``path`` is the read's path, and the message says it."""
    async with Session(
        api_key=emulator.api_key, base_url=emulator.base_url, retry=QUICK
    ) as session:
        with pytest.raises(NotFoundError) as caught:
            await session.get_task(TASK_ID)
    assert caught.value.path == f"/apiv1/v1/tasks/{TASK_ID}"
    assert "127.0.0.1" not in str(caught.value)
    assert f"GET /apiv1/v1/tasks/{TASK_ID}" in str(caught.value)


async def test_a_create_answered_with_an_error_names_the_path(emulator: Emulator) -> None:
    """A create refused by the service (401): ``path`` is the create's path."""
    async with Session(api_key="k" * 32, base_url=emulator.base_url, retry=QUICK) as session:
        with pytest.raises(APIError) as caught:
            await session.submit("a cat")
    assert caught.value.status == 401
    assert caught.value.path == "/apiv1/v1/images/generations"
    assert "127.0.0.1" not in str(caught.value)


async def test_a_read_that_could_not_connect_names_the_same_kind_of_path() -> None:
    """No server at the port: ``APIConnectionError.path`` is the path too."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with Session(
        api_key="k" * 32, base_url=f"http://127.0.0.1:{port}/apiv1", retry=QUICK
    ) as session:
        with pytest.raises(APIConnectionError) as caught:
            await session.get_task(TASK_ID)
    assert caught.value.path == f"/apiv1/v1/tasks/{TASK_ID}"
