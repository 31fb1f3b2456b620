"""Answers holding numbers too long to read as written, over real HTTP on loopback.

Python's ``int()`` refuses a literal of more than 4,300 digits (``json.loads`` raises a
plain ``ValueError`` for it), and no float holds an integer of 400 digits. Such a number
reads as an infinite one: a hint holding it is dropped as NaN or infinity are, an
essential field holding it makes the answer malformed, and an error envelope keeps its
type. The host here serves the answers as raw text (``json.dumps`` cannot write them).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from zimage_async import (
    InternalServerError,
    RetryPolicy,
    ServiceUnavailableError,
    Session,
    SubmissionUncertainError,
)

from .conftest import loopback_session, serving

TASK_ID = "task-unified-1-abcdefgh"
#: Past the interpreter's limit on int() of a decimal string (4,300 digits).
HUGE = "1" + "0" * 5000
#: int() reads it, but no float holds it.
BIG = "1" + "0" * 400
ONE_TRY = RetryPolicy(max_attempts=1)


class Host:
    """A loopback API answering each create and each task read with scripted raw text.

    ``creates`` and ``reads`` hold ``(status, body)`` pairs used in turn, the last one
    repeating; ``keys`` records the ``Idempotency-Key`` of every create.
    """

    def __init__(self) -> None:
        self.base = ""
        self.creates: list[tuple[int, str]] = []
        self.reads: list[tuple[int, str]] = []
        self.keys: list[str | None] = []
        self.task_gets = 0
        self.app = web.Application()
        self.app.router.add_post("/apiv1/v1/images/generations", self.create)
        self.app.router.add_get("/apiv1/v1/tasks/{task_id}", self.task)

    async def create(self, request: web.Request) -> web.Response:
        self.keys.append(request.headers.get("Idempotency-Key"))
        status, text = self.creates[min(len(self.keys), len(self.creates)) - 1]
        return web.Response(status=status, text=text, content_type="application/json")

    async def task(self, request: web.Request) -> web.Response:
        self.task_gets += 1
        status, text = self.reads[min(self.task_gets, len(self.reads)) - 1]
        return web.Response(status=status, text=text, content_type="application/json")


@pytest.fixture
async def host() -> AsyncIterator[Host]:
    server = Host()
    async with serving(server.app) as server.base:
        yield server


@pytest.fixture
async def session(host: Host) -> AsyncIterator[Session]:
    async with loopback_session(host.base) as zs:
        yield zs


def _object(**fields: str) -> str:
    """A JSON object's text, with *fields* written as the raw JSON values given."""
    return "{" + ", ".join(f'"{name}": {value}' for name, value in fields.items()) + "}"


def _task(**fields: str) -> str:
    """A task answer's text: the task's id, ``pending``, and *fields* as raw JSON."""
    return _object(id=f'"{TASK_ID}"', status='"pending"', **fields)


def _envelope(type_: str, code: str) -> str:
    """An error envelope's text, with *code* written as raw JSON."""
    return _object(error=_object(type=f'"{type_}"', code=code, message='"busy"'))


async def test_create_answer_with_a_huge_created_is_the_task(host: Host, session: Session) -> None:
    """A billed create whose ``created`` has 5,001 digits gives the task, without the hint."""
    host.creates = [(200, _task(progress="0", created=HUGE, model='"z-image-turbo"'))]
    handle = await session.submit("a cat")
    assert handle.id == TASK_ID
    assert handle.task is not None
    assert handle.task.created is None
    assert handle.task.model == "z-image-turbo"
    assert len(host.keys) == 1


@pytest.mark.parametrize("progress", [HUGE, BIG], ids=["5001-digits", "401-digits"])
async def test_create_answer_with_a_huge_progress_is_the_task(
    host: Host, session: Session, progress: str
) -> None:
    """A billed create whose progress cannot be a number gives the task, at progress 0."""
    host.creates = [(200, _task(progress=progress))]
    handle = await session.submit("a cat")
    assert handle.id == TASK_ID
    assert handle.task is not None and handle.task.progress == 0
    assert len(host.keys) == 1


@pytest.mark.parametrize("number", [HUGE, BIG, "-" + BIG], ids=["5001-digits", "401", "-401"])
async def test_task_read_drops_hints_beyond_a_float_quietly(
    host: Host, session: Session, number: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An estimate or a credit count no float holds is dropped like an infinite one."""
    caplog.set_level(logging.DEBUG, logger="zimage_async")
    info = _object(can_cancel="true", estimated_time=number)
    usage = _object(billing_rule='"per_image"', credits_reserved=number)
    host.reads = [(200, _task(progress="40", task_info=info, usage=usage))]
    task = await session.get_task(TASK_ID)
    assert task.progress == 40
    assert task.task_info is not None and task.task_info.can_cancel is True
    assert task.estimated_time is None
    assert task.usage is not None and task.usage.billing_rule == "per_image"
    assert task.usage.credits_reserved is None
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    noted = " ".join(r.getMessage() for r in caplog.records)
    assert "$.task_info.estimated_time" in noted and "$.usage.credits_reserved" in noted
    assert len(noted) < 2000  # the numbers themselves are not written out


async def test_task_read_with_a_huge_progress_is_read_at_progress_0(host: Host) -> None:
    """A task read whose progress has 5,001 digits is the task, its progress dropped."""
    host.reads = [(200, _task(progress=HUGE))]
    async with loopback_session(host.base, retry=ONE_TRY) as session:
        task = await session.get_task(TASK_ID)
    assert (task.id, task.progress) == (TASK_ID, 0)


@pytest.mark.parametrize("code", [HUGE, BIG], ids=["5001-digits", "401-digits"])
async def test_error_envelope_with_a_huge_code_keeps_its_type(host: Host, code: str) -> None:
    """A 503 envelope whose code has thousands of digits is still the typed error."""
    host.reads = [(503, _envelope("service_unavailable_error", code))]
    async with loopback_session(host.base, retry=ONE_TRY) as session:
        with pytest.raises(ServiceUnavailableError) as caught:
            await session.get_task(TASK_ID)
    error = caught.value
    assert error.type == "service_unavailable_error" and error.message == "busy"
    # an integer beyond int()'s limit reads as infinite, and a code is an int or a string
    assert error.code == (None if code == HUGE else int(code))


async def test_create_refused_with_a_huge_code_is_sent_again_with_its_key(
    host: Host, session: Session
) -> None:
    """The API's typed 503, whatever its code, is a refusal: sent again with the same key."""
    host.creates = [
        (503, _envelope("service_unavailable_error", HUGE)),
        (200, _task(progress="0")),
    ]
    handle = await session.submit("a cat")
    assert handle.id == TASK_ID
    assert len(host.keys) == 2 and host.keys[0] == host.keys[1] is not None


async def test_create_500_with_a_huge_code_is_uncertain_with_its_key(
    host: Host, session: Session
) -> None:
    """A 500 envelope whose code has 5,001 digits leaves the create uncertain, with its key."""
    host.creates = [(500, _envelope("internal_server_error", HUGE))]
    with pytest.raises(SubmissionUncertainError) as caught:
        await session.submit("a cat")
    error = caught.value
    assert len(host.keys) == 1 and error.idempotency_key == host.keys[0]
    assert isinstance(error.cause, InternalServerError)
    assert error.cause.type == "internal_server_error"
