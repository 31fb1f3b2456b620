"""Callback review fixes: the example server, the receiver's refusal log, the docs on tokens.

- ``examples/webhook_server.py`` run against a service (here the emulator on 127.0.0.1)
  listens on 127.0.0.1 unless told otherwise, never shows the callback URL's token, and
  answers a failed generation with a generic 502 that quotes nothing of the SDK's error.
- A :class:`CallbackReceiver` flooded with refused callbacks logs a few INFO lines a
  period, not one per refusal (the rest at DEBUG), and sums them up at INFO.
- docs/webhooks.md says which tokens an error answer quoting the callback URL has
  masked (query values of at least ``QUOTED_MIN`` characters, not path segments), and
  that the journal stores the URL with its token; a small API on 127.0.0.1 that quotes
  the URL back shows that the page is right.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sys
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web

from zimage_async import BadRequestError, CallbackReceiver, Session
from zimage_async._redaction import QUOTED_MIN
from zimage_async.emulator import Emulator

from .conftest import ROOT

TOKEN = "s3cr3t-hook-token-0123456789"
CALLBACK_URL = f"https://example.com/hooks/zimage?token={TOKEN}"
EXAMPLE = ROOT / "examples" / "webhook_server.py"
#: The longest any one step of the example's run may take.
STEP = 30.0
#: The longest any one HTTP exchange of a test may take.
LIMIT = aiohttp.ClientTimeout(total=STEP)


@contextlib.asynccontextmanager
async def _example(emu: Emulator, *args: str) -> AsyncIterator[tuple[str, list[str]]]:
    """Run the example's server mode against *emu*; yield its printed URL and its output.

    The output list holds every line printed so far (stdout and stderr), read to the
    end once the server is stopped.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZIMAGE_")}
    env |= {
        "PYTHONPATH": f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}",
        "ZIMAGE_API_KEY": emu.api_key,
        "ZIMAGE_BASE_URL": emu.base_url,
        "ZIMAGE_CALLBACK_URL": CALLBACK_URL,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        "--port",
        "0",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), STEP)).decode()
        lines.append(line)
        found = re.search(r"http://[^\s/]+:\d+/", line)
        assert found, f"no listening address in {line!r}"
        yield found[0], lines
    finally:
        if process.returncode is None:
            process.terminate()
        rest, _ = await asyncio.wait_for(process.communicate(), STEP)
        lines.append(rest.decode())


async def test_the_example_server_listens_on_loopback_and_hides_the_token() -> None:
    """By default only this machine can reach /generate; the token is never printed."""
    async with (
        Emulator(task_duration=0.1, seed=5) as emu,
        _example(emu) as (url, output),
        aiohttp.ClientSession(timeout=LIMIT) as client,
    ):
        assert urlsplit(url).hostname == "127.0.0.1"
        async with client.get(f"{url}generate", params={"prompt": "a fox"}) as reply:
            assert reply.status == 200
            assert reply.content_type == "image/png"
        port = urlsplit(url).port
        with pytest.raises(aiohttp.ClientConnectionError):  # another loopback address
            async with client.get(f"http://127.0.0.2:{port}/generate") as reply:
                pass
    text = "".join(output)
    assert TOKEN not in text
    assert "https://example.com/hooks/zimage" in text


async def test_the_example_server_answers_a_failed_generation_with_a_generic_502() -> None:
    """The caller of /generate learns that it failed, not the SDK's error text."""
    failing = "a fox [[fail:content_policy_violation]]"
    async with (
        Emulator(task_duration=0.1, seed=5) as emu,
        _example(emu) as (url, output),
        aiohttp.ClientSession(timeout=LIMIT) as client,
        client.get(f"{url}generate", params={"prompt": failing}) as reply,
    ):
        status, body = reply.status, await reply.text()
    assert status == 502
    assert body == "the image could not be generated\n"
    assert TOKEN not in "".join(output)


async def test_the_example_server_listens_where_it_is_told() -> None:
    """--host widens (here: moves) the listener, for a server behind a proxy of its own."""
    async with (
        Emulator(task_duration=0.1, seed=5) as emu,
        _example(emu, "--host", "127.0.0.2") as (url, _),
        aiohttp.ClientSession(timeout=LIMIT) as client,
    ):
        assert urlsplit(url).hostname == "127.0.0.2"
        async with client.get(f"{url}generate", params={"prompt": "a fox"}) as reply:
            assert reply.status == 200


def _refusals(records: list[logging.LogRecord], level: int) -> list[str]:
    return [
        r.getMessage()
        for r in records
        if r.name == "zimage_async" and r.levelno == level and "task callback" in r.getMessage()
    ]


async def test_a_flood_of_refused_callbacks_logs_one_info_line_per_kind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """200 malformed bodies and 3 oversized ones: one INFO line each kind, the rest at DEBUG."""
    receiver = CallbackReceiver(max_body_bytes=1024)
    caplog.set_level(logging.DEBUG, logger="zimage_async")
    async with receiver.serve() as url, aiohttp.ClientSession(timeout=LIMIT) as client:
        for n in range(200):
            async with client.post(url, data=b"not json %d" % n) as reply:
                assert reply.status == 400
        for _ in range(3):
            async with client.post(url, data=b"x" * 2048) as reply:
                assert reply.status == 413
    assert receiver.refused == 203
    info = _refusals(caplog.records, logging.INFO)
    assert len(info) == 2, info
    assert "not a JSON task object" in info[0]
    assert "larger than 1024 bytes" in info[1]
    assert len(_refusals(caplog.records, logging.DEBUG)) == 201


async def test_refusals_logged_at_debug_are_summed_up_at_info_once_a_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After a period, the next refusal first logs at INFO how many went to DEBUG."""
    receiver = CallbackReceiver()
    now = [1000.0]
    receiver._refusals.clock = lambda: now[0]
    caplog.set_level(logging.DEBUG, logger="zimage_async")
    async with receiver.serve() as url, aiohttp.ClientSession(timeout=LIMIT) as client:

        async def refused(count: int) -> None:
            for _ in range(count):
                async with client.post(url, data=b"[]") as reply:
                    assert reply.status == 400

        await refused(5)  # one at INFO, four at DEBUG
        now[0] += 59.0
        await refused(1)  # still the same period: DEBUG
        now[0] += 2.0
        await refused(2)  # a new period: the summary, then one at INFO, one at DEBUG
    info = _refusals(caplog.records, logging.INFO)
    assert len(info) == 3, info
    assert re.search(r"refused 5 more task callbacks in the last 61 s", info[1]), info[1]
    assert "7 in all so far" in info[1]
    assert "not a JSON task object" in info[2]


@contextlib.asynccontextmanager
async def _quoting_api() -> AsyncIterator[str]:
    """An API on 127.0.0.1 that refuses every create with a 400 quoting its callback_url."""

    async def create(request: web.Request) -> web.Response:
        body = await request.json()
        error = {
            "message": f"callback_url {body.get('callback_url')} is not reachable",
            "type": "invalid_request_error",
            "param": "callback_url",
        }
        return web.json_response({"error": error}, status=400)

    app = web.Application()
    app.router.add_post("/apiv1/v1/images/generations", create)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/apiv1"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("path", "token", "masked"),
    [
        ("hook?token=", "T" * QUOTED_MIN, True),
        ("hook?token=", "T" * (QUOTED_MIN - 1), False),
        ("hooks/", "PathToken-0123456789", False),
    ],
    ids=["long query value", "short query value", "path segment"],
)
async def test_an_error_quoting_the_callback_url_masks_what_the_docs_say(
    path: str, token: str, masked: bool
) -> None:
    """Only a query value of QUOTED_MIN characters or more is masked in an error answer."""
    receiver = CallbackReceiver()
    async with (
        _quoting_api() as base_url,
        Session(
            api_key="sk-test-0123456789",
            base_url=base_url,
            callbacks=receiver,
            callback_url=f"http://127.0.0.1:9/{path}{token}",
        ) as zs,
    ):
        with pytest.raises(BadRequestError) as caught:
            await zs.generate("a cat")
    assert (token not in str(caught.value)) is masked


def test_the_webhooks_page_says_how_to_keep_the_token_out_of_errors() -> None:
    """docs/webhooks.md: the token in the query, at least QUOTED_MIN characters; the journal."""
    text = " ".join((ROOT / "docs" / "webhooks.md").read_text(encoding="utf-8").split())
    assert f"at least {QUOTED_MIN} characters" in text
    assert "32 random" in text
    assert "in the path" in text
    assert "journal stores the callback URL" in text
