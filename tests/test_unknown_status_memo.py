"""Unknown statuses are warned about once per session, in bounded memory.

A gateway that puts a changing part in its status (``"queued (position 17)"``) sends a
new "unknown status" on every poll. The session's memo of statuses already warned about
keeps at most :data:`~zimage_async._verdict.WARNED_STATUSES` of them, each by its first
64 characters; past that, unknown statuses are logged at debug level only.
"""

from __future__ import annotations

import logging

import pytest

from zimage_async import _verdict
from zimage_async._verdict import note_unknown_status


def test_a_status_changing_on_every_poll_fills_a_bounded_memo(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Thousands of distinct long statuses: the memo stays bounded, warnings stop."""
    caplog.set_level(logging.DEBUG, logger="zimage_async")
    warned: set[str] = set()
    for n in range(3000):
        note_unknown_status("task-unified-1-a", f"queued (position {n})" + " " * 2000, warned)
    assert len(warned) <= _verdict.WARNED_STATUSES
    assert all(len(status) <= 64 for status in warned)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == _verdict.WARNED_STATUSES


def test_each_unknown_status_is_still_warned_about_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Below the bound, each status warns once and is then logged at debug."""
    caplog.set_level(logging.DEBUG, logger="zimage_async")
    warned: set[str] = set()
    for status in ("paused", "paused", "held", "paused", "held"):
        note_unknown_status("task-unified-1-a", status, warned)
    levels = [r.levelno for r in caplog.records]
    assert levels.count(logging.WARNING) == 2
    assert levels.count(logging.DEBUG) == 3
