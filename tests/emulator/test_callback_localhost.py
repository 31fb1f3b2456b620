"""callback_mode="permissive" accepts the name ``localhost`` as it accepts 127.0.0.1.

The documented loopback hosts are 127.0.0.0/8, ``::1`` and the name ``localhost``; a
refused callback_url says the rule it broke. Nothing here is delivered: the tasks
outlast the test, so no callback is ever sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from zimage_async.emulator._validation import callback_url_problem

if TYPE_CHECKING:
    from tests.emulator.conftest import ApiFactory

LOCALHOST = [
    pytest.param("http://localhost:9/hook", id="http"),
    pytest.param("https://localhost:9/hook", id="https"),
    pytest.param("http://LocalHost/hook", id="http-upper-case"),
]


@pytest.mark.parametrize("url", LOCALHOST)
async def test_permissive_mode_accepts_a_localhost_callback(
    api_factory: ApiFactory, url: str
) -> None:
    """The create answers 200 and the task keeps its callback_url; nothing is sent."""
    api = await api_factory(callback_mode="permissive", task_duration=3600)
    reply = await api.create(callback_url=url)
    assert reply.status == 200, reply.data
    (entry,) = api.emulator.ledger
    assert entry.request_body["callback_url"] == url
    assert not api.emulator.callback_attempts


@pytest.mark.parametrize("url", [p.values[0] for p in LOCALHOST])
def test_the_rule_accepts_localhost_only_when_permissive(url: str) -> None:
    """Strict mode keeps the provider's rule: https only, and no internal address."""
    assert callback_url_problem(url, allow_loopback=True) is None
    assert callback_url_problem(url, allow_loopback=False) is not None


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("https://localhost./hook", id="trailing-dot"),
        pytest.param("https://api.localhost/hook", id="subdomain"),
        pytest.param("http://localhost.example.com/hook", id="public-lookalike"),
    ],
)
def test_other_names_are_not_the_name_localhost(url: str) -> None:
    """Only the name itself counts, as for delivery: what a resolver alone could tell is not."""
    assert callback_url_problem(url, allow_loopback=True) is not None


@pytest.mark.parametrize(
    "url", ["http://example.com/hook", "http://10.0.0.1/hook", "http://localhost./hook"]
)
async def test_a_refused_http_callback_names_the_permissive_rule(
    api_factory: ApiFactory, url: str
) -> None:
    """Not just "must use https": http is taken for a loopback host, and the message says so."""
    api = await api_factory(callback_mode="permissive", task_duration=3600)
    reply = await api.create(callback_url=url)
    assert reply.status == 400
    error = reply.json()["error"]
    assert error["param"] == "callback_url"
    assert "https" in error["message"]
    assert "loopback" in error["message"] and "localhost" in error["message"]


async def test_a_refused_internal_callback_names_the_loopback_exception(
    api_factory: ApiFactory,
) -> None:
    """An https private address is refused without saying loopback is refused too."""
    api = await api_factory(callback_mode="permissive", task_duration=3600)
    reply = await api.create(callback_url="https://192.168.1.1/hook")
    assert reply.status == 400
    message = reply.json()["error"]["message"]
    assert "internal address" in message
    assert "127.0.0.0/8, ::1 or localhost" in message


async def test_strict_mode_keeps_the_providers_message(api_factory: ApiFactory) -> None:
    """Strict mode still answers what the provider answers for an http callback."""
    api = await api_factory(callback_mode="strict", task_duration=3600)
    reply = await api.create(callback_url="http://localhost:9/hook")
    assert reply.status == 400
    assert reply.json()["error"]["message"] == "The 'callback_url' field must use https."
