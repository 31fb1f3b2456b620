r"""The API key never comes back in an error, however the server's JSON escapes its echo.

A JSON string may spell any character as ``\u`` and four hex digits (either case), and
``/`` as ``\/``: an echo of the key spelled so decodes to the key itself. A server on
127.0.0.1 echoes the key so spelled in every text field of its error envelope; the key
must then show in no text, attribute, chained cause, traceback local, error report or
log record.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any

import pytest
from aiohttp import web

from zimage_async import (
    APIError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    RetryPolicy,
    ServiceUnavailableError,
    Session,
    SubmissionUncertainError,
    TaskFailedError,
    ZImageError,
)
from zimage_async._parsing import parse_error, parse_json
from zimage_async._redaction import RedactedHeaders, mask_echoes

from ._reports import CapturingTransport, rendered, report
from .conftest import FAST_POLL, serving

#: A key with "/" (which JSON may also write "\/"), "+" and "=", as base64 keys have.
KEY = "sk-live/0123+abcd=WXYZ/5678"
TASK_ID = "task-unified-1-abcdefgh"
TWO_TRIES = RetryPolicy(max_attempts=2, wait_initial=0.01, wait_max=0.02)


def _escaped(char: str, upper: bool = False) -> str:
    return f"\\u{ord(char):04X}" if upper else f"\\u{ord(char):04x}"


#: The key as a JSON string may spell it (the text between the quotes, raw).
SPELLINGS = {
    "every-char": "".join(_escaped(c) for c in KEY),
    "every-char-upper-hex": "".join(_escaped(c, upper=True) for c in KEY),
    "first-char": _escaped(KEY[0]) + KEY[1:],
    "last-char": KEY[:-1] + _escaped(KEY[-1]),
    "every-other-char": "".join(_escaped(c) if i % 2 else c for i, c in enumerate(KEY)),
    "one-slash-escaped": KEY.replace("/", "\\/", 1),
    "slash-escaped-and-u": _escaped(KEY[0]) + KEY[1:].replace("/", "\\/"),
    "slash-as-u": KEY.replace("/", _escaped("/")),
}
SPELLING_PARAMS = [pytest.param(text, id=name) for name, text in SPELLINGS.items()]


def _envelope(spelled: str, type_: str) -> str:
    """An error envelope whose every text field echoes the key, spelled as given."""
    return (
        '{"error": {'
        f'"type": "{type_} {spelled}", '
        f'"code": "bad_key {spelled}", '
        f'"message": "invalid key {spelled} (Authorization: Bearer {spelled})", '
        f'"param": "{spelled}", '
        f'"fallback_suggestion": "check {spelled}"'
        "}}"
    )


class EchoingHost:
    """A loopback API answering every create and task read with a scripted raw answer."""

    def __init__(self) -> None:
        self.base = ""
        self.create_answer: tuple[int, str] = (500, "")
        self.read_answer: tuple[int, str] = (500, "")
        self.authorizations: list[str | None] = []
        self.app = web.Application()
        self.app.router.add_post("/apiv1/v1/images/generations", self.create)
        self.app.router.add_get("/apiv1/v1/tasks/{task_id}", self.task)

    async def create(self, request: web.Request) -> web.Response:
        self.authorizations.append(request.headers.get("Authorization"))
        status, text = self.create_answer
        return web.Response(status=status, text=text, content_type="application/json")

    async def task(self, request: web.Request) -> web.Response:
        self.authorizations.append(request.headers.get("Authorization"))
        status, text = self.read_answer
        return web.Response(status=status, text=text, content_type="application/json")


@pytest.fixture
async def host() -> AsyncIterator[EchoingHost]:
    server = EchoingHost()
    async with serving(server.app) as server.base:
        yield server


@pytest.fixture
async def session(host: EchoingHost) -> AsyncIterator[Session]:
    async with Session(
        api_key=KEY, base_url=f"{host.base}/apiv1", poll=FAST_POLL, retry=TWO_TRIES
    ) as zs:
        yield zs


def _chain(error: BaseException) -> list[BaseException]:
    """The error, its causes and contexts, and exceptions held in their attributes."""
    seen: list[BaseException] = []
    stack: list[BaseException | None] = [error]
    while stack:
        current = stack.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        stack += [current.__cause__, current.__context__]
        stack += [v for v in vars(current).values() if isinstance(v, BaseException)]
    return seen


def _frame_locals(error: BaseException) -> Iterator[tuple[str, Any]]:
    for link in _chain(error):
        tb = link.__traceback__
        while tb is not None:
            yield from tb.tb_frame.f_locals.items()
            tb = tb.tb_next


def _assert_nowhere(
    error: BaseException, spelled: str, sentry: CapturingTransport, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither the key nor its escaped spelling shows anywhere the error or the logs reach."""
    forms = (KEY, spelled, KEY.replace("/", "\\/"))
    for link in _chain(error):
        shown = f"{link} {link!r} {link.args!r} {vars(link)!r}"
        assert not [form for form in forms if form in shown], type(link).__name__
    for name, value in _frame_locals(error):
        shown = repr(value)
        if isinstance(value, dict):
            shown += " ".join(map(str, value.values()))
        assert not [form for form in forms if form in shown], f"local {name}"
    text = rendered(error)  # a traceback with every frame's locals, causes included
    assert not [form for form in forms if form in text]
    envelope = report(sentry, error)
    assert not [form for form in forms if form.encode() in envelope]
    assert caplog.records  # the calls were logged, at DEBUG at least
    for record in caplog.records:
        logged = record.getMessage() + (record.exc_text or "")
        assert not [form for form in forms if form in logged]


async def _caught(call: Awaitable[object]) -> ZImageError:
    """The error *call* raises, with a traceback of the SDK's frames and this one only.

    Caught here rather than in the test, whose frame holds the spelling it sent.
    """
    try:
        await call
    except ZImageError as exc:
        return exc
    raise AssertionError("the call raised nothing")


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


@pytest.mark.parametrize("spelled", SPELLING_PARAMS)
async def test_401_to_a_create_echoing_the_escaped_key_shows_it_nowhere(
    host: EchoingHost,
    session: Session,
    spelled: str,
    sentry: CapturingTransport,
    logs: pytest.LogCaptureFixture,
) -> None:
    """A 401 echoing the key, escaped, in every field: a typed error without the key."""
    host.create_answer = (401, _envelope(spelled, "authentication_error"))
    error = await _caught(session.submit("a cat"))
    assert isinstance(error, AuthenticationError)
    assert host.authorizations == [f"Bearer {KEY}"]  # the key was sent, and echoed
    assert "***" in error.message and error.type is not None and "***" in error.type
    assert error.type.startswith("authentication_error")
    assert isinstance(error.code, str) and "***" in error.code
    _assert_nowhere(error, spelled, sentry, logs)


@pytest.mark.parametrize("spelled", SPELLING_PARAMS)
async def test_400_to_a_read_echoing_the_escaped_key_shows_it_nowhere(
    host: EchoingHost,
    session: Session,
    spelled: str,
    sentry: CapturingTransport,
    logs: pytest.LogCaptureFixture,
) -> None:
    """A 400 echoing the key, escaped, in every field: a typed error without the key."""
    host.read_answer = (400, _envelope(spelled, "invalid_request_error"))
    error = await _caught(session.get_task(TASK_ID))
    assert isinstance(error, BadRequestError)
    assert error.param == "***" and error.fallback_suggestion == "check ***"
    _assert_nowhere(error, spelled, sentry, logs)


async def test_uncertain_create_and_its_cause_echoing_the_escaped_key_show_it_nowhere(
    host: EchoingHost,
    session: Session,
    sentry: CapturingTransport,
    logs: pytest.LogCaptureFixture,
) -> None:
    """A 500 to a create echoing the escaped key: uncertain, its cause masked too."""
    spelled = SPELLINGS["every-char"]
    host.create_answer = (500, _envelope(spelled, "internal_server_error"))
    error = await _caught(session.submit("a cat"))
    assert isinstance(error, SubmissionUncertainError)
    assert isinstance(error.cause, InternalServerError)
    _assert_nowhere(error, spelled, sentry, logs)


async def test_retried_read_echoing_the_escaped_key_logs_no_key(
    host: EchoingHost,
    session: Session,
    sentry: CapturingTransport,
    logs: pytest.LogCaptureFixture,
) -> None:
    """A 503 retried (and logged) before it is raised: no log line nor error has the key."""
    spelled = SPELLINGS["every-other-char"]
    host.read_answer = (503, _envelope(spelled, "service_unavailable_error"))
    error = await _caught(session.get_task(TASK_ID))
    assert isinstance(error, ServiceUnavailableError)
    assert len(host.authorizations) == 2
    assert any("retrying" in record.getMessage() for record in logs.records)
    _assert_nowhere(error, spelled, sentry, logs)


async def test_failed_task_echoing_the_escaped_key_shows_it_nowhere(
    host: EchoingHost,
    session: Session,
    sentry: CapturingTransport,
    logs: pytest.LogCaptureFixture,
) -> None:
    """A failed task whose error echoes the escaped key: TaskFailedError without the key."""
    spelled = SPELLINGS["every-char-upper-hex"]
    host.read_answer = (
        200,
        f'{{"id": "{TASK_ID}", "status": "failed", '
        f'"error": {{"code": "service_error", "message": "bad key {spelled}"}}}}',
    )
    error = await _caught(session.task(TASK_ID).result())
    assert isinstance(error, TaskFailedError)
    assert error.message == "bad key ***"
    _assert_nowhere(error, spelled, sentry, logs)


def _headers() -> RedactedHeaders:
    return RedactedHeaders({"Authorization": f"Bearer {KEY}", "Accept": "application/json"})


@pytest.mark.parametrize("spelled", SPELLING_PARAMS)
def test_masked_answers_stay_the_json_they_were(spelled: str) -> None:
    """Masking an escaped echo leaves valid JSON that reads as the answer with ``***``."""
    body = _envelope(spelled, "authentication_error").encode()
    masked = parse_json(mask_echoes(body, _headers()))
    assert masked == parse_json(_envelope("***", "authentication_error").encode())


def test_an_escaped_backslash_before_a_near_echo_is_left_alone() -> None:
    r"""``\\u0073\u006b...`` is a backslash, "u0073" and "k...", not the key: left as it is.

    Read as an escape, the ``\u0073`` after the escaped backslash would be masked, and
    the answer would no longer be JSON.
    """
    spelled = "\\\\" + SPELLINGS["every-char"][1:]  # an escaped backslash, then "u0073..."
    body = f'{{"error": {{"type": "x", "message": "{spelled}"}}}}'.encode()
    assert parse_json(body)["error"]["message"] == "\\" + KEY.replace("s", "u0073", 1)
    assert mask_echoes(body, _headers()) == body


def test_an_answer_without_an_echo_is_returned_as_it_came() -> None:
    """A task answer with escapes but no echo is the very same bytes object."""
    body = (
        b'{"id": "task-unified-1-abcdefgh", "status": "completed", '
        b'"results": ["https:\\/\\/cdn.example\\/0.png?a=1\\u0026b=\\u0073k-live"]}'
    )
    assert mask_echoes(body, _headers()) is body


def test_type_echoing_a_bearer_token_is_masked() -> None:
    """A Bearer token in the envelope's type is masked, in the attribute and the text."""
    body = b'{"error": {"type": "Authorization: Bearer tok-3141592653 refused", "message": "m"}}'
    error = parse_error(400, {}, body, method="GET", path="/v1/tasks/x")
    assert isinstance(error, APIError) and error.type is not None
    assert "tok-3141592653" not in f"{error.type} {error} {error.args}"
    assert error.type == "Authorization: Bearer *** refused"


def test_the_escaped_key_is_an_error_that_reaches_the_caller() -> None:
    """The spellings used here do decode to the key (else these tests would prove nothing)."""
    for spelled in SPELLINGS.values():
        decoded = parse_json(f'"{spelled}"'.encode())
        assert decoded == KEY
    assert issubclass(AuthenticationError, ZImageError)
