"""An item left uncertain is reported without guessing who sent its create.

A batch shared by several workers (one journal) reports an uncertain item that another
worker's create left so, as a rerun reports one of its own earlier run: the message must
not say it was "an earlier run" when it may have been a worker running right now.
"""

from __future__ import annotations

from zimage_async import GenerationRequest, SubmissionUncertainError
from zimage_async._batchitems import reported_error
from zimage_async._journal_records import JournalRecord, ResumeAction


def test_an_uncertain_item_names_an_earlier_run_or_another_worker() -> None:
    """The report says the create was an earlier one, by a run or a worker of the batch."""
    row = JournalRecord.for_request(
        GenerationRequest(prompt="a cat"),
        key="key-a-cat-0123456789",
        base_url="https://api.example",
        batch_id="nightly",
        item_index=0,
    )
    error = reported_error(ResumeAction.REPORT_UNCERTAIN, row, link_ttl=86400.0)
    assert isinstance(error, SubmissionUncertainError)
    text = str(error)
    assert "an earlier run's create" not in text
    assert "another worker of this batch" in text
    assert "original idempotency key" in text
