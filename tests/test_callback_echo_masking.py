r"""A callback URL's token is masked in every answer that echoes it, whatever its status.

A create's callback URL may carry a secret for the receiver in its query
(``http://127.0.0.1:9/hook?token=...``). Some gateways answer a create (2xx included)
with the request they stored, and a task's error may quote the URL it could not call.
The token must then show in no exception text, repr, traceback local, error report,
log record or task field the SDK hands on: not when the 2xx answer is read as a task,
nor when it is unreadable, cut short or over-long (the echo ending in the middle of the
token), nor when the echo is percent-encoded differently from what was sent; and not
in the answers of the task reads of a task the session created. A task answer with no
echo is read exactly as before, and masking it costs one look per token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import quote, unquote

import pytest
from aiohttp import web

from zimage_async import (
    BadRequestError,
    MalformedResponseError,
    RetryPolicy,
    Session,
    SubmissionUncertainError,
    TaskFailedError,
    ZImageError,
)
from zimage_async._api import MAX_API_BODY
from zimage_async._parsing import parse_json, parse_task
from zimage_async._redaction import RedactedHeaders, mask_echoes

from ._reports import CapturingTransport, raw_server, rendered, report
from .conftest import KEY, loopback_session, serving

TASK_ID = "task-unified-1757165031-uyujaw3d"
#: The callback token as the URL carries it (``%2F``: a "/"), and its tail, which every
#: spelling of it but a fully percent-encoded one holds as it is.
TAIL = "q7Zx4Kw9Lm2Np8Rv"
RAW = f"s3cr3t%2F{TAIL}"
DECODED = f"s3cr3t/{TAIL}"
HOOK = "http://127.0.0.1:9/hook"
URL = f"{HOOK}?token={RAW}"
ONE_TRY = RetryPolicy(max_attempts=1)
#: The bound of every wait in these tests, far above what each takes.
BOUND = 10.0

#: The callback URL as an answer may echo it: the text between a JSON string's quotes.
SPELLINGS: dict[str, Callable[[str], str]] = {
    "as-sent": lambda url: url,
    "decoded": unquote,
    "lower-case-hex": lambda url: url.replace("%2F", "%2f"),
    "whole-url-encoded": lambda url: quote(url, safe=""),  # token%3Ds3cr3t%252F...
    "every-token-char-encoded": lambda url: url.replace(
        RAW, "".join(f"%{byte:02X}" for byte in DECODED.encode())
    ),
    "some-chars-encoded-lower": lambda url: url.replace(
        RAW, f"%73%33cr3t%2f{TAIL[:5]}%4b{TAIL[6:]}"
    ),
    "json-escaped-and-decoded": lambda url: (
        unquote(url).replace("/", "\\/").replace("s", "\\u0073")
    ),
}
SPELLING_PARAMS = [pytest.param(spell, id=name) for name, spell in SPELLINGS.items()]


def _echoed_token(echoed: str) -> str:
    """The token as the echoed URL spells it: what follows ``token=`` (or ``token%3D``)."""
    for name in ("token=", "token%3D"):
        if name in echoed:
            return echoed[echoed.index(name) + len(name) :]
    raise AssertionError("no token in the echo")


def _shown_forms(echoed: str) -> list[str]:
    """What must not show: the token's tail and start, and the token as it was echoed."""
    return [TAIL, "s3cr3t", _echoed_token(echoed)]


class EchoingAPI:
    """An API on 127.0.0.1 answering ``create(url)`` and ``read(url)``: (status, JSON text).

    *url* is the callback URL the last create sent (kept private: in no repr).
    """

    def __init__(self) -> None:
        self.create: Callable[[str], tuple[int, str]] = lambda url: (200, _task())
        self.read: Callable[[str], tuple[int, str]] = lambda url: (200, _task())
        self.base = ""
        self._url = ""
        self.app = web.Application()
        self.app.router.add_post("/apiv1/v1/images/generations", self._create)
        self.app.router.add_get("/apiv1/v1/tasks/{task_id}", self._read)

    async def _create(self, request: web.Request) -> web.Response:
        self._url = (await request.json()).get("callback_url", "")
        status, text = self.create(self._url)
        return web.Response(status=status, text=text, content_type="application/json")

    async def _read(self, request: web.Request) -> web.Response:
        status, text = self.read(self._url)
        return web.Response(status=status, text=text, content_type="application/json")


def _task(status: str = "pending", **fields: str) -> str:
    """A task's JSON text; *fields* are raw JSON texts (``input='{...}'``)."""
    extra = "".join(f', "{name}": {text}' for name, text in fields.items())
    return f'{{"id": "{TASK_ID}", "status": "{status}", "progress": 0{extra}}}'


def _stored(echoed: str) -> str:
    """The stored request a gateway echoes, its callback URL spelled as *echoed*."""
    return f'{{"prompt": "a cat", "callback_url": "{echoed}"}}'


def _failed(echoed: str) -> str:
    """A failed task whose error quotes the callback URL (spelled *echoed*), and its request."""
    error = f'{{"code": "invalid_callback", "message": "callback_url {echoed} did not answer"}}'
    return _task("failed", error=error, input=_stored(echoed))


@pytest.fixture
async def api() -> AsyncIterator[EchoingAPI]:
    """The echoing API, serving on 127.0.0.1."""
    server = EchoingAPI()
    async with serving(server.app) as server.base:
        yield server


@pytest.fixture
async def zs(api: EchoingAPI) -> AsyncIterator[Session]:
    """A session on the echoing API, one try per call."""
    async with loopback_session(api.base, retry=ONE_TRY) as session:
        yield session


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record of the test, DEBUG included."""
    caplog.set_level(logging.DEBUG)
    return caplog


async def _caught(call: Awaitable[object]) -> ZImageError:
    """The error *call* raises; caught here, in a frame that holds no URL."""
    try:
        await asyncio.wait_for(call, BOUND)
    except ZImageError as exc:
        return exc
    raise AssertionError("the call raised nothing")


def _unescaped(text: str) -> str:
    r"""*text* with every run of backslashes made one: a repr writes ``\u0073`` doubled."""
    return re.sub(r"\\+", lambda _: "\\", text)


def _assert_hidden(
    shown: object,
    forms: list[str],
    logs: pytest.LogCaptureFixture,
    sentry: CapturingTransport | None = None,
) -> None:
    """No form shows in *shown*'s text and repr, nor (an error) its traceback and report."""
    texts = [str(shown), repr(shown)]
    if isinstance(shown, BaseException):
        texts += [rendered(shown), repr(vars(shown))]
        if sentry is not None:
            envelope = report(sentry, shown)
            assert b'"vars"' in envelope  # the frames' locals were captured
            texts.append(envelope.decode("utf-8", "replace"))
    texts += [record.getMessage() + (record.exc_text or "") for record in logs.records]
    for text in map(_unescaped, texts):
        assert not [form for form in forms if form in text], text[:300]
    assert KEY not in " ".join(texts)


# -- 2xx answers to the create ------------------------------------------------------------


@pytest.mark.parametrize("spell", SPELLING_PARAMS)
async def test_a_created_task_quoting_its_callback_url_holds_no_token(
    api: EchoingAPI, zs: Session, spell: Callable[[str], str], logs: pytest.LogCaptureFixture
) -> None:
    """A 200 to the create, failed at once, quoting the URL: the task's fields are masked."""
    api.create = lambda url: (200, _failed(spell(url)))
    handle = await asyncio.wait_for(zs.submit("a cat", callback_url=URL), BOUND)
    task = handle.task
    assert task is not None and task.id == TASK_ID and task.raw_status == "failed"
    assert task.error is not None and task.error.message.startswith("callback_url ")
    assert "***" in task.error.message
    _assert_hidden(task, _shown_forms(spell(URL)), logs)
    _assert_hidden(repr(task.raw_error), _shown_forms(spell(URL)), logs)
    _assert_hidden(handle, _shown_forms(spell(URL)), logs)


async def test_waiting_on_a_created_task_quoting_its_callback_url_raises_no_token(
    api: EchoingAPI, zs: Session, sentry: CapturingTransport, logs: pytest.LogCaptureFixture
) -> None:
    """The failure of a task whose create and reads quote the URL: TaskFailedError, masked."""
    api.create = api.read = lambda url: (200, _failed(url))
    handle = await asyncio.wait_for(zs.submit("a cat", callback_url=URL), BOUND)
    error = await _caught(handle.result())
    assert isinstance(error, TaskFailedError) and error.code == "invalid_callback"
    assert f"callback_url {HOOK}?token=*** did not answer" in error.message
    _assert_hidden(error, _shown_forms(URL), logs, sentry)


@pytest.mark.parametrize("spell", SPELLING_PARAMS)
async def test_an_unreadable_create_answer_echoing_the_request_shows_no_token(
    api: EchoingAPI,
    zs: Session,
    spell: Callable[[str], str],
    sentry: CapturingTransport,
    logs: pytest.LogCaptureFixture,
) -> None:
    """A 200 echoing the stored request, no status: uncertain, no token in its frames' locals."""
    unreadable = f'{{"id": "{TASK_ID}", "status": null, "input": %s}}'
    api.create = lambda url: (200, unreadable % _stored(spell(url)))
    error = await _caught(zs.submit("a cat", callback_url=URL))
    assert isinstance(error, SubmissionUncertainError) and error.task_id == TASK_ID
    assert isinstance(error.cause, MalformedResponseError)
    _assert_hidden(error, _shown_forms(spell(URL)), logs, sentry)


async def test_a_create_answer_echoing_the_request_reads_as_the_task(
    api: EchoingAPI, zs: Session
) -> None:
    """A 200 whose echo is masked is still the task, read as it was sent."""
    api.create = lambda url: (200, _task(model='"z-image-turbo"', input=_stored(url)))
    handle = await asyncio.wait_for(zs.submit("a cat", callback_url=URL), BOUND)
    assert handle.task is not None
    assert handle.task.id == TASK_ID and handle.task.model == "z-image-turbo"


# -- create answers cut short or over-long -------------------------------------------------


def _cut_answer(body: bytes, length: int) -> Callable[..., Awaitable[None]]:
    """Answer a create 200 with *body*, saying *length* bytes, then drop the connection."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), BOUND)
            sent = re.search(rb"(?i)content-length: *(\d+)", head)
            await asyncio.wait_for(reader.readexactly(int(sent[1]) if sent else 0), BOUND)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (length, body)
            )
            await writer.drain()
        finally:
            writer.close()

    return answer


@pytest.mark.parametrize("spell", SPELLING_PARAMS)
@pytest.mark.parametrize("kept", [4, 9, 14, 20])
async def test_a_create_answer_cut_in_the_middle_of_the_token_shows_none_of_it(
    spell: Callable[[str], str],
    kept: int,
    sentry: CapturingTransport,
    logs: pytest.LogCaptureFixture,
) -> None:
    """Cut short *kept* characters into the echoed token: the start that came is masked too."""
    echoed = spell(URL)
    token = _echoed_token(echoed)
    body = f'{{"id": "{TASK_ID}", "status": "pending", "input": {{"callback_url": "'.encode()
    body += echoed[: len(echoed) - len(token) + kept].encode()
    async with (
        raw_server(_cut_answer(body, len(body) + 200)) as base,
        loopback_session(base, retry=ONE_TRY) as zs,
    ):
        error = await _caught(zs.submit("a cat", callback_url=URL))
    assert isinstance(error, SubmissionUncertainError) and error.task_id == TASK_ID
    _assert_hidden(error, [token[:kept]], logs, sentry)


@pytest.mark.parametrize("kept", [4, 11])
async def test_an_over_long_create_answer_cut_in_the_token_shows_none_of_it(
    kept: int, sentry: CapturingTransport, logs: pytest.LogCaptureFixture
) -> None:
    """Over the cap on API answers, the cap falling inside the echoed token: none of it shows."""
    start = f'{{"id": "{TASK_ID}", "status": "pending", "pad": "'
    echo = f'", "input": {{"callback_url": "{HOOK}?token='
    pad = MAX_API_BODY - len(start) - len(echo) - kept
    body = f'{start}{"x" * pad}{echo}{RAW}", "prompt": "a cat"}}}}'.encode()
    assert body[:MAX_API_BODY].endswith(RAW[:kept].encode())
    async with (
        raw_server(_cut_answer(body, len(body))) as base,
        loopback_session(base, retry=ONE_TRY) as zs,
    ):
        error = await _caught(zs.submit("a cat", callback_url=URL))
    assert isinstance(error, SubmissionUncertainError) and error.task_id == TASK_ID
    _assert_hidden(error, [RAW[:kept], TAIL], logs, sentry)


# -- error answers --------------------------------------------------------------------------


@pytest.mark.parametrize("spell", SPELLING_PARAMS)
async def test_a_refusal_quoting_the_callback_url_encoded_otherwise_shows_no_token(
    api: EchoingAPI,
    zs: Session,
    spell: Callable[[str], str],
    sentry: CapturingTransport,
    logs: pytest.LogCaptureFixture,
) -> None:
    """A 400 quoting the URL percent-encoded otherwise than it was sent: masked all the same."""
    refusal = '{"error": {"type": "invalid_request_error", "message": "callback_url %s is bad"}}'
    api.create = lambda url: (400, refusal % spell(url))
    error = await _caught(zs.submit("a cat", callback_url=URL))
    assert isinstance(error, BadRequestError) and "***" in error.message
    _assert_hidden(error, _shown_forms(spell(URL)), logs, sentry)


# -- task reads -------------------------------------------------------------------------------


@pytest.mark.parametrize("spell", SPELLING_PARAMS)
async def test_a_read_of_a_created_task_quoting_its_callback_url_holds_no_token(
    api: EchoingAPI, zs: Session, spell: Callable[[str], str], logs: pytest.LogCaptureFixture
) -> None:
    """The session's own task, read failed with its error quoting the URL: masked."""
    api.read = lambda url: (200, _failed(spell(url)))
    handle = await asyncio.wait_for(zs.submit("a cat", callback_url=URL), BOUND)
    assert handle.task is not None and handle.task.raw_status == "pending"
    task = await asyncio.wait_for(zs.get_task(TASK_ID), BOUND)
    assert task.error is not None and "***" in task.error.message
    _assert_hidden(task, _shown_forms(spell(URL)), logs)
    _assert_hidden(repr(task.raw_error), _shown_forms(spell(URL)), logs)


async def test_an_unreadable_read_echoing_the_request_shows_no_token(
    api: EchoingAPI, zs: Session, sentry: CapturingTransport, logs: pytest.LogCaptureFixture
) -> None:
    """A read of the session's task echoing the request, without a status: no token."""
    api.read = lambda url: (200, f'{{"id": "{TASK_ID}", "status": 7, "input": {_stored(url)}}}')
    await asyncio.wait_for(zs.submit("a cat", callback_url=URL), BOUND)
    error = await _caught(zs.get_task(TASK_ID))
    assert isinstance(error, MalformedResponseError)
    _assert_hidden(error, _shown_forms(URL), logs, sentry)


async def test_a_task_whose_create_was_uncertain_is_read_with_its_token_masked(
    api: EchoingAPI, zs: Session, sentry: CapturingTransport, logs: pytest.LogCaptureFixture
) -> None:
    """An over-long create answer names the task: resumed by that id, its reads are masked."""
    pad = "x" * MAX_API_BODY
    api.create = lambda url: (200, _task(pad=f'"{pad}"', input=_stored(url)))
    api.read = lambda url: (200, _failed(url))
    uncertain = await _caught(zs.submit("a cat", callback_url=URL))
    assert isinstance(uncertain, SubmissionUncertainError) and uncertain.task_id == TASK_ID
    error = await _caught(zs.task(uncertain.task_id).result())
    assert isinstance(error, TaskFailedError) and "?token=*** did not answer" in error.message
    _assert_hidden(error, _shown_forms(URL), logs, sentry)


# -- the answer without an echo ---------------------------------------------------------------


#: A typical completed task: signed links (``%`` and ``\/`` in them), usage, task_info.
TYPICAL = (
    b'{"id":"task-unified-1757165031-uyujaw3d","object":"image.generation.task",'
    b'"created":1757165031,"model":"z-image-turbo","status":"completed","progress":100,'
    b'"results":["https:\\/\\/cdn.example.com\\/img\\/0.png?X-Amz-Date=20250906T132351Z'
    b"&X-Amz-Expires=86400&X-Amz-Signature=3f9a%2B61c2&X-Amz-Credential=AKIA%2F2025%2Fus"
    b'"],"task_info":{"can_cancel":false,"estimated_time":7},'
    b'"usage":{"billing_rule":"per_image","credits_reserved":0.026,"user_group":"default"}}'
)


#: A read's headers (the key), and a create's masking its callback URL's query values.
KEY_HEADERS = RedactedHeaders({"Authorization": f"Bearer {KEY}", "Accept": "application/json"})
MASKING_HEADERS = KEY_HEADERS.masking(RAW, DECODED)


@pytest.mark.parametrize("masking", [False, True], ids=["no-token", "tokens"])
def test_a_task_answer_without_an_echo_is_returned_as_it_came(masking: bool) -> None:
    """Without an echo, the very same bytes come back, and read as the same task."""
    headers = MASKING_HEADERS if masking else KEY_HEADERS
    assert mask_echoes(TYPICAL, headers) is TYPICAL
    assert parse_task(parse_json(mask_echoes(TYPICAL, headers))) == parse_task(parse_json(TYPICAL))


@pytest.mark.parametrize("spell", SPELLING_PARAMS)
def test_a_masked_echo_leaves_the_json_it_was(spell: Callable[[str], str]) -> None:
    """An echo masked in a 2xx answer leaves JSON that reads as the task, the token masked."""
    body = _failed(spell(URL)).encode()
    masked = parse_json(mask_echoes(body, MASKING_HEADERS))
    assert masked["id"] == TASK_ID and masked["status"] == "failed"
    assert "***" in masked["input"]["callback_url"]
    assert not [form for form in _shown_forms(spell(URL)) if form in json.dumps(masked)]
