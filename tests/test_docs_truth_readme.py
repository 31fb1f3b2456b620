"""The README's promise about billing matches what a create call does when it is retried.

The README is the first page a user reads: its retry bullet must not promise more than
the SDK keeps where the gateway ignores idempotency keys.
"""

from __future__ import annotations

import re

import pytest

from zimage_async import Session, SubmissionUncertainError
from zimage_async.emulator import Emulator, FaultPlan, FaultRule

from .conftest import FAST_RETRY, ROOT


def _retry_bullet() -> str:
    """The README's bullet about the create call being repeated, as one line of text."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    bullets = [" ".join(b.split()) for b in re.findall(r"^- (.*?)(?=^- |^$)", text, re.M | re.S)]
    (bullet,) = [b for b in bullets if "create call is repeated" in b]
    return bullet


async def test_readme_says_a_create_is_resent_once_after_the_apis_own_503() -> None:
    """A create answered 503 (the API's envelope) is sent again with its key, as the README says.

    Where the gateway ignores keys that bills a second task, so the README must name this
    resend rather than promise that the create is repeated only when no task was made.
    """
    busy = FaultRule(kind="http_503_after_create", retry_after_seconds=0)
    plan = FaultPlan.script("create", [busy, busy])
    async with (
        Emulator(task_duration=0.05, idempotency="ignore", faults=plan) as emu,
        Session(api_key=emu.api_key, base_url=emu.base_url, retry=FAST_RETRY) as zs,
    ):
        with pytest.raises(SubmissionUncertainError):
            await zs.submit("a cat")
        keys = {r.header("Idempotency-Key") for r in emu.requests if r.endpoint == "create"}
    assert emu.request_counts["create"] == 2
    assert len(keys) == 1
    assert len(emu.ledger) == 2  # the gateway ignored the key: one submit, two tasks
    bullet = _retry_bullet()
    assert "never bill twice" not in bullet
    assert "429/502/503" in bullet
    assert "same idempotency key" in bullet
