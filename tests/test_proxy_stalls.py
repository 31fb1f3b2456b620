"""A connection that never opens is a connection error, not a request that may have been sent.

A proxy that accepts the TCP connection and then never answers the ``CONNECT`` holds the
request before anything reached the API: ``connect_timeout`` bounds that wait, and a
create cut off there was not sent, so it is retried and never called uncertain. The
total limit of an exchange must not be able to cut a connection short first, so a
``connect_timeout`` that is not shorter than ``total_timeout`` is refused.

The API is said to be ``https://api.example.com`` (never resolved nor contacted: every
request goes to the test's proxy on 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from zimage_async import (
    APITimeoutError,
    ImageDownloadError,
    InvalidRequestError,
    RetryPolicy,
    Session,
)
from zimage_async._download import DownloadInfo, ImageLimits, stream_image

from .conftest import KEY
from .test_hardening_transport import opened, raw_server, transport

API = "https://api.example.com/apiv1"
THREE = RetryPolicy(wait_initial=0.01, wait_max=0.02, max_attempts=3)


class SilentProxy:
    """A proxy on 127.0.0.1 that reads each request line and then never answers."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.seen.append(head.decode().split("\r\n")[0])
        await reader.read()  # until the client hangs up


@contextlib.asynccontextmanager
async def silent_proxy() -> AsyncIterator[tuple[SilentProxy, dict[str, str]]]:
    proxy = SilentProxy()
    async with raw_server(proxy) as port:
        yield proxy, {"HTTPS_PROXY": f"http://127.0.0.1:{port}"}


async def test_a_create_held_by_a_silent_proxy_was_not_sent_and_is_retried() -> None:
    """A CONNECT never answered: "timed out while connecting" after connect_timeout, retried."""
    async with (
        silent_proxy() as (proxy, env),
        Session(api_key=KEY, base_url=API, environ=env, retry=THREE, connect_timeout=0.3) as zs,
    ):
        with pytest.raises(APITimeoutError) as info:
            await asyncio.wait_for(zs.submit("a cat"), 20)
    error = info.value
    assert type(error) is APITimeoutError  # not SubmissionUncertainError: nothing left
    assert error.request_sent is False
    assert "timed out while connecting" in str(error)
    assert proxy.seen == ["CONNECT api.example.com:443 HTTP/1.1"] * 3  # the retry policy's


async def test_an_image_download_held_by_a_silent_proxy_times_out_connecting() -> None:
    """An image host's CONNECT never answered: each attempt ends at connect_timeout."""
    async with silent_proxy() as (proxy, env):
        options: dict[str, Any] = {"environ": env, "api_base_url": API, "connect_timeout": 0.3}
        async with opened(transport(**options)) as t:
            download = stream_image(
                t,
                "https://images.example.com/0.png?sig=abc",
                task_id="task-unified-1-abcdefgh",
                index=0,
                expires_at=None,
                retry=THREE,
                rng=random.Random(0),
                limits=ImageLimits(total_timeout=60),
                info=DownloadInfo(),
            )
            with pytest.raises(ImageDownloadError) as info:
                await asyncio.wait_for(download.__anext__(), 20)
    assert "gave up after 3 attempts" in str(info.value)
    assert "timed out while connecting" in str(info.value)
    assert proxy.seen == ["CONNECT images.example.com:443 HTTP/1.1"] * 3


@pytest.mark.parametrize(
    ("options", "shown"),
    [
        ({"total_timeout": 3.0}, "10 s"),  # the default connect_timeout
        ({"total_timeout": 5.0, "connect_timeout": 5.0}, "5 s"),
        ({"total_timeout": 2.0, "connect_timeout": 4.5}, "4.5 s"),
    ],
    ids=["default-connect", "equal", "longer"],
)
def test_a_connect_timeout_not_shorter_than_the_total_timeout_is_refused(
    options: dict[str, Any], shown: str
) -> None:
    """The total limit would cut a connection short, and a create there looks sent: refused."""
    with pytest.raises(InvalidRequestError) as info:
        Session(api_key=KEY, base_url=API, **options)
    message = str(info.value)
    assert info.value.field == "connect_timeout"
    assert "shorter than total_timeout" in message
    assert f"it is {shown}" in message


def test_a_connect_timeout_shorter_than_the_total_timeout_is_taken() -> None:
    """Any connect_timeout below total_timeout is fine, a small total too."""
    Session(api_key=KEY, base_url=API, total_timeout=3.0, connect_timeout=2.9)
