"""What a batch rerun does with each item, as a pure table over its manifest row.

The batch engine (:mod:`zimage_async._batch`) asks :func:`plan_resume` once per item
before it sends anything; the answer depends only on the row the manifest kept, the
time, the links' lifetime and the rerun's options, so tests check every row of the
table without a server.

==========================================  =========================================
the item was                                the rerun
==========================================  =========================================
not in the manifest, or refused             ``SUBMIT`` (with its stored key, if any)
saved, every file present                   ``REPORT_SAVED``, sends nothing
failed                                      ``REPORT_FAILED``; ``SUBMIT_NEW`` (a new
                                            key) when resubmitting failed items
uncertain or cut off while submitting       ``REPORT_UNCERTAIN``; ``SUBMIT`` (same key)
                                            when resubmitting uncertain items
completed (or saved, files gone), links     ``REPORT_EXPIRED``; ``SUBMIT_NEW`` when
past their lifetime                         resubmitting expired items
any other with a task id                    ``RESUME``: poll it, download, save
==========================================  =========================================
"""

from __future__ import annotations

import enum

from ._manifest import ManifestRow, RowState

__all__ = ["Resume", "plan_resume"]


class Resume(enum.Enum):
    """What the rerun does with one item."""

    SUBMIT = "submit"
    #: Send a new create under a new key: the item's task failed or its links expired.
    SUBMIT_NEW = "submit new"
    RESUME = "resume"
    REPORT_SAVED = "report saved"
    REPORT_FAILED = "report failed"
    REPORT_UNCERTAIN = "report uncertain"
    REPORT_EXPIRED = "report expired"


def plan_resume(
    row: ManifestRow | None,
    *,
    files_present: bool,
    now: float,
    link_ttl: float,
    resubmit_uncertain: bool,
    resubmit_failed: bool,
    resubmit_expired: bool = False,
) -> Resume:
    """Decide what a rerun does with the item *row* describes (None: a new item).

    *files_present* says whether every path of a saved row still exists; *now* is the
    Unix time, against which a completed row's links (valid *link_ttl* seconds after
    ``completed_at``) are judged.

    >>> plan_resume(None, files_present=False, now=0, link_ttl=1,
    ...             resubmit_uncertain=False, resubmit_failed=False)
    <Resume.SUBMIT: 'submit'>
    """
    if row is None or row.state is RowState.REJECTED:
        return Resume.SUBMIT
    if row.state is RowState.SAVED and row.paths and files_present:
        return Resume.REPORT_SAVED
    if row.state is RowState.FAILED:
        return Resume.SUBMIT_NEW if resubmit_failed else Resume.REPORT_FAILED
    if row.task_id is None:  # submitting or uncertain: a task may exist, id unknown
        return Resume.SUBMIT if resubmit_uncertain else Resume.REPORT_UNCERTAIN
    if row.completed_at is not None and now > row.completed_at + link_ttl:
        return Resume.SUBMIT_NEW if resubmit_expired else Resume.REPORT_EXPIRED
    return Resume.RESUME
