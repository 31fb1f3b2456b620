"""Task replies shaped the way the gateway family sends them, over real HTTP on loopback.

The host here is written for these tests alone (not the emulator, which shares the
SDK's own idea of the gateway): it answers the create call and every task read with
exactly the JSON a test scripts, nulls and odd error shapes included, and counts reads.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from PIL import Image as PILImage

from zimage_async import (
    NoResultsError,
    Session,
    TaskFailedError,
    TaskStatus,
)

from .conftest import loopback_session, serving

TASK_ID = "task-unified-1757165031-uyujaw3d"
IMAGE = "{base}/img/0.png"


def _png() -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (400, 400), (10, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


class Gateway:
    """A loopback gateway that replays scripted task JSON and counts what it was asked.

    ``create_reply`` answers the create call; ``reads`` answers the task reads in turn,
    the last one repeating. ``{base}`` in any string becomes this host's own address.
    """

    def __init__(self) -> None:
        self.base = ""
        self.creates = 0
        self.task_gets = 0
        self.image_gets = 0
        self.create_reply: object = {"id": TASK_ID, "status": "pending", "progress": 0}
        self.reads: list[object] = []
        self.app = web.Application()
        self.app.router.add_post("/apiv1/v1/images/generations", self.create)
        self.app.router.add_get("/apiv1/v1/tasks/{task_id}", self.task)
        self.app.router.add_get("/img/{name}", self.image)

    def _reply(self, payload: object) -> web.Response:
        text = json.dumps(payload).replace("{base}", self.base)
        return web.Response(text=text, content_type="application/json")

    async def create(self, request: web.Request) -> web.Response:
        self.creates += 1
        return self._reply(self.create_reply)

    async def task(self, request: web.Request) -> web.Response:
        self.task_gets += 1
        return self._reply(self.reads[min(self.task_gets, len(self.reads)) - 1])

    async def image(self, request: web.Request) -> web.Response:
        self.image_gets += 1
        return web.Response(body=_png(), content_type="image/png")


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    host = Gateway()
    async with serving(host.app) as host.base:
        yield host


@pytest.fixture
async def session(gateway: Gateway) -> AsyncIterator[Session]:
    async with loopback_session(gateway.base) as zs:
        yield zs


NULLS: dict[str, object] = {
    "progress": None,
    "results": None,
    "error": None,
    "created": None,
    "model": None,
    "task_info": None,
    "usage": None,
}
COMPLETED: dict[str, object] = {
    "id": TASK_ID,
    "status": "completed",
    "progress": 100,
    "results": [IMAGE],
}


async def test_create_reply_with_null_fields_is_a_task(gateway: Gateway, session: Session) -> None:
    """A create reply whose optional fields are all null still gives a handle, billed once."""
    gateway.create_reply = {"id": TASK_ID, "status": "pending", **NULLS}
    gateway.reads = [COMPLETED]
    handle = await session.submit("a cat")
    assert handle.id == TASK_ID
    assert handle.progress == 0
    result = await handle
    assert result.image.data == _png()
    assert gateway.creates == 1


async def test_reads_with_null_fields_reach_the_image(gateway: Gateway, session: Session) -> None:
    """Polls whose optional fields and hint sub-fields are null lead to the image."""
    gateway.reads = [
        {
            "id": TASK_ID,
            "status": "processing",
            **NULLS,
            "task_info": {"can_cancel": None, "estimated_time": None},
            "usage": {"billing_rule": None, "credits_reserved": None, "user_group": None},
        },
        {**COMPLETED, "progress": None, "error": None, "task_info": None},
    ]
    handle = await session.submit("a cat")
    result = await handle
    assert result.image.data == _png()
    assert result.task.progress == 0
    assert gateway.task_gets == 2


async def test_get_task_reads_null_progress_as_zero(gateway: Gateway, session: Session) -> None:
    """A single task read with progress null reports progress 0, without retries."""
    gateway.reads = [{"id": TASK_ID, "status": "processing", "progress": None}]
    task = await session.get_task(TASK_ID)
    assert task.status is TaskStatus.PROCESSING
    assert task.progress == 0
    assert gateway.task_gets == 1


@pytest.mark.parametrize(
    ("fields", "code", "message"),
    [
        pytest.param({}, "unknown_error", "no error was given", id="missing"),
        pytest.param({"error": None}, "unknown_error", "no error was given", id="null"),
        pytest.param(
            {"error": "upstream exploded"}, "unknown_error", "upstream exploded", id="bare-string"
        ),
        pytest.param({"error": {"message": "it broke"}}, "unknown_error", "it broke", id="no-code"),
        pytest.param(
            {"error": {"code": None, "message": None}},
            "unknown_error",
            "the service gave no error code",
            id="null-code-and-message",
        ),
        pytest.param(
            {"error": {"code": ["service_error"], "message": "m"}},
            "unknown_error",
            "m",
            id="list-code",
        ),
        pytest.param(
            {"error": {"code": "service_error", "message": None}},
            "service_error",
            "",
            id="null-message",
        ),
    ],
)
async def test_failed_task_error_shapes(
    gateway: Gateway, session: Session, fields: dict[str, object], code: str, message: str
) -> None:
    """A failed task raises TaskFailedError after one read, whatever shape its error has."""
    gateway.reads = [{"id": TASK_ID, "status": "failed", **fields}]
    handle = await session.submit("a cat")
    with pytest.raises(TaskFailedError) as info:
        await handle
    assert (info.value.task_id, info.value.code, info.value.message) == (TASK_ID, code, message)
    assert info.value.raw_error == fields.get("error")
    assert gateway.task_gets == 1


@pytest.mark.parametrize(
    "results",
    [
        pytest.param({"results": None}, id="null"),
        pytest.param({"results": []}, id="empty"),
        pytest.param({}, id="missing"),
    ],
)
async def test_completed_without_results_is_raised_after_one_read(
    gateway: Gateway, session: Session, results: dict[str, object]
) -> None:
    """A completed task without links raises NoResultsError at once, after a single read."""
    gateway.reads = [{"id": TASK_ID, "status": "completed", "progress": 100, **results}]
    handle = await session.submit("a cat")
    with pytest.raises(NoResultsError) as info:
        await handle
    assert info.value.task_id == TASK_ID
    assert info.value.task is handle.task
    assert gateway.task_gets == 1
    assert gateway.image_gets == 0


async def test_completed_without_results_save_writes_nothing(
    gateway: Gateway, session: Session, tmp_path: Path
) -> None:
    """save() of a completed task without links raises NoResultsError and writes no file."""
    gateway.reads = [{"id": TASK_ID, "status": "completed", "results": None}]
    handle = await session.submit("a cat")
    with pytest.raises(NoResultsError):
        await handle.save(tmp_path / "out")
    with pytest.raises(NoResultsError):
        await handle.result()
    assert gateway.task_gets == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


async def test_completed_without_results_in_create_reply(
    gateway: Gateway, session: Session
) -> None:
    """A create reply that is already completed without links raises with no read at all."""
    gateway.create_reply = {"id": TASK_ID, "status": "completed", "results": []}
    handle = await session.submit("a cat")
    with pytest.raises(NoResultsError) as info:
        await handle
    assert info.value.task_id == TASK_ID
    assert (gateway.creates, gateway.task_gets) == (1, 0)


async def test_resumed_handle_without_results(gateway: Gateway, session: Session) -> None:
    """A handle resumed from an id raises NoResultsError after one read of a linkless task."""
    gateway.reads = [{"id": TASK_ID, "status": "completed", "results": None}]
    with pytest.raises(NoResultsError):
        await session.task(TASK_ID)
    assert gateway.task_gets == 1


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        pytest.param({}, "request_cancelled", id="no-error"),
        pytest.param({"error": None}, "request_cancelled", id="null-error"),
        pytest.param({"error": "stopped by user"}, "request_cancelled", id="bare-string"),
        pytest.param(
            {"error": {"code": "request_cancelled", "message": "cancelled"}},
            "request_cancelled",
            id="documented",
        ),
    ],
)
async def test_cancelled_task_is_terminal(
    gateway: Gateway, session: Session, fields: dict[str, object], code: str
) -> None:
    """A cancelled task ends the wait after one read with TaskFailedError request_cancelled."""
    gateway.reads = [{"id": TASK_ID, "status": "cancelled", **fields}]
    handle = await session.submit("a cat")
    with pytest.raises(TaskFailedError) as info:
        await handle
    assert info.value.code == code
    assert info.value.resubmit_may_help is True
    assert gateway.task_gets == 1


async def test_unknown_status_is_not_finished(gateway: Gateway, session: Session) -> None:
    """An undocumented status with null fields keeps the poll going until completion."""
    gateway.reads = [
        {"id": TASK_ID, "status": "queued", **NULLS},
        {"id": TASK_ID, "status": "queued", **NULLS},
        COMPLETED,
    ]
    result = await (await session.submit("a cat"))
    assert result.task.status is TaskStatus.COMPLETED
    assert gateway.task_gets == 3


async def test_bad_hint_keeps_its_siblings(gateway: Gateway, session: Session) -> None:
    """A malformed estimated_time is dropped while can_cancel and usage are kept."""
    gateway.create_reply = {
        "id": TASK_ID,
        "status": "pending",
        "task_info": {"can_cancel": True, "estimated_time": "soon"},
        "usage": {"credits_reserved": 1.5},
    }
    gateway.reads = [COMPLETED]
    handle = await session.submit("a cat")
    task = handle.task
    assert task is not None and task.task_info is not None and task.usage is not None
    assert (task.task_info.can_cancel, task.task_info.estimated_time) == (True, None)
    assert task.usage.credits_reserved == 1.5
