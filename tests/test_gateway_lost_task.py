"""A task the gateway showed, then answers 404 for: a lagging replica, not an unknown id.

A 404 used to be polled past only within 15 s of the session's own create; later, or for
a handle made from an id whose reads had shown the task, one 404 ended the wait with a
``NotFoundError`` that says no task of the id is billed, though the session had seen it
(and paid for it). Now a 404 is polled past for the same window counted from the last
answer that showed the task; a task still not found after it is told billed, with how
to collect it. An id never shown is still refused at its first 404. The gateway is a
small aiohttp server on 127.0.0.1 whose task reads follow a script of (seconds after
the create, answer).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from zimage_async import NotFoundError, PollSchedule, Session, _handlepolls

from .conftest import _png, loopback_session, serving

TASK_ID = "task-unified-1796285667-lost0001"
POLL = PollSchedule(wait_min=0.02, wait_max=0.05, jitter=0.0, timeout=20.0)
#: The window of 404s polled past, shortened so that the tests take a second.
WINDOW = 0.5


class LosingGateway:
    """Creates one task; its reads follow ``script``: (until, answer) pairs, then the last."""

    def __init__(self, script: list[tuple[float, str]]) -> None:
        self.script = script
        self.created_at = time.monotonic()
        self.base = ""
        self.reads: list[str] = []
        self.app = web.Application()
        self.app.router.add_post("/apiv1/v1/images/generations", self.create)
        self.app.router.add_get("/apiv1/v1/tasks/{id}", self.read)
        self.app.router.add_get("/img/0.png", self.image)

    def answer(self) -> str:
        elapsed = time.monotonic() - self.created_at
        for until, answer in self.script:
            if elapsed < until:
                return answer
        return self.script[-1][1]

    async def create(self, request: web.Request) -> web.Response:
        self.created_at = time.monotonic()
        return web.json_response({"id": TASK_ID, "status": "processing", "progress": 10})

    async def read(self, request: web.Request) -> web.Response:
        answer = self.answer()
        self.reads.append(answer)
        if answer == "404":
            body = {"error": {"type": "not_found_error", "message": "task not found"}}
            return web.json_response(body, status=404)
        done = answer == "completed"
        return web.json_response(
            {
                "id": TASK_ID,
                "status": answer,
                "progress": 100 if done else 50,
                "results": [f"{self.base}/img/0.png"] if done else [],
            }
        )

    async def image(self, request: web.Request) -> web.Response:
        return web.Response(body=_png((64, 64)), content_type="image/png")


@pytest.fixture(autouse=True)
def _short_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_handlepolls, "NOT_YET_VISIBLE", WINDOW)


async def _gateway(script: list[tuple[float, str]]) -> AsyncIterator[tuple[LosingGateway, Session]]:
    gateway = LosingGateway(script)
    async with serving(gateway.app) as base:
        gateway.base = base
        async with loopback_session(base, poll=POLL) as zs:
            yield gateway, zs


@pytest.fixture
async def flapping() -> AsyncIterator[tuple[LosingGateway, Session]]:
    """Shows the task running for 1 s, then 404s for 0.3 s, then completed."""
    async for pair in _gateway([(1.0, "processing"), (1.3, "404"), (99.0, "completed")]):
        yield pair


@pytest.fixture
async def losing() -> AsyncIterator[tuple[LosingGateway, Session]]:
    """Shows the task running for 1 s, then answers 404 for good."""
    async for pair in _gateway([(1.0, "processing"), (99.0, "404")]):
        yield pair


async def test_404s_after_the_window_from_the_create_are_polled_past(
    flapping: tuple[LosingGateway, Session],
) -> None:
    """Seen running 1 s after its create, lost for 0.3 s (under the window): the wait succeeds."""
    gateway, zs = flapping
    result = await (await zs.submit("a cat"))
    assert len(result.images) == 1
    assert "404" in gateway.reads


async def test_404s_to_a_handle_made_from_an_id_it_read_are_polled_past(
    flapping: tuple[LosingGateway, Session],
) -> None:
    """``session.task(id)``: its first read showed the task, so a 404 later is a replica's."""
    gateway, zs = flapping
    handle = await zs.submit("a cat")
    resumed = zs.task(handle.id)
    await resumed.refresh()  # the service shows it
    result = await resumed
    assert len(result.images) == 1
    assert "404" in gateway.reads


async def test_a_task_seen_then_lost_is_told_billed_and_collectable(
    losing: tuple[LosingGateway, Session],
) -> None:
    """Still 404 after the window: a NotFoundError saying the task is billed, and how to collect."""
    gateway, zs = losing
    handle = await zs.submit("a cat")
    with pytest.raises(NotFoundError) as caught:
        await handle
    error = caught.value
    assert error.task_id == TASK_ID
    message = str(error)
    assert "billed" in message
    assert f"session.task({TASK_ID!r})" in message
    assert gateway.reads.count("404") >= 2, "the first 404 was taken as final"


async def test_an_id_never_shown_is_refused_at_its_first_404(
    losing: tuple[LosingGateway, Session],
) -> None:
    """A handle from an id whose reads never showed the task: unknown, nothing said billed."""
    gateway, zs = losing
    gateway.script = [(99.0, "404")]
    with pytest.raises(NotFoundError) as caught:
        await zs.task(TASK_ID)
    assert gateway.reads == ["404"]
    assert "billed" not in str(caught.value)


async def test_a_refresh_of_a_task_shown_before_says_it_is_billed(
    losing: tuple[LosingGateway, Session],
) -> None:
    """``refresh()`` raises a 404 at once, but of a task the service showed: told billed."""
    gateway, zs = losing
    gateway.script = [(99.0, "404")]
    handle = await zs.submit("a cat")  # the create's answer shows the task
    with pytest.raises(NotFoundError) as caught:
        await handle.refresh()
    assert gateway.reads == ["404"], "refresh() reads once"
    message = str(caught.value)
    assert "after the service had shown the task" in message
    assert "billed" in message
    assert f"session.task({TASK_ID!r})" in message
    assert message.count("billed") == 1, message


async def test_a_task_lost_for_good_is_told_billed_once(
    losing: tuple[LosingGateway, Session],
) -> None:
    """The wait's final 404 carries the note once: refresh() notes it, the loop adds nothing."""
    _, zs = losing
    handle = await zs.submit("a cat")
    with pytest.raises(NotFoundError) as caught:
        await handle
    message = str(caught.value)
    assert message.count("billed") == 1, message
    assert message.count("after the service had shown the task") == 1, message
