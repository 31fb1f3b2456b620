"""Image bodies without Content-Length, cut short or padded, and the script User-Agent block."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
import pytest

from zimage_async.emulator import Emulator, FaultPlan, FaultRule

if TYPE_CHECKING:
    from tests.emulator.conftest import ApiFactory

PRODUCT_AGENT = {"User-Agent": "zimage-async/1.2.3"}


@pytest.mark.parametrize("framing", ["close", "chunked"])
async def test_unframed_mode_sends_the_whole_image_without_a_length(
    api_factory: ApiFactory, framing: str
) -> None:
    """image_framing close or chunked sends the full image and no Content-Length."""
    api = await api_factory(image_framing=framing)
    body = await api.completed_task()
    reply = await api.request("GET", body["results"][0])
    assert reply.status == 200
    assert "Content-Length" not in reply.headers
    assert reply.data == await api.emulator.image_bytes(body["id"])
    assert api.emulator.requests[-1].status == 200


async def test_chunked_mode_says_so(api_factory: ApiFactory) -> None:
    """image_framing chunked uses Transfer-Encoding: chunked."""
    api = await api_factory(image_framing="chunked")
    body = await api.completed_task()
    async with api.session.get(body["results"][0]) as response:
        assert response.headers["Transfer-Encoding"] == "chunked"
        await response.read()


async def test_truncate_close_ends_a_close_delimited_body_early_and_cleanly(
    api_factory: ApiFactory,
) -> None:
    """truncate_close sends part of the image, then closes: the HTTP layer sees success."""
    rule = FaultRule(kind="truncate_close", truncate_fraction=0.25)
    api = await api_factory(faults=FaultPlan.script("image", [rule]))
    body = await api.completed_task()
    full = await api.emulator.image_bytes(body["id"])
    reply = await api.request("GET", body["results"][0])
    assert reply.status == 200
    assert "Content-Length" not in reply.headers
    assert reply.data == full[: len(full) // 4]


async def test_truncate_close_in_chunked_framing_is_an_incomplete_payload(
    api_factory: ApiFactory,
) -> None:
    """A chunked body cut short lacks its final chunk, which the client notices."""
    rule = FaultRule(kind="truncate_close", body_framing="chunked")
    api = await api_factory(faults=FaultPlan.script("image", [rule]))
    body = await api.completed_task()
    with pytest.raises(aiohttp.ClientPayloadError):
        await api.request("GET", body["results"][0])


async def test_trailing_garbage_follows_the_image_end(api_factory: ApiFactory) -> None:
    """trailing_garbage serves the image followed by garbage_bytes extra bytes."""
    rule = FaultRule(kind="trailing_garbage", garbage_bytes=100)
    api = await api_factory(faults=FaultPlan.script("image", [rule]))
    body = await api.completed_task()
    full = await api.emulator.image_bytes(body["id"])
    reply = await api.request("GET", body["results"][0])
    assert reply.status == 200
    assert reply.data.startswith(full)
    assert len(reply.data) == len(full) + 100
    assert reply.headers["Content-Length"] == str(len(full) + 100)


@pytest.mark.parametrize(
    "agent",
    [
        pytest.param(None, id="aiohttp-default"),
        pytest.param("python-requests/2.32", id="requests"),
        pytest.param("curl/8.5.0", id="curl"),
        pytest.param("Python-urllib/3.12", id="urllib"),
        pytest.param("", id="empty"),
    ],
)
async def test_script_user_agents_get_cloudflare_1010(
    api_factory: ApiFactory, agent: str | None
) -> None:
    """With block_script_user_agents, a script-like User-Agent gets a 403 error 1010 page."""
    api = await api_factory(block_script_user_agents=True)
    body = await api.completed_task()
    headers = None if agent is None else {"User-Agent": agent}
    reply = await api.request("GET", body["results"][0], headers=headers)
    assert reply.status == 403
    assert reply.headers["Content-Type"].startswith("text/html")
    assert b"1010" in reply.data


async def test_product_user_agent_passes_the_block(api_factory: ApiFactory) -> None:
    """zimage-async/<version> downloads the image even with block_script_user_agents."""
    api = await api_factory(block_script_user_agents=True)
    body = await api.completed_task()
    reply = await api.request("GET", body["results"][0], headers=PRODUCT_AGENT)
    assert reply.status == 200
    assert reply.data == await api.emulator.image_bytes(body["id"])


async def test_missing_user_agent_is_blocked(api_factory: ApiFactory) -> None:
    """A request without any User-Agent header is blocked too."""
    api = await api_factory(block_script_user_agents=True)
    body = await api.completed_task()
    async with (
        aiohttp.ClientSession(skip_auto_headers=["User-Agent"]) as bare,
        bare.get(body["results"][0]) as response,
    ):
        assert response.status == 403
    assert api.emulator.requests[-1].header("User-Agent") is None


async def test_the_block_is_off_by_default(api_factory: ApiFactory) -> None:
    """Without the option, aiohttp's default User-Agent downloads images."""
    api = await api_factory()
    body = await api.completed_task()
    assert (await api.request("GET", body["results"][0])).status == 200


def test_unknown_image_framing_is_refused() -> None:
    """image_framing outside length, chunked and close is a ValueError."""
    with pytest.raises(ValueError, match="image_framing"):
        Emulator(image_framing="gzip")  # type: ignore[arg-type]
