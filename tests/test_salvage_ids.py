"""The task id of a billed create whose answer is unreadable as a task is kept.

The protocol says only that a task id starts ``task-unified-``; the SDK takes any id
:func:`~zimage_async._validation.validate_task_id` accepts. A create answered 2xx whose
body decodes but is no task (``progress: "0%"``) names its id in ``$.id``: that id is
kept in the :class:`SubmissionUncertainError` and in the journal, whatever its shape.
Over real HTTP on loopback, and the salvage function itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp import web

from zimage_async import SubmissionUncertainError
from zimage_async._journal_records import JournalState
from zimage_async._parsing import salvage_task_id
from zimage_async._validation import TASK_ID_MAX_CHARS, TASK_ID_PREFIX

from .conftest import loopback_session, serving

LONGEST = TASK_ID_PREFIX + "a" * (TASK_ID_MAX_CHARS - len(TASK_ID_PREFIX))
#: Ids the SDK's validator accepts, of other shapes than ``<digits>-<8 lower-case>``.
IDS = [
    pytest.param("task-unified-1757165031-uyujaw3d", id="usual"),
    pytest.param("task-unified-1757165031-UyUjAw3D", id="upper-case"),
    pytest.param("task-unified-1757165031-uyujaw3d42", id="ten-chars"),
    pytest.param("task-unified-1757165031-uyu_aw3d", id="underscore"),
    pytest.param("task-unified-abc", id="no-digits"),
    pytest.param(LONGEST, id="200-chars"),
]


def _answer(task_id: str, **fields: object) -> bytes:
    body = {"id": task_id, "status": "pending", "results": "0%", "created": 1757165031}
    return json.dumps(body | fields).encode()


@pytest.mark.parametrize("task_id", IDS)
async def test_an_unreadable_create_answer_keeps_its_id(task_id: str, tmp_path: Path) -> None:
    """The uncertain create carries the id; the journal holds it, resumable."""

    async def create(request: web.Request) -> web.Response:
        return web.Response(body=_answer(task_id), content_type="application/json")

    app = web.Application()
    app.router.add_post("/apiv1/v1/images/generations", create)
    async with (
        serving(app) as base,
        loopback_session(base, journal=tmp_path / "j.sqlite") as session,
    ):
        with pytest.raises(SubmissionUncertainError) as caught:
            await session.submit("a cat")
        unfinished = await session.unfinished()
    assert caught.value.task_id == task_id
    assert task_id in str(caught.value)
    assert [(r.task_id, r.state) for r in unfinished] == [(task_id, JournalState.CREATED)]


@pytest.mark.parametrize("task_id", IDS)
def test_the_decoded_id_is_taken(task_id: str) -> None:
    """An answer that decodes: its ``$.id`` is the id, when the validator accepts it."""
    body = _answer(task_id)
    assert salvage_task_id(body, json.loads(body)) == task_id


@pytest.mark.parametrize("task_id", IDS)
def test_an_id_in_a_body_cut_short_is_found_when_complete(task_id: str) -> None:
    """An answer that does not decode: a complete id of any accepted shape is found."""
    body = _answer(task_id)
    assert salvage_task_id(body[: body.index(b'"status"') + 4]) == task_id
    cut = body[: body.index(task_id.encode()) + len(task_id) - 1]
    assert salvage_task_id(cut) is None


@pytest.mark.parametrize(
    "task_id",
    [
        pytest.param(LONGEST + "a", id="201-chars"),
        pytest.param("task-unified-", id="prefix-only"),
        pytest.param("task-unified-1/../x", id="slash"),
        pytest.param("task-unified-1 2", id="space"),
        pytest.param("job-1757165031-uyujaw3d", id="other-prefix"),
    ],
)
def test_an_id_the_validator_refuses_is_not_salvaged(task_id: str) -> None:
    """Neither reading gives an id that could not go into a poll's URL."""
    body = _answer(task_id)
    assert salvage_task_id(body, json.loads(body)) is None
    assert salvage_task_id(body[:-2]) is None


def test_a_decoded_answer_without_a_usable_id_is_searched() -> None:
    """A decoded object whose ``$.id`` is unusable still yields the task id it names."""
    body = json.dumps({"data": {"id": "task-unified-1-Ab_c"}, "progress": "0%"}).encode()
    assert salvage_task_id(body, json.loads(body)) == "task-unified-1-Ab_c"
