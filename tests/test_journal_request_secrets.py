"""A journal request that cannot be rebuilt is reported without the token it holds.

A create's stored request body may carry a callback URL with a token in its query. If
the body was changed by hand into something that is not a request (a JSON list, a seed
that is text, a scheme the rule refuses), rebuilding it raises :class:`JournalError`
naming the row and why; the token is in neither its text nor any exception chained to
it, nor the locals of their frames, which error reporters such as Sentry send.
"""

from __future__ import annotations

import json

import attrs
import pytest

from zimage_async import GenerationRequest, JournalError
from zimage_async._journal import JournalRecord

from ._reports import CapturingTransport
from .test_journal_row_secrets import TOKEN, assert_hidden

HOOK = f"https://hooks.example/zimage?token={TOKEN}"

#: Hand-made bodies that are no request: what each must be told as.
BODIES = {
    "a-list": ([HOOK, "a fox"], "a JSON array, not an object"),
    "seed-as-text": ({"prompt": "a fox", "callback_url": HOOK, "seed": "bad"}, "seed"),
    "ftp-scheme": (
        {"prompt": "a fox", "callback_url": HOOK.replace("https", "ftp")},
        "callback_url",
    ),
}


def _changed_by_hand(case: str) -> JournalRecord:
    """A create's record whose stored request was replaced by the body of *case*."""
    record = JournalRecord.for_request(
        GenerationRequest(prompt="a fox"), key="key-a-fox-0123456789", base_url="https://x.example"
    )
    return attrs.evolve(record, request_json=json.dumps(BODIES[case][0]))


@pytest.mark.parametrize("case", list(BODIES))
def test_an_unreadable_request_is_told_without_its_token(
    case: str, sentry: CapturingTransport
) -> None:
    """Rebuilding a hand-changed request names the row and the problem, never the token."""
    record = _changed_by_hand(case)  # its repr leaves the request out
    with pytest.raises(JournalError) as caught:
        record.request()
    error = caught.value
    assert "key-a-fox-0123456789" in str(error)
    assert BODIES[case][1] in str(error)
    assert "changed by hand" in str(error)
    assert_hidden(error, sentry)
