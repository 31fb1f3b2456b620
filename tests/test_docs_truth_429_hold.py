"""What a session holds after a 429 asking for longer than it waits, and how that is told.

Only submissions (create calls) pass through the session's rate gate: after a 429 whose
advice exceeds ``RetryPolicy.max_retry_after``, new submissions are refused for that
long at most, while task reads still go out. The error's message, its class docstring
and the reliability page must say exactly that.
"""

from __future__ import annotations

import re

import pytest

from zimage_async import RateLimitError, RetryPolicy, Session, SubmissionUncertainError
from zimage_async.emulator import Emulator, FaultPlan, FaultRule

from .conftest import ROOT


async def test_a_long_429_holds_new_submissions_only_and_the_error_says_so() -> None:
    """A held submit raises at once, sends nothing, and says task reads are not held."""
    async with (
        Emulator(task_duration=0.05) as emu,
        Session(
            api_key=emu.api_key,
            base_url=emu.base_url,
            retry=RetryPolicy(wait_initial=0.01, max_retry_after=2),
        ) as zs,
    ):
        handle = await zs.submit("made before the 429")
        emu.faults = FaultPlan.script(
            "create", [FaultRule(kind="http_429", retry_after_seconds=999_999)]
        )
        with pytest.raises(SubmissionUncertainError):
            await zs.submit("answered by the long 429")
        creates, reads = emu.request_counts["create"], emu.request_counts.get("task", 0)
        with pytest.raises(RateLimitError) as held:
            await zs.submit("held")
        await handle.refresh()
        assert emu.request_counts["create"] == creates  # the held create was not sent
        assert emu.request_counts["task"] == reads + 1  # the read went out at once
    message = str(held.value)
    assert held.value.retry_after == pytest.approx(999_999, abs=5)  # what the server asked
    assert "new submissions are refused for 2 s more" in message
    assert "task reads are not held" in message
    assert "new calls" not in message


def test_the_reliability_page_says_only_submissions_are_held() -> None:
    """docs/reliability.md's row for an 11-day 429 says creates are held, not task reads."""
    text = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    (row,) = [line for line in text.splitlines() if "Retry-After: 999999" in line]
    assert "later calls are refused" not in row
    assert "new submissions" in row
    assert "task reads are not held" in row


def test_the_rate_limit_error_docstring_names_when_it_is_raised_at_once() -> None:
    """RateLimitError's docstring tells both cases: at once past max_retry_after, else spent."""
    doc = " ".join((RateLimitError.__doc__ or "").split())
    assert "only once the retry policy is spent" not in doc
    assert re.search(r"raised once the retry policy is spent, or at once.*max_retry_after", doc)
