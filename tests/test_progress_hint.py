"""A task's ``progress`` is a display hint: a malformed one never makes a billed task unreadable.

The gateway family's clients read ``progress ?? 0``. A numeric string (``"40"``) is read
as its number; anything else unusable (``"40%"``, an object, a number of 5,000 digits)
is logged and read as 0, like any other malformed hint, so the task can still be
created, polled and collected. Numbers sent as numeric strings in the hint blocks
(``usage.credits_reserved``, ``task_info.estimated_time``) are read as numbers too, so
that a spend limit counts a price the service sent as ``"0.026"``.
"""

from __future__ import annotations

import logging

import pytest

from zimage_async._parsing_task import parse_task

TASK = {"id": "task-unified-1-abc", "status": "processing"}


@pytest.mark.parametrize(
    ("sent", "read"),
    [("40", 40), ("40.4", 40), ("1e1", 10), ("250", 100), ("-3", 0)],
)
def test_a_numeric_string_progress_is_read_as_its_number(sent: str, read: int) -> None:
    """``"40"`` is progress 40 (clamped to 0..100 as numbers are)."""
    assert parse_task({**TASK, "progress": sent}).progress == read


@pytest.mark.parametrize(
    "sent",
    ["40%", "", " ", "nan", "inf", "1_0", {"value": 4}, [40], True, "9" * 5001, 10**5000],
    ids=[
        "percent",
        "empty",
        "blank",
        "nan",
        "inf",
        "underscore",
        "object",
        "list",
        "bool",
        "huge-string",
        "huge-int",
    ],
)
def test_an_unusable_progress_is_dropped_and_the_task_kept(
    sent: object, caplog: pytest.LogCaptureFixture
) -> None:
    """The task is read, progress 0; the field is named in the log, not the task lost."""
    caplog.set_level(logging.DEBUG, logger="zimage_async")
    task = parse_task({**TASK, "progress": sent})
    assert (task.id, task.raw_status, task.progress) == (TASK["id"], "processing", 0)
    assert "$.progress" in " ".join(r.getMessage() for r in caplog.records)


def test_a_completed_task_with_a_malformed_progress_keeps_its_results() -> None:
    """What the task delivers does not depend on its progress."""
    task = parse_task(
        {**TASK, "status": "completed", "progress": "done", "results": ["https://x/a.png"]}
    )
    assert task.results == ("https://x/a.png",)


@pytest.mark.parametrize(("sent", "read"), [("0.026", 0.026), ("3", 3.0), ("1e-2", 0.01)])
def test_a_price_sent_as_a_numeric_string_is_read(sent: str, read: float) -> None:
    """``usage.credits_reserved: "0.026"`` is 0.026 credits, not a dropped price."""
    usage = {"billing_rule": "per_image", "credits_reserved": sent, "user_group": "default"}
    task = parse_task({**TASK, "usage": usage, "task_info": {"estimated_time": sent}})
    assert task.usage is not None and task.usage.credits_reserved == pytest.approx(read)
    assert task.estimated_time == pytest.approx(read)


@pytest.mark.parametrize("sent", ["0.026 credits", "nan", "inf", "0x10", ""])
def test_a_price_string_that_is_no_number_is_dropped(sent: str) -> None:
    """Only plain decimal numbers are read; the rest is a malformed hint, dropped."""
    usage = {"billing_rule": "per_image", "credits_reserved": sent, "user_group": "default"}
    task = parse_task({**TASK, "usage": usage})
    assert task.usage is not None and task.usage.credits_reserved is None
