"""Loopback callback URLs against a loopback API (the emulator): one rule, stated truly.

A session whose ``base_url`` is on loopback accepts an ``http`` or ``https`` callback URL
to a loopback host, so that callbacks can be tried offline. The per-task
``submit(callback_url=...)`` follows the same rule as ``Session(callback_url=...)``, and
a refusal names the real fault (a port out of range, a URL that does not parse) rather
than the scheme. A :class:`GenerationRequest` built beforehand, which does not know where
it will be sent, keeps the strict rule (https, public hosts). Everything runs on
127.0.0.1; refused creates send nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from zimage_async import (
    CallbackReceiver,
    GenerationRequest,
    InvalidRequestError,
    Session,
    SubmissionUncertainError,
    TaskStatus,
)
from zimage_async.emulator import Emulator, FaultPlan

from .conftest import FAST_POLL, FAST_RETRY

#: Polls a thousand times further apart while a callback is expected: only it finishes.
CALLBACK_ONLY = 1000.0


async def test_a_per_task_loopback_url_is_sent_and_called_back() -> None:
    """``submit(callback_url=<loopback>)`` on an emulator session: sent, called, finished."""
    receiver = CallbackReceiver()
    async with (
        Emulator(task_duration=0.05, seed=1, callback_mode="permissive") as emu,
        receiver.serve() as url,
        Session(
            api_key=emu.api_key,
            base_url=emu.base_url,
            poll=FAST_POLL,
            retry=FAST_RETRY,
            callbacks=receiver,
            callback_url=f"{url}?job=session",
            callback_poll_factor=CALLBACK_ONLY,
        ) as zs,
    ):
        per_task = f"{url}?job=42"
        handle = await zs.submit("a per-task fox", callback_url=per_task)
        task = await handle.wait(timeout=10)
        sent = emu.ledger[0].request_body["callback_url"]
    assert task.status is TaskStatus.COMPLETED
    assert sent == per_task
    assert receiver.accepted == 1


PORT_RULE = "a number from 1 to 65535"
LOOPBACK_RULE = "an http or https URL to a loopback host"


@pytest.mark.parametrize(
    ("url", "problem", "rule"),
    [
        pytest.param("http://127.0.0.1:99999/h", "its port '99999' is not", PORT_RULE, id="port"),
        pytest.param(
            "http://127.0.0.1:0/hook", "its port '0' is not valid", PORT_RULE, id="port-0"
        ),
        pytest.param(
            "http://localhost:0/", "its port '0' is not valid", PORT_RULE, id="localhost-0"
        ),
        pytest.param("https://[::1]:70000/", "its port '70000' is not", PORT_RULE, id="ipv6-port"),
        pytest.param("http://[::1/", "it does not parse as a URL", LOOPBACK_RULE, id="syntax"),
        pytest.param("ftp://127.0.0.1/hook", "its scheme is 'ftp'", LOOPBACK_RULE, id="ftp"),
        pytest.param("http://u@127.0.0.1/", "credentials before '@'", "credentials", id="userinfo"),
        pytest.param("http://example.com/h", "is not a loopback host", LOOPBACK_RULE, id="public"),
        pytest.param("http://10.0.0.1/h", "its host '10.0.0.1' is", LOOPBACK_RULE, id="private"),
    ],
)
async def test_a_refused_loopback_url_names_its_real_fault(
    url: str, problem: str, rule: str
) -> None:
    """Session(callback_url=) and submit(callback_url=) refuse alike, naming the fault."""
    async with Emulator(callback_mode="permissive") as emu:
        with pytest.raises(InvalidRequestError) as made:
            Session(
                api_key=emu.api_key,
                base_url=emu.base_url,
                callbacks=CallbackReceiver(),
                callback_url=url,
            )
        async with Session(api_key=emu.api_key, base_url=emu.base_url) as zs:
            with pytest.raises(InvalidRequestError) as submitted:
                await zs.submit("a fox", callback_url=url)
        creates = emu.request_counts.get("create", 0)
    for error in (made.value, submitted.value):
        assert error.field == "callback_url"
        assert problem in error.problem
        assert rule in error.rule  # the rule stated is the one that applies here
        assert "must use https" not in error.rule
    assert str(made.value) == str(submitted.value)
    assert creates == 0


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://127.0.0.1:8080/hook", id="ipv4"),
        pytest.param("http://[::1]:8080/hook", id="ipv6"),
        pytest.param("https://localhost/hook?token=t", id="localhost"),
        pytest.param("http://127.0.0.1:65535/", id="highest-port"),
    ],
)
def test_a_loopback_api_accepts_loopback_urls_for_the_session(url: str) -> None:
    zs = Session(
        api_key="k",
        base_url="http://127.0.0.1:9/apiv1",
        callbacks=CallbackReceiver(),
        callback_url=url,
    )
    assert zs.base_url == "http://127.0.0.1:9/apiv1"


def test_a_request_built_beforehand_keeps_the_strict_rule() -> None:
    """A GenerationRequest does not know where it goes: https to a public host only."""
    with pytest.raises(InvalidRequestError) as caught:
        GenerationRequest(prompt="a fox", callback_url="http://127.0.0.1:8080/hook")
    assert caught.value.field == "callback_url"
    assert "https" in caught.value.rule


def test_a_public_api_still_refuses_loopback_urls() -> None:
    """With a public base_url, the exemption does not apply: the strict rule and message."""
    with pytest.raises(InvalidRequestError) as caught:
        Session(
            api_key="k",
            base_url="https://ai.odkkk.com/apiv1",
            callbacks=CallbackReceiver(),
            callback_url="http://127.0.0.1:8080/hook",
        )
    assert caught.value.problem == "its scheme is 'http'"
    assert "loopback" not in caught.value.rule


async def test_a_recorded_per_task_loopback_url_is_read_back_from_the_journal(
    tmp_path: Path,
) -> None:
    """The journal's record of such a create rebuilds its request: recover() sends it again."""
    journal = tmp_path / "journal.sqlite"
    per_task = "http://127.0.0.1:9/hook?job=7"  # refuses connections: the callback fails
    async with Emulator(task_duration=0.05, seed=1, callback_mode="permissive") as emu:
        options: dict[str, Any] = {
            "api_key": emu.api_key,
            "base_url": emu.base_url,
            "poll": FAST_POLL,
            "retry": FAST_RETRY,
            "journal": journal,
        }
        async with Session(**options) as zs:
            emu.faults = FaultPlan.script("create", ["reset_after_create"])  # made, its answer lost
            with pytest.raises(SubmissionUncertainError):
                await zs.submit("a recorded fox", callback_url=per_task)
        async with Session(**options) as zs:
            (record,) = await zs.unfinished()
            assert record.request().callback_url == per_task
            (handle,) = await zs.recover(resubmit_uncertain=True)
            await handle.wait(timeout=10)
        billed = [entry.request_body.get("callback_url") for entry in emu.ledger]
        sent = emu.request_counts.get("create", 0)
    assert sent == 2  # sent again, with its key: the emulator answers with the first task
    assert billed == [per_task]


async def test_generate_takes_a_per_task_loopback_url_as_submit_does() -> None:
    """``generate(callback_url=<loopback>)`` on an emulator session: sent as given."""
    per_task = "http://127.0.0.1:9/hook?job=8"  # refuses connections: the callback fails
    async with (
        Emulator(task_duration=0.05, seed=1, callback_mode="permissive") as emu,
        Session(api_key=emu.api_key, base_url=emu.base_url, poll=FAST_POLL, retry=FAST_RETRY) as zs,
    ):
        result = await zs.generate("a generated fox", callback_url=per_task, timeout=10)
        sent = emu.ledger[0].request_body["callback_url"]
    assert result.images
    assert sent == per_task
