"""One batch item from claim to outcome: :class:`ItemRunner`.

The batch engine (:mod:`._batch`) claims items from the journal and hands each to
:meth:`ItemRunner.run`, which decides with :func:`resume_action` what the item needs
(submit it, resend it with its original key, wait for its task by id, or report it),
does it, and records every change in the journal before going on: the create is begun
(``submitting``, under the spend limits, only while this worker holds the item's lease)
before it is sent, and its task id is committed before the wait for it begins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ._batchitems import NO_RESULTS, BatchItem, BatchServices, ItemState, key_stop
from ._batchjournal import note_created, note_held, recorded_meanwhile
from ._batchoptions import BatchOptions
from ._batchplan import ItemPlanner
from ._batchverdicts import (
    elsewhere_message,
    foreign_message,
    list_differs,
    recorded,
    refused_for_estimates,
    unsent_resend,
)
from ._exceptions import (
    AuthenticationError,
    JournalError,
    LeaseLostError,
    NoResultsError,
    PermissionDeniedError,
    SpendLimitError,
    SubmissionUncertainError,
    TaskFailedError,
    WaitTimeoutError,
    ZImageError,
)
from ._handle import TaskHandle
from ._journal_records import JournalItem, JournalRecord, JournalState, ResumeAction
from ._journal_spend import SpendLimit
from ._journal_store import Journal
from ._journaling import PendingWrites, begin_priced, note_cancelled, note_refused
from ._models import GenerationRequest, TaskStatus
from ._runtime import Allowance, restated
from ._sending import handed_over, watching

__all__ = ["CREATE_GRACE", "ItemRunner"]

logger = logging.getLogger("zimage_async.batch")

#: Seconds a create call already under way may still take after cancellation, so that
#: the task it made is recorded (and resumed later) rather than lost and paid again.
CREATE_GRACE = 10.0


class NotSentError(Exception):
    """The item's create was refused before sending (a spend limit, a stopped batch)."""


class ItemRunner(ItemPlanner):
    """Runs claimed items of one batch for one worker; see the module docstring."""

    def __init__(
        self,
        journal: Journal,
        services: BatchServices,
        requests: Sequence[GenerationRequest],
        options: BatchOptions,
        limits: Sequence[SpendLimit],
    ) -> None:
        super().__init__(services, requests, options)
        self.journal = journal
        self.limits = list(limits)
        self.states = [ItemState.QUEUED] * len(requests)
        self.counts: Counter[str] = Counter()
        self.stopped_by: ZImageError | None = None
        #: The tasks of the items this worker made or resumed, by index, until the
        #: consumer takes their outcomes: those a batch ended by an error names.
        self.tasks: dict[int, str] = {}
        self._begun: set[str] = set()
        #: The creates this worker has begun and not yet recorded the answer of, by key,
        #: with the cost the journal counts them at meanwhile (their estimate).
        self._flying: dict[str, float] = {}
        #: Set (and replaced) whenever one of those answers is recorded.
        self._answered = asyncio.Event()
        #: The journal writes that must end before the batch gives its journal back.
        self.pending = PendingWrites()

    async def run(self, item: JournalItem) -> BatchItem | None:
        """Bring *item* to its outcome; None if another worker holds it now.

        Raises :class:`JournalError` (having given the item back, unsent) when the
        journal holds another request for the item than this worker's list: a run with
        an edited list changed it after this worker started.
        """
        index, record = item.index, item.record
        request = self.requests[index]
        if item.fingerprint != self.fingerprints[index]:
            await self._give_back_changed(index)
        self.counts["claimed"] += 1
        if record is not None and record.state.unfinished and record.key not in self._begun:
            self.counts["taken_over"] += 1
            # A warning only when its holder's lease ran out (it died or stalled): an item
            # given back in order (a worker that stopped) is resumed as a matter of course.
            logger.log(
                logging.INFO if item.taken_from is None else logging.WARNING,
                "%s item %d of batch %r: its create is %s (task %s, key %s%s)",
                "resuming" if item.taken_from is None else "taking over",
                index,
                item.batch_id,
                record.state.value,
                record.task_id or "unknown",
                record.key,
                "" if item.taken_from is None else f"; the lease of {item.taken_from} ran out",
            )
        action = self.action(record, taking_over=True, index=index)
        reported = None if record is None else self.report(record, action, index)
        if reported is not None:
            return reported
        if record is not None and self.foreign(record, index):
            logger.warning("%s", foreign_message(record, index))
        if record is not None and self.elsewhere(record, action):
            # Begun by a worker on another service meanwhile: only that service may have
            # its task. Settled with the refusal; a run there reopens and resumes it.
            return BatchItem(
                index=index,
                request=request,
                task_id=record.task_id,
                error=JournalError(elsewhere_message(record, self.services.base_url)),
                resumed=True,
            )
        resumed = action is ResumeAction.WAIT
        task_id = record.task_id if resumed and record is not None else None
        try:
            if resumed:
                assert record is not None
                assert record.task_id is not None
                self.counts["resumed"] += 1
                self.tasks[index] = record.task_id
                handle = self.services.task(record.task_id, request=request)
                key = record.key
            else:
                # Wait out a 429 pause before beginning the create, so a cancellation during
                # the pause does not leave the item looking possibly billed.
                await self.services.gate_wait()
                if self.stopped_by is not None:  # nothing is sent after a stop
                    return self.held_back(index, record, action)
                key = item.key
                if action is ResumeAction.SUBMIT_NEW:
                    rekeyed = await self.journal.rekey(item.batch_id, self.options.worker_id, index)
                    if rekeyed is None:
                        return None
                    key = rekeyed
                handle = await self._submit(index, key, action, record)
            task_id = handle.id
            return await self._finish(index, handle, key, record if resumed else None, resumed)
        except NotSentError:
            return self.not_sent(index)
        except LeaseLostError:
            logger.info("item %d: lease lost to another worker; left to it", index)
            return None
        except ZImageError as exc:
            if isinstance(exc, JournalError) and task_id is not None:  # committed already
                raise recorded(exc, task_id, index) from exc
            if isinstance(exc, JournalError):
                raise
            if isinstance(exc, WaitTimeoutError):  # of what was left: say the item's limit
                exc = restated(exc, self.options.timeout)
            return BatchItem(
                index=index, request=request, task_id=task_id, error=exc, resumed=resumed
            )

    def not_sent(self, index: int) -> BatchItem:
        """Return the outcome of an item left unsent because the batch was stopped."""
        assert self.stopped_by is not None
        return BatchItem(
            index=index, request=self.requests[index], error=self.stopped_by, sent=False
        )

    def held_back(
        self, index: int, record: JournalRecord | None, action: ResumeAction
    ) -> BatchItem:
        """Return the outcome of an item held back by a stop: uncertain if sent before."""
        assert self.stopped_by is not None
        if action is not ResumeAction.RESUBMIT or record is None:
            return self.not_sent(index)
        request = self.requests[index]
        error = unsent_resend(record, record.request(), self.stopped_by)  # as it was sent
        return BatchItem(index=index, request=request, error=error, resumed=True)

    def _stop(self, error: ZImageError | None) -> None:
        if self.stopped_by is None:
            self.stopped_by = error

    async def _changed(self, index: int) -> bool:
        """Whether the journal holds another request for item *index* now (False if unread)."""
        with contextlib.suppress(ZImageError):
            items = await self.journal.items(self.options.batch_id)
            return any(
                i.index == index and i.fingerprint != self.fingerprints[index] for i in items
            )
        return False

    async def _give_back_changed(self, index: int) -> None:
        """Give item *index* back unsent and stop: the journal holds another request for it."""
        batch_id, worker_id = self.options.batch_id, self.options.worker_id
        await self.journal.release(batch_id, worker_id, index, settled=False)
        raise list_differs(batch_id, index)

    async def _begin(self, record: JournalRecord, limits: Sequence[SpendLimit]) -> None:
        """Begin *record*'s create under *limits*, as this worker, before it is sent.

        A spend refusal that only the estimates of this worker's creates in flight cause
        (:func:`refused_for_estimates`) waits for one of their answers, which brings its
        real price, and the create is checked again; the refusal is final (raised) when
        the create would go over a limit even if those cost nothing, or with none in
        flight. Raises :class:`NotSentError` if the batch was stopped meanwhile.
        """
        while True:
            answered = self._answered
            try:
                begun = await begin_priced(
                    self.journal, record, limits=limits, worker_id=self.options.worker_id
                )
            except SpendLimitError as exc:
                if self._answered is not answered:  # an answer was recorded meanwhile
                    continue
                if not refused_for_estimates(exc, sum(self._flying.values())):
                    raise
                await answered.wait()
                if self.stopped_by is not None:
                    raise NotSentError from exc
                continue
            self._flying[record.key] = begun.expected_cost or 0.0
            return

    def _landed(self, key: str) -> None:
        """Note that the answer of the create under *key* is recorded (or never will be)."""
        self._flying.pop(key, None)
        answered, self._answered = self._answered, asyncio.Event()
        answered.set()

    async def _note(self, key: str, state: JournalState, **fields: Any) -> None:
        await note_held(self.journal, key, state, worker_id=self.options.worker_id, **fields)

    async def _submit(
        self, index: int, key: str, action: ResumeAction, earlier: JournalRecord | None
    ) -> TaskHandle:
        request, options, book = self.requests[index], self.options, self.services.book
        resent = earlier if action is ResumeAction.RESUBMIT else None  # sent as it was
        self.states[index] = ItemState.SUBMITTING
        record = self.services.record_create(request, key, index, options, resent)
        limits = self.limits if book is None else book.limits(self.limits)
        try:
            await self._begin(record, limits)
        except SpendLimitError as exc:  # nothing was sent: the item is not sent
            self._stop(exc)
            raise NotSentError from exc
        except LeaseLostError:
            raise
        except JournalError:
            await recorded_meanwhile(
                self.journal, options.batch_id, options.worker_id, index=index, key=key
            )
            if await self._changed(index):  # since its claim: its key was replaced too
                await self._give_back_changed(index)
            raise
        self._begun.add(key)
        with watching() as (mark, _):  # the task made here copies the mark with its context
            creating = asyncio.ensure_future(self._create(index, record, resent is not None))
        creating.add_done_callback(lambda _: self._landed(key))
        try:
            return await asyncio.shield(creating)
        except asyncio.CancelledError:
            # A POST with the HTTP client may be at the service: learn its task, which a rerun
            # then resumes. One queued for a connection or out a 429 pause is dropped now.
            if mark.flying:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(creating, CREATE_GRACE)
            if not creating.done():
                creating.cancel()
                with contextlib.suppress(BaseException):
                    await creating
            elif not creating.cancelled() and isinstance(
                failed := creating.exception(), JournalError
            ):
                raise failed from None  # its task, if billed, must be named
            raise

    async def _create(self, index: int, record: JournalRecord, resending: bool) -> TaskHandle:
        """Send the create (once more with the same key after an uncertain answer, if asked).

        *resending*: an earlier send under its key may have made a task, so a refusal of
        this one does not show that none was made: the create stays uncertain.
        """
        key, request = record.key, record.request()  # as sent: its error names the body
        attempts = 2 if self.options.resubmit_uncertain else 1
        for attempt in range(attempts):
            self.counts["submitted"] += 1
            try:
                handle = await self.services.send_recorded(record)
            except SubmissionUncertainError as exc:
                if exc.task_id is not None:
                    await self._created(index, key, exc.task_id)
                    return self.services.task(exc.task_id, request=request)
                if (stop := key_stop(exc)) is None and attempt + 1 < attempts:
                    logger.info(
                        "item %d: create uncertain; sending it again with key %s", index, key
                    )
                    resending = True
                    continue
                await self._note(key, JournalState.UNCERTAIN, error_message=str(exc))
                self._stop(stop)
                raise
            except (AuthenticationError, PermissionDeniedError) as exc:
                state = JournalState.UNCERTAIN if resending else JournalState.REJECTED
                await self._note(key, state, error_code=type(exc).__name__)
                self._stop(stopped := key_stop(exc))
                raise stopped from exc
            except ZImageError as exc:  # this send certainly made no task
                error = await note_refused(self._note, key, request, exc, resending=resending)
                if error is exc:
                    raise
                raise error from exc
            except (asyncio.CancelledError, Exception) as exc:  # cancelled, closed: unanswered
                sent = handed_over() or resending
                await note_cancelled(self._note, key, self.pending, sent=sent, error=exc)
                raise
            usage = handle.task.usage if handle.task is not None else None
            reserved = None if usage is None else usage.credits_reserved
            await self._created(index, key, handle.id, credits_reserved=reserved)
            return handle
        raise AssertionError("unreachable")  # pragma: no cover

    async def _created(self, index: int, key: str, task_id: str, **fields: Any) -> None:
        worker_id = self.options.worker_id
        await note_created(self.journal, key, task_id, worker_id=worker_id, index=index, **fields)
        self.tasks[index] = task_id

    async def _finish(
        self,
        index: int,
        handle: TaskHandle,
        key: str,
        earlier: JournalRecord | None,
        resumed: bool,
    ) -> BatchItem:
        request = self.requests[index]
        allowed = Allowance(self.options.timeout)  # the wait and the download together
        self.states[index] = ItemState.PENDING
        async with contextlib.aclosing(handle.updates(timeout=allowed.left())) as updates:
            async for snapshot in updates:
                if snapshot.status is TaskStatus.PROCESSING:
                    self.states[index] = ItemState.PROCESSING
        try:
            await handle.wait(timeout=allowed.left())
        except TaskFailedError as exc:
            await self._note(
                key, JournalState.FAILED, error_code=exc.code, error_message=exc.message
            )
            raise
        except NoResultsError:
            await self._note(key, JournalState.FAILED, error_code=NO_RESULTS)
            raise
        completed_at = earlier.completed_at if earlier is not None else None
        if completed_at is None:
            completed_at = time.time()
            await self._note(key, JournalState.COMPLETED, completed_at=completed_at)
        self.states[index] = ItemState.DOWNLOADING
        output_dir = self.options.output_dir
        if output_dir is None:
            result = await handle.result(timeout=allowed.left())
            await self._note(key, JournalState.SAVED)
            return BatchItem(
                index=index, request=request, task_id=handle.id, result=result, resumed=resumed
            )
        numbers = self.options.numbers
        number = numbers[index] if numbers is not None else index + 1
        paths = await handle.save(  # durable: the journal then says they are saved
            output_dir,
            name=self.options.name,
            number=number,
            timeout=allowed.left(),
            durable=True,
            overwrite=False,  # a file already there is kept: same bytes count as saved
        )
        await self._note(key, JournalState.SAVED, paths=paths)
        return BatchItem(
            index=index, request=request, task_id=handle.id, paths=tuple(paths), resumed=resumed
        )
