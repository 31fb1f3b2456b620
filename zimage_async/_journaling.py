"""How a :class:`Session` keeps its journal: every paid create recorded around its sending.

:class:`Bookkeeper` owns the session's :class:`Journal` (opened in ``Session.open()``,
closed in ``Session.close()``). Before a create is sent it begins the record (state
``submitting``, with the idempotency key) under the session's spend limit, so a create
over the limit raises :class:`SpendLimitError` and nothing is sent; after the answer it
records ``created`` (task id and ``credits_reserved``), ``uncertain`` or ``rejected``.
The handle it returns, a :class:`JournaledHandle`, records ``completed``, ``failed``
and ``saved`` as its waits and downloads end; so does the handle ``Session.task(id)``
returns for a task the journal holds (looked up when its first outcome is recorded).
Journal stores never block the event loop.

Only the creates made at the session's base URL are recovered: a record made at
another service is never resumed (its task id means nothing here) nor sent again (that
could bill this service for it); it stays unfinished for a session of that service.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from ._exceptions import (
    InvalidRequestError,
    JournalError,
    NoResultsError,
    SubmissionUncertainError,
    TaskFailedError,
    ZImageError,
)
from ._handle import TaskHandle
from ._journal import Journal, open_journal
from ._journal_moves import unrecorded_task
from ._journal_notes import PendingWrites, begin_priced, note_cancelled, note_refused
from ._journal_records import UNFINISHED, JournalRecord, JournalState
from ._journal_recovery import recover_unfinished
from ._journal_spend import Spend, SpendLimit
from ._models import GenerationRequest, GenerationResult, Task
from ._quoting import log_text
from ._runtime import Runtime
from ._sending import watching

__all__ = [
    "Bookkeeper",
    "JournaledHandle",
    "PendingWrites",
    "begin_priced",
    "check_max_credits",
    "note_cancelled",
    "note_refused",
]

logger = logging.getLogger("zimage_async.journal")

#: The error code a ``failed`` record gets for a task that completed without any link.
NO_RESULTS = "completed_without_results"


def check_max_credits(
    max_credits: float | None, *, journal: str | os.PathLike[str] | None, name: str
) -> float | None:
    """Return *max_credits* if usable; a limit needs a journal to count what was spent.

    A limit kept only in memory would start from zero after every restart and would not
    see what other processes spend, which is the very thing it must not forget; so a
    limit without a journal is refused rather than honoured halfway.
    """
    if max_credits is None:
        return None
    if isinstance(max_credits, bool) or not max_credits >= 0:
        raise InvalidRequestError(name, "a number of credits >= 0", f"got {max_credits!r}")
    if journal is None:
        raise InvalidRequestError(
            name,
            "a spend limit counted in a journal",
            "no journal was given; pass journal= (a file path or a postgresql:// URL) so "
            "that what was spent is remembered across restarts and processes",
        )
    return float(max_credits)


class JournaledHandle(TaskHandle):
    """A :class:`TaskHandle` whose outcome (completed, failed, saved) goes to the journal.

    Waiting again after a save leaves the record ``saved``: the store keeps a state the
    record has gone past (:func:`passed_already`).
    """

    def _journaled(self, book: Bookkeeper, key: str | None) -> JournaledHandle:
        self._book = book
        self._key = key  # None: look the task up in the journal at the first outcome
        self._looked_up = key is not None
        return self

    async def _note(self, state: JournalState, **fields: Any) -> None:
        if not self._looked_up:
            self._key = await self._book.key_of(self.id)
            self._looked_up = True
        if self._key is not None:
            await self._book.note(self._key, state, **fields)

    async def _watch(self, work: Awaitable[Any], *, saved: bool) -> Any:
        try:
            outcome = await work
        except TaskFailedError as exc:
            await self._note(JournalState.FAILED, error_code=exc.code, error_message=exc.message)
            raise
        except NoResultsError:
            await self._note(JournalState.FAILED, error_code=NO_RESULTS)
            raise
        if saved:
            paths = outcome if isinstance(outcome, list) else None  # result(): files kept
            await self._note(JournalState.SAVED, completed_at=time.time(), paths=paths)
        else:
            await self._note(JournalState.COMPLETED, completed_at=time.time())
        return outcome

    async def wait(self, *args: Any, **kwargs: Any) -> Task:
        """Wait as :meth:`TaskHandle.wait` does; record ``completed`` or ``failed``."""
        task: Task = await self._watch(super().wait(*args, **kwargs), saved=False)
        return task

    async def result(self, *args: Any, **kwargs: Any) -> GenerationResult:
        """Download as :meth:`TaskHandle.result` does; record ``saved`` (delivered)."""
        result: GenerationResult = await self._watch(super().result(*args, **kwargs), saved=True)
        return result

    async def save(self, *args: Any, **kwargs: Any) -> list[Path]:
        """Save as :meth:`TaskHandle.save` does; record ``saved`` with the paths.

        The files are flushed to the disk before the journal names them, unless the
        call says ``durable=False``.
        """
        kwargs.setdefault("durable", True)
        paths: list[Path] = await self._watch(super().save(*args, **kwargs), saved=True)
        return paths


class Bookkeeper:
    """The session's journal and spend limit; see the module docstring."""

    def __init__(
        self,
        target: str | os.PathLike[str] | Journal,
        *,
        max_credits: float | None,
        base_url: str = "",
    ) -> None:
        self._target = target
        self._max_credits = max_credits
        #: The service this session's creates go to; only its records are recovered.
        self.base_url = base_url
        self._journal: Journal | None = target if isinstance(target, Journal) else None
        self.pending = PendingWrites()
        #: Tasks made whose ``created`` write failed: task id -> (key, fields), written
        #: when the task is looked up (collected) or at the close, whichever comes first.
        self._unrecorded: dict[str, tuple[str, dict[str, Any]]] = {}

    @property
    def journal(self) -> Journal:
        """The open journal store."""
        if self._journal is None:
            raise RuntimeError("the journal is not open; open the Session first")
        return self._journal

    def limits(self, extra: Sequence[SpendLimit] = ()) -> list[SpendLimit]:
        """Return the session's limit (if any) and *extra* ones, e.g. a batch's."""
        own = [] if self._max_credits is None else [SpendLimit(max_credits=self._max_credits)]
        return own + list(extra)

    async def open(self) -> None:
        """Open the journal (creating it if needed)."""
        if self._journal is None:
            assert not isinstance(self._target, Journal)
            self._journal = await open_journal(self._target)

    async def close(self) -> None:
        """Close the journal once the writes under way are done (bounded). Idempotent."""
        if self._journal is not None:
            await self.pending.settle()
            for task_id, (key, fields) in list(self._unrecorded.items()):
                await self._record_late(key, task_id, fields)
            await self._journal.close()

    async def _record_late(self, key: str, task_id: str, fields: dict[str, Any]) -> None:
        """Try once more to record a task made earlier whose ``created`` write failed."""
        try:
            await self._created(key, task_id, **fields)
        except JournalError as exc:  # its error named the task when it was made
            logger.warning("%s", log_text(exc))

    async def note(self, key: str, state: JournalState, **fields: Any) -> None:
        """Record the create under *key* as now in *state* (fields as in ``update``)."""
        await self.journal.update(key, state, **fields)

    async def outgoing(
        self,
        request: GenerationRequest,
        *,
        key: str,
        sent: GenerationRequest,
        resending: bool = False,
        cost: float | None = None,
        batch_id: str | None = None,
        item_index: int | None = None,
    ) -> JournalRecord:
        """Return the record to begin before sending *request* under *key*.

        The record holds *sent*, the request as it goes out (:meth:`JournalRecord.to_send`).
        But a resend (*resending*) of the create this journal holds under *key* for
        *request* (as asked or as sent, :meth:`JournalRecord.sends`) records and sends
        the body that create was sent with, unchanged, whatever this session's callback
        URL, or none.
        """
        recorded = await self.journal.get(key) if resending else None
        return JournalRecord.to_send(
            request,
            key=key,
            base_url=self.base_url,
            expected_cost=cost,
            batch_id=batch_id,
            item_index=item_index,
            sent=sent,
            resent=recorded if recorded is not None and recorded.sends(request) else None,
        )

    async def create_from(
        self,
        record: JournalRecord,
        *,
        send: Callable[[], Awaitable[TaskHandle]],
        limits: Sequence[SpendLimit] = (),
        worker_id: str | None = None,
        resending: bool = False,
    ) -> TaskHandle:
        """Begin *record*, run *send* (the create of ``record.request()``), record its answer.

        Raises :class:`SpendLimitError` before sending when the create would go over a
        limit, and :class:`JournalError` when *worker_id* no longer holds the batch
        item's lease; re-raises whatever *send* raises once the record says what it
        means. With *resending* (the key's earlier send may have made a task) a refusal
        leaves the create ``uncertain``, raised as :func:`refused_resend` says.
        """
        key = record.key
        try:
            await begin_priced(
                self.journal, record, limits=self.limits(limits), worker_id=worker_id
            )
        except asyncio.CancelledError as exc:  # its entry may be written all the same
            await self.pending.shield(self._unbegun(key, resending=resending, error=exc))
            raise
        with watching() as (mark, _):
            try:
                handle = await send()
            except SubmissionUncertainError as exc:
                if exc.task_id is not None:
                    await self._created(key, exc.task_id)
                else:
                    await self.note(key, JournalState.UNCERTAIN, error_message=str(exc))
                raise
            except ZImageError as exc:
                body = record.request()  # as sent: a resubmit of the error sends it again
                error = await note_refused(self.note, key, body, exc, resending=resending)
                if error is exc:
                    raise
                raise error from exc
            except (asyncio.CancelledError, Exception) as exc:  # cancelled, closed: unanswered
                sent = mark.sent or resending
                await note_cancelled(self.note, key, self.pending, sent=sent, error=exc)
                raise
        usage = handle.task.usage if handle.task is not None else None
        reserved = None if usage is None else usage.credits_reserved
        await self._created(key, handle.id, credits_reserved=reserved)
        return handle

    async def _unbegun(self, key: str, *, resending: bool, error: BaseException) -> None:
        """Record the create under *key*, cancelled while its entry was being written.

        The journal's write goes on (in its thread, at the server) when the caller is
        cancelled: an entry it left ``submitting`` says "maybe sent" of a create that was
        not sent (``rejected`` then; ``uncertain`` again for a resend). No entry: nothing.
        """
        try:
            stored = await self.journal.get(key)
        except JournalError:  # unreadable now: the entry, if any, stays as written
            return
        if stored is not None and stored.state is JournalState.SUBMITTING:
            await note_cancelled(self.note, key, self.pending, sent=resending, error=error)

    async def _created(self, key: str, task_id: str, **fields: Any) -> None:
        """Record *task_id* as made under *key*; a failure names the billed task.

        After a failure the write is tried again when the task is looked up
        (:meth:`key_of`: collecting it as the error advises) or when the session closes.
        """
        try:
            await self.note(key, JournalState.CREATED, task_id=task_id, **fields)
        except JournalError as exc:
            self._unrecorded[task_id] = (key, fields)
            error = JournalError(unrecorded_task(exc, task_id, key))
            error.task_id = task_id
            raise error from exc
        self._unrecorded.pop(task_id, None)

    def handle(
        self,
        runtime: Runtime,
        task_id: str,
        task: Task | None,
        request: GenerationRequest | None,
        *,
        key: str | None,
        expects_callback: bool,
    ) -> JournaledHandle:
        """Return a handle for *task_id* that records its outcome under *key*.

        With *key* None, the outcome is recorded under the key of the journal's
        unfinished record of *task_id* (made at this base URL), if there is one, else
        nowhere.
        """
        handle = JournaledHandle(runtime, task_id, task, request, expects_callback=expects_callback)
        return handle._journaled(self, key)

    async def key_of(self, task_id: str) -> str | None:
        """Return the key of the unfinished record of *task_id* made here, or None.

        A record already delivered, failed or expired is left as it is: looking at its
        task again must not make it unfinished. A task made here whose id could not be
        recorded then is recorded now, under its key.
        """
        if task_id in self._unrecorded:
            key, fields = self._unrecorded[task_id]
            await self._created(key, task_id, **fields)
            return key
        records = await self.journal.records(task_id=task_id, states=UNFINISHED)
        mine = [record for record in records if record.base_url == self.base_url]
        return mine[-1].key if mine else None

    async def recover(
        self,
        *,
        link_ttl: float,
        resume: Callable[[JournalRecord], TaskHandle],
        resend: Callable[[JournalRecord], Awaitable[TaskHandle]] | None,
    ) -> list[TaskHandle]:
        """Return a handle for each unfinished create made at this base URL.

        *resume* those with a task id, *resend* (if given) those without one, except a
        batch item a worker holds a live lease on (it is left to its batch) and a
        create another session may still be sending (:func:`in_flight`, logged): a resend
        the service refuses, or whose answer is uncertain again, is recorded as such
        and logged, and the others go on. A completed task whose links have expired is
        settled as ``expired`` and logged (a warning): its images are lost.
        """
        return await recover_unfinished(self, link_ttl=link_ttl, resume=resume, resend=resend)

    async def sent_before(self, key: str) -> bool:
        """Whether an earlier send under *key* may have made a task (no id recorded yet)."""
        record = await self.journal.get(key)
        return record is not None and record.state in (
            JournalState.SUBMITTING,
            JournalState.UNCERTAIN,
        )

    async def unfinished(self, *, batch_id: str | None = None) -> list[JournalRecord]:
        """Return the creates made (or maybe made) and not yet delivered, oldest first."""
        return await self.journal.unfinished(batch_id=batch_id)

    async def spent(self, *, batch_id: str | None = None) -> Spend:
        """Return what the journal (or one batch) has reserved."""
        return await self.journal.spent(batch_id=batch_id)
