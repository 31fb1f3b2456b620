"""A malformed hint sent on every poll is a warning once per task, not once per poll.

A gateway that always sends, say, ``"estimated_time": "soon"`` would otherwise log a
warning on each of a task's polls (thousands over a long wait, for every task of a
batch). The first time a task drops a given set of fields is a WARNING; the same drop on
the same task again is logged at DEBUG.
"""

from __future__ import annotations

import logging

import pytest

from zimage_async._parsing_task import parse_task


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_the_same_malformed_hint_on_every_poll_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Five polls of one task with the same bad hint: one warning, four debug lines."""
    caplog.set_level(logging.DEBUG, logger="zimage_async")
    payload = {
        "id": "task-unified-1-hintonce",
        "status": "processing",
        "task_info": {"estimated_time": "soon"},
    }
    for _ in range(5):
        assert parse_task(payload).id == "task-unified-1-hintonce"
    dropped = [r for r in caplog.records if "ignored malformed hint" in r.getMessage()]
    assert [r.levelno for r in dropped] == [logging.WARNING] + [logging.DEBUG] * 4
    assert "$.task_info" in dropped[0].getMessage()


def test_another_task_or_another_field_warns_again(caplog: pytest.LogCaptureFixture) -> None:
    """The once is per task and per set of fields: a new task, or a new bad field, warns."""
    caplog.set_level(logging.DEBUG, logger="zimage_async")
    first = {"id": "task-unified-1-hintagain", "status": "pending", "created": "soon"}
    parse_task(first)
    parse_task({**first, "id": "task-unified-2-hintagain"})
    parse_task({**first, "model": 7})
    assert len(_warnings(caplog)) == 3


def test_the_memory_of_warned_tasks_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    """A long-lived process polling many tasks keeps a bounded memo, and still warns."""
    from zimage_async import _parsing_hints

    caplog.set_level(logging.WARNING, logger="zimage_async")
    for n in range(_parsing_hints.REMEMBERED + 10):
        parse_task({"id": f"task-unified-{n}-hintmemo", "status": "pending", "created": "x"})
    assert len(_parsing_hints._warned) <= _parsing_hints.REMEMBERED
    assert len(_warnings(caplog)) == _parsing_hints.REMEMBERED + 10
