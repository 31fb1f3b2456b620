"""What a batch worker does with an item, decided from its journal record: :class:`ItemPlanner`.

The base of :class:`._batchrun.ItemRunner`, which does what is decided here: at the
worker's start (:meth:`ItemPlanner.plan_settled`) the items settled earlier are
reported or reopened, and on each claim (:meth:`ItemPlanner.action`) the resume table
(:func:`resume_action`) says whether the item is sent, resent with its key, waited
for by its task id, or reported. No I/O but looking for saved files.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from ._batchitems import BatchItem, BatchServices
from ._batchoptions import BatchOptions
from ._batchverdicts import SENDS_OR_WAITS, USES_TASK, files_present, journal_outcome
from ._journal_records import JournalItem, JournalRecord, JournalState, ResumeAction, resume_action
from ._manifest import fingerprint
from ._models import GenerationRequest

__all__ = ["ItemPlanner"]


class ItemPlanner:
    """Decides what one worker does with the items of its batch; see the module docstring."""

    def __init__(
        self,
        services: BatchServices,
        requests: Sequence[GenerationRequest],
        options: BatchOptions,
    ) -> None:
        self.services = services
        self.requests = requests
        self.options = options
        #: Each request's fingerprint, as the journal keeps it for the item and its create.
        self.fingerprints = [fingerprint(request) for request in requests]
        #: The keys of the creates found failed at this worker's start, settled or not (a
        #: kill before the release): resubmit_failed sends those again, not later failures.
        self._failed_before: set[str] = set()

    def foreign(self, record: JournalRecord, index: int) -> bool:
        """Whether *record*, the create under item *index*'s key, was made for another request.

        A worker of an earlier version, still running a list the item was edited in
        since, sent its own request under the edited item's key: that task is not the
        item's, and the item's request was never sent.
        """
        return record.fingerprint != self.fingerprints[index]

    def action(
        self, record: JournalRecord | None, *, taking_over: bool, index: int
    ) -> ResumeAction:
        """Return what to do with item *index*, whose create is *record*, on claim or at start.

        Only a failure of an earlier run is sent again (resubmit_failed): one recorded
        while this worker runs, by itself or by a live worker it takes the item from, is
        reported, as that worker would have. A create made for another request
        (:meth:`foreign`) is none of the item's: the item is sent under a new key.
        """
        if record is not None and self.foreign(record, index):
            return ResumeAction.SUBMIT_NEW
        options = self.options
        failed_before = record is not None and record.key in self._failed_before
        action = resume_action(
            record,
            now=time.time(),
            link_ttl=self.services.link_ttl,
            resubmit_uncertain=options.resubmit_uncertain,
            resubmit_failed=options.resubmit_failed and failed_before,
            resubmit_expired=options.resubmit_expired,
            resend_submitting=taking_over,
            files_present=record is not None and files_present(record, options.output_dir),
        )
        if (
            record is not None
            and options.forget_elsewhere
            and record.base_url != self.services.base_url
            and action in USES_TASK
        ):
            return ResumeAction.SUBMIT_NEW
        return action

    def report(self, record: JournalRecord, action: ResumeAction, index: int) -> BatchItem | None:
        """Return the outcome of an item reported from the journal, or None if it needs work."""
        return journal_outcome(
            record, action, index, self.requests[index], link_ttl=self.services.link_ttl
        )

    def plan_settled(
        self, items: Sequence[JournalItem]
    ) -> tuple[list[BatchItem], list[int], list[int]]:
        """Sort a batch's items at a worker's start, before anything is sent.

        Returns the outcomes of settled items that need nothing more (reported from the
        journal), the indexes of settled items that need work again (a file deleted, a
        resubmission asked for, a create refused at another base URL: to reopen), and
        the indexes of items whose create would be sent again or waited for, but was
        made at another base URL. The creates found failed, settled or not, are the
        failures of an earlier run: those that resubmit_failed sends again. A settled
        item whose create was made for another request (:meth:`foreign`) is reopened,
        never reported with that create's task.
        """
        reported, reopen, elsewhere = [], [], []
        for item in items:
            record = item.record
            if record is None:
                continue
            if record.state is JournalState.FAILED:
                self._failed_before.add(record.key)
            if item.settled:
                action = self.action(record, taking_over=False, index=item.index)
                outcome = None
                if record.state is not JournalState.SUBMITTING:
                    outcome = self.report(record, action, item.index)
                if outcome is not None:
                    reported.append(outcome)
                    continue
                reopen.append(item.index)
            if self.elsewhere(record, self.action(record, taking_over=True, index=item.index)):
                elsewhere.append(item.index)
        return reported, reopen, elsewhere

    def elsewhere(self, record: JournalRecord, action: ResumeAction) -> bool:
        """Whether *action* would send or wait for *record*'s create at another service."""
        return action in SENDS_OR_WAITS and record.base_url != self.services.base_url
