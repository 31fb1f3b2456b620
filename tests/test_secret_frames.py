"""Secrets stay out of what an error report shows, wherever the SDK holds or meets them.

A report (Sentry at its default settings, or a traceback with every frame's locals)
shows the error's text, its chained causes and the local variables of every frame it
passed through. The API key, a proxy's or a journal database's password and a callback
URL's token must show in none of them: not when a garbled answer or an answer's
headers echo the key, not in the frames that refuse a garbled key or another setting,
not in the frames that fail to reach the journal's database, not in a request's repr.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Callable

import pytest
from aiohttp import web

from zimage_async import (
    APIError,
    GenerationRequest,
    InvalidRequestError,
    JournalError,
    MalformedResponseError,
    RetryPolicy,
    Session,
    SubmissionUncertainError,
    ZImageError,
)
from zimage_async.emulator import Emulator

from ._reports import CapturingTransport, raw_server, rendered, report
from .conftest import KEY, loopback_session, serving

ONE_TRY = RetryPolicy(max_attempts=1)
TASK_ID = "task-unified-1-abcdefgh"
PROXY_PASSWORD = "proxy-pw-5d1e0a77"
JOURNAL_PASSWORD = "journal-pw-8c2b94f1"
CALLBACK_TOKEN = "hook-token-3f9a61c2"


def _free_closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _assert_hidden(error: BaseException, capture: CapturingTransport, *secrets: str) -> None:
    text = f"{error} {error!r} {rendered(error)}"
    envelope = report(capture, error)
    assert b'"vars"' in envelope  # the frames' locals were captured
    for secret in secrets:
        assert secret not in text
        assert secret.encode() not in envelope


def _garbled(kind: str):  # type: ignore[no-untyped-def]
    """An answer that is not HTTP, quoting the request's bearer token where it breaks."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        match = re.search(r"Authorization: Bearer (\S+)", head)
        token = match[1] if match else ""
        if kind == "status-line":
            writer.write(f"{token}\r\n\r\n".encode())
        elif kind == "header-line":
            writer.write(f"HTTP/1.1 401 Unauthorized\r\nbad key {token}\r\n\r\n".encode())
        else:  # a header whose name holds a space
            writer.write(f"HTTP/1.1 401 Unauthorized\r\nX Key: {token}\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    return answer


@pytest.mark.parametrize("action", ["read", "create"])
@pytest.mark.parametrize("kind", ["status-line", "header-line", "header-name"])
async def test_a_garbled_answer_quoting_the_key_does_not_show_it(
    sentry: CapturingTransport, kind: str, action: str
) -> None:
    """The parser quotes the line it cannot parse; the error says what broke, not the line."""
    async with raw_server(_garbled(kind)) as base, loopback_session(base, retry=ONE_TRY) as zs:
        call = zs.submit("a cat") if action == "create" else zs.get_task(TASK_ID)
        with pytest.raises((MalformedResponseError, SubmissionUncertainError)) as info:
            await call
    assert "could not be read" in str(info.value) or "could not be read" in str(
        info.value.__cause__
    )
    _assert_hidden(info.value, sentry, KEY)


@pytest.mark.parametrize("status", [401, 302, 429])
async def test_an_answer_whose_headers_echo_the_key_does_not_show_it(
    sentry: CapturingTransport, status: int
) -> None:
    """Header values that repeat the key (a challenge, a redirect) stay out of the report."""

    async def echo(request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "")
        return web.json_response(
            {"error": {"code": status, "type": "error", "message": "no"}},
            status=status,
            headers={
                "WWW-Authenticate": f'Bearer error="invalid_token", token="{token}"',
                "Location": f"/elsewhere?key={token.removeprefix('Bearer ')}",
                "X-Echo": token.removeprefix("Bearer "),
                "Retry-After": "3",
            },
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    async with serving(app) as base, loopback_session(base, retry=ONE_TRY) as zs:
        with pytest.raises(APIError) as info:
            await zs.get_task(TASK_ID)
    assert info.value.status == status
    if status == 429:  # the one header read is still read
        assert info.value.retry_after == 3.0
    _assert_hidden(info.value, sentry, KEY)


@pytest.mark.parametrize(
    "garble",
    [
        pytest.param(" 4567", id="space-inside"),
        pytest.param("\x7f", id="delete-char"),
        pytest.param("\n x", id="line-end-inside"),
    ],
)
@pytest.mark.parametrize("source", ["argument", "environment"])
def test_a_refused_key_is_in_no_frame_of_the_refusal(
    sentry: CapturingTransport, garble: str, source: str
) -> None:
    """A key refused as garbled (read from the environment, say) is shown by no frame."""
    options: dict[str, object] = (
        {"api_key": KEY + garble, "environ": {}}
        if source == "argument"
        else {"environ": {"ZIMAGE_API_KEY": KEY + garble, "HOME": "/nowhere"}}
    )
    with pytest.raises(InvalidRequestError, match="api_key") as info:
        Session(**options)  # type: ignore[arg-type]
    del options
    _assert_hidden(info.value, sentry, KEY)


def test_a_refused_setting_shows_neither_the_environment_nor_the_journal_url(
    sentry: CapturingTransport,
) -> None:
    """A setting refused after the key was read shows no proxy or journal password."""
    with pytest.raises(InvalidRequestError, match="base_url") as info:
        Session(
            api_key=KEY,
            base_url="http://api.example/apiv1",  # plain http off loopback: refused
            environ={"HTTPS_PROXY": f"http://someone:{PROXY_PASSWORD}@127.0.0.1:3128"},
            journal=f"postgresql://app:{JOURNAL_PASSWORD}@127.0.0.1:1/zimage",
        )
    _assert_hidden(info.value, sentry, KEY, PROXY_PASSWORD, JOURNAL_PASSWORD)


async def test_an_unreachable_journal_database_does_not_show_its_password(
    sentry: CapturingTransport,
) -> None:
    """The database refusing the connection: the report names it without its password."""
    pytest.importorskip("asyncpg")
    url = f"postgresql://app:{JOURNAL_PASSWORD}@127.0.0.1:{_free_closed_port()}/zimage"
    session = Session(api_key=KEY, base_url="http://127.0.0.1:9/apiv1", journal=url)
    del url
    with pytest.raises(JournalError, match="cannot open the journal") as info:
        async with session:
            pass  # pragma: no cover - the journal does not open
    _assert_hidden(info.value, sentry, KEY, JOURNAL_PASSWORD)


async def test_a_batch_whose_journal_database_is_unreachable_does_not_show_its_password(
    sentry: CapturingTransport, zs: Session
) -> None:
    """A batch's own journal refusing the connection: no frame or repr shows its password."""
    pytest.importorskip("asyncpg")
    url = f"postgresql://app:{JOURNAL_PASSWORD}@127.0.0.1:{_free_closed_port()}/zimage"
    batch = zs.generate_many(["a cat"], journal=url)
    del url

    async def run() -> None:
        async with batch:
            async for _ in batch:
                pass  # pragma: no cover - the journal does not open

    with pytest.raises(JournalError, match="cannot open the journal") as info:
        await run()
    _assert_hidden(info.value, sentry, JOURNAL_PASSWORD)
    assert JOURNAL_PASSWORD not in repr(batch._options)


def test_a_request_repr_does_not_show_its_callback_token() -> None:
    """A callback URL's query (a token for the receiver) is left out of the request's repr."""
    request = GenerationRequest(
        prompt="a cat", callback_url=f"https://hooks.example/zimage?token={CALLBACK_TOKEN}"
    )
    assert CALLBACK_TOKEN not in repr(request)
    assert "https://hooks.example/zimage" in repr(request)
    assert request.callback_url is not None and CALLBACK_TOKEN in request.callback_url


async def test_a_failed_create_with_a_callback_url_does_not_show_its_token(
    sentry: CapturingTransport,
) -> None:
    """The frames of a refused create hold the callback URL's token nowhere a report shows."""

    async def refuse(request: web.Request) -> web.Response:
        return web.json_response(
            {"error": {"code": 400, "type": "invalid_request_error", "message": "no"}},
            status=400,
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    async with serving(app) as base, loopback_session(base, retry=ONE_TRY) as zs:
        with pytest.raises(ZImageError) as info:
            await zs.generate(
                "a cat", callback_url=f"https://hooks.example/zimage?token={CALLBACK_TOKEN}"
            )
    _assert_hidden(info.value, sentry, KEY, CALLBACK_TOKEN)


@pytest.mark.parametrize("how", ["GenerationRequest", "submit", "generate"])
async def test_a_refused_callback_url_does_not_show_its_token(
    sentry: CapturingTransport, how: str
) -> None:
    """A callback URL refused before anything is sent (http): its token in no frame's locals."""
    async with loopback_session("http://127.0.0.1:9", retry=ONE_TRY) as zs:  # nothing is sent

        async def refused() -> object:
            url = f"http://hooks.example/zimage?token={CALLBACK_TOKEN}"
            try:
                if how == "GenerationRequest":
                    return GenerationRequest(prompt="a cat", callback_url=url)
                call = zs.submit if how == "submit" else zs.generate
                return await call("a cat", callback_url=url)
            finally:  # this test's own frame keeps no copy either
                del url

        with pytest.raises(InvalidRequestError) as info:
            await refused()
    assert info.value.field == "callback_url"
    _assert_hidden(info.value, sentry, CALLBACK_TOKEN)


async def _refused_quoting(query: Callable[[], str]) -> APIError:
    """Return the refusal of a create whose callback URL has ``query()``, quoted by the server.

    The URL is ``https://hooks.example/zimage?<query>``, made in the frame that deletes it:
    no frame of the test keeps it (the error report shows their locals).
    """

    async def refuse(request: web.Request) -> web.Response:
        quoted = (await request.json())["callback_url"]
        envelope = {
            "code": 400,
            "type": "invalid_request_error",
            "param": "callback_url",
            "message": f"callback_url {quoted} did not answer our probe",
        }
        return web.json_response({"error": envelope}, status=400)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    async with serving(app) as base, loopback_session(base, retry=ONE_TRY) as zs:

        async def refused() -> object:
            url = f"https://hooks.example/zimage?{query()}"
            try:
                return await zs.submit("a cat", callback_url=url)
            finally:
                del url

        with pytest.raises(APIError) as info:
            await refused()
    return info.value


async def test_an_answer_quoting_the_callback_url_does_not_show_its_token(
    sentry: CapturingTransport,
) -> None:
    """A refusal that quotes the callback URL it received has its token masked, as the key."""
    error = await _refused_quoting(lambda: f"token={CALLBACK_TOKEN}")
    assert "https://hooks.example/zimage?token=***" in str(error)
    _assert_hidden(error, sentry, KEY, CALLBACK_TOKEN)


async def test_a_callback_url_with_plain_query_values_leaves_the_answer_whole(
    emulator: Emulator,
) -> None:
    """?async=true&ref=task: plain words, no token; the create's answer is read as sent.

    Every query value was masked in every answer: ``"can_cancel": ***`` and
    ``"id": "***-unified-..."`` made a billed create look uncertain.
    """
    async with Session(api_key=emulator.api_key, base_url=emulator.base_url) as zs:
        handle = await zs.submit(
            "a cat", callback_url="https://hooks.example.com/zimage?async=true&ref=task&v=unified"
        )
    assert handle.id.startswith("task-unified-")


async def test_a_bare_query_token_quoted_in_an_answer_is_masked(
    sentry: CapturingTransport,
) -> None:
    """``?TOKEN`` (no name): the whole query is the value, masked as a named one is."""
    error = await _refused_quoting(lambda: CALLBACK_TOKEN)
    assert "https://hooks.example/zimage?***" in str(error)
    _assert_hidden(error, sentry, KEY, CALLBACK_TOKEN)
