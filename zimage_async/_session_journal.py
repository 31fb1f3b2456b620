"""The journal's part of :class:`Session`: sending creates through it, and recovery.

:class:`JournalMethods` is a base of :class:`Session`; the journal itself is kept by
:class:`._journaling.Bookkeeper`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from ._batchoptions import check_batch_id, check_flag
from ._callback_url import building_for
from ._exceptions import InvalidRequestError, SubmissionUncertainError, ZImageError
from ._handle import TaskHandle
from ._idempotency import new_key, validate_idempotency_key
from ._journal_records import JournalRecord
from ._journal_spend import Spend
from ._journaling import Bookkeeper
from ._models import GenerationRequest, Task
from ._outcome import refused_resend
from ._quoting import a_type
from ._runtime import Runtime

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._journal_spend import SpendLimit

__all__ = ["JournalMethods"]

_RESUBMIT_RULE = "a SubmissionUncertainError raised by Session.submit"


class JournalMethods:
    """What a Session with ``journal=`` can tell and resume; mixed into Session."""

    _book: Bookkeeper | None
    _runtime: Runtime
    _callback_url: str | None
    _check_open: Callable[[], None]
    _base_url: str
    task: Callable[..., TaskHandle]

    async def _send(
        self,
        request: GenerationRequest,
        key: str | None,
        *,
        cost: float | None = None,
        limits: Sequence[SpendLimit] = (),
        batch_id: str | None = None,
        item_index: int | None = None,
        resending: bool = False,
    ) -> TaskHandle:
        """Send the create, through the journal if there is one.

        A first send goes out with this session's callback URL when *request* names
        none, and is journaled so. *resending*: *key*'s earlier send may have made a
        task, so the create goes out as that send sent it (the body the journal holds
        under *key*, else *request* as it is, never with this session's callback URL
        added: a gateway that honours keys answers another body by 409), and a refusal
        leaves it uncertain (:func:`refused_resend`), never certainly not made.
        """
        if self._book is None:
            try:
                return await self._create(request if resending else self._outgoing(request), key)
            except SubmissionUncertainError:
                raise
            except ZImageError as exc:
                if not resending or key is None:
                    raise
                raise refused_resend(exc, key=key, request=request) from exc
        if key is not None and batch_id is None and not resending:  # a key of the caller's
            resending = await self._book.sent_before(key)
        sent_key = key or new_key()
        record = await self._book.outgoing(
            request,
            key=sent_key,
            sent=request if resending else self._outgoing(request),
            resending=resending,
            cost=cost,
            batch_id=batch_id,
            item_index=item_index,
        )
        body = record.request()  # the body recorded is the body sent
        # The journaled handle is the only one made for the task: it takes the create's
        # task span (a second handle would start another and leave that one open).
        made: list[TaskHandle] = []

        async def send() -> TaskHandle:
            task = await self._runtime.api.create(body, idempotency_key=sent_key)
            made.append(self._journaled(task.id, task, body, sent_key))
            return made[0]

        try:
            return await self._book.create_from(
                record, send=send, limits=limits, resending=resending
            )
        except BaseException as exc:  # made, then not recorded: no one will wait for it
            if made:
                made[0]._span.stop(exc)
            raise

    def _outgoing(self, request: GenerationRequest) -> GenerationRequest:
        """Return *request* as a first send sends it: with this session's URL if it names none."""
        if request.callback_url is not None or self._callback_url is None:
            return request
        with building_for(self._base_url):  # the URL was checked by this session's rule
            return attrs.evolve(request, callback_url=self._callback_url)

    def _expects_callback(self, request: GenerationRequest) -> bool:
        """Whether the task of *request* (as sent) calls back this session's own receiver."""
        return self._callback_url is not None and request.callback_url == self._callback_url

    async def _create(self, request: GenerationRequest, key: str | None) -> TaskHandle:
        """Send *request* exactly as given under *key* (a batch's send); nothing journaled.

        A first send passes :meth:`_outgoing` first, so that the session's callback URL
        goes with it; a resend sends the body as it was first sent.
        """
        task = await self._runtime.api.create(request, idempotency_key=key)
        expects = self._expects_callback(request)
        return TaskHandle(self._runtime, task.id, task, request, expects_callback=expects)

    async def resubmit(self, error: SubmissionUncertainError) -> TaskHandle:
        """Send an uncertain create again, with its original ``Idempotency-Key``.

        Where the gateway honours keys, this returns the task the first attempt made
        (if it made one) instead of billing a second; where it ignores them, it is a new
        billed task, so check your usage first. The create goes out exactly as it was
        first sent (``error.request``, or the body the journal recorded under the key),
        with the callback URL it was sent with or without one, whatever this session's
        ``callback_url``: a gateway answers a key sent with another body with 409.
        When the error names a task id, that task is resumed instead and nothing is sent.
        A refusal of the resend (quota, key: the gateway may refuse before it looks the
        key up) does not show that no task was made: it raises
        :class:`SubmissionUncertainError` again, with ``resent`` true and the key::

            try:
                handle = await zs.submit("a fox")
            except SubmissionUncertainError as exc:
                handle = await zs.resubmit(exc)

        .. versionadded:: 0.1.0
        """
        if not isinstance(error, SubmissionUncertainError):
            raise InvalidRequestError("error", _RESUBMIT_RULE, f"got {a_type(error)}")
        if error.task_id is not None:
            return self.task(error.task_id)
        if not isinstance(error.request, GenerationRequest) or error.idempotency_key is None:
            raise InvalidRequestError(
                "error",
                "a SubmissionUncertainError raised by Session.submit, which carries its "
                "request and idempotency key",
                "this one has no request or key to send again",
            )
        self._check_open()
        key = validate_idempotency_key(error.idempotency_key)
        return await self._send(error.request, key, resending=True)

    def _journaled(
        self,
        task_id: str,
        task: Task | None,
        request: GenerationRequest | None,
        key: str,
        *,
        recovered: bool = False,
    ) -> TaskHandle:
        assert self._book is not None
        # A recovered task may have been made without this session's callback URL: it is
        # not known whether a callback will come, so it polls at the normal pace. So does
        # a task whose callback goes to another URL than this session's receiver's.
        expects = not recovered and request is not None and self._expects_callback(request)
        return self._book.handle(
            self._runtime, task_id, task, request, key=key, expects_callback=expects
        )

    def _bookkeeper(self) -> Bookkeeper:
        self._check_open()
        if self._book is None:
            raise InvalidRequestError(
                "journal", "a Session opened with journal=", "this Session keeps no journal"
            )
        return self._book

    async def unfinished(self, *, batch_id: str | None = None) -> list[JournalRecord]:
        """List the journal's creates made (or maybe made) and not yet delivered.

        Every service's records are listed: check ``record.base_url`` (only this
        session's are recovered by :meth:`recover`).

        ``submitting`` and ``uncertain`` records carry their idempotency keys (a task may
        exist, its id unknown); ``created`` and ``completed`` ones their task ids.
        """
        return await self._bookkeeper().unfinished(batch_id=_batch_id(batch_id))

    async def spent(self, *, batch_id: str | None = None) -> Spend:
        """Return what the journal (or one batch) counts as reserved, uncertain included."""
        return await self._bookkeeper().spent(batch_id=_batch_id(batch_id))

    async def recover(self, *, resubmit_uncertain: bool = False) -> list[TaskHandle]:
        """Return handles for the unfinished creates, to wait for and save.

        Only the creates made at this session's :attr:`base_url` are recovered; those
        of another service are left alone (still listed by :meth:`unfinished`, whose
        records carry their ``base_url``), for a session of that service to recover.

        A create with a task id is resumed by that id (nothing is sent). One whose task
        id is unknown (``submitting``, ``uncertain``) is sent again only with
        *resubmit_uncertain*, and then with its original idempotency key, its batch and
        item index and its expected cost (so a batch's spend limit still counts it);
        otherwise it is left in :meth:`unfinished`. A batch item that a running worker
        holds (its lease has not run out) is not sent: it is left to its batch. Nor is a
        ``submitting`` create begun less than 30 minutes ago (longer than a create can
        take): another session may still be sending it, and a resend could bill twice.
        A resend that fails stays ``uncertain`` under its key (a refusal too: the gateway
        may refuse before it looks the key up) and is logged as a warning, and the
        others go on. A completed task
        whose image links have expired gets no handle: it is recorded as ``expired``
        (no longer unfinished, still counted as spent) and logged as a warning on the
        ``zimage_async.journal`` logger, since its images are lost.
        """
        resubmit_uncertain = check_flag(resubmit_uncertain, "resubmit_uncertain")
        return await self._bookkeeper().recover(
            link_ttl=self._runtime.link_ttl,
            resume=lambda r: self._journaled(str(r.task_id), None, None, r.key, recovered=True),
            resend=self._resend if resubmit_uncertain else None,
        )

    async def _resend(self, record: JournalRecord) -> TaskHandle:
        """Send *record*'s create again with its key, as the same batch item if it is one."""
        return await self._send(
            record.request(),
            record.key,
            cost=record.expected_cost,
            batch_id=record.batch_id,
            item_index=record.item_index,
            resending=True,
        )


def _batch_id(batch_id: str | None) -> str | None:
    """Return *batch_id* (None: every batch's) if it is one, else raise InvalidRequestError."""
    return None if batch_id is None else check_batch_id(batch_id)
