"""The journal store's API: :class:`Journal`, implemented by the SQLite and PostgreSQL stores."""

from __future__ import annotations

import abc
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from types import TracebackType

from ._journal_records import UNFINISHED, JournalItem, JournalRecord, JournalState
from ._journal_spend import Spend, SpendLimit
from ._models import GenerationRequest

__all__ = ["Journal"]


class Journal(abc.ABC):
    """The journal store: open it with :func:`open_journal`, close it with :meth:`close`.

    Every method that writes has committed (durably) when it returns. Stores never block
    the event loop: the SQLite store works in its own thread, the PostgreSQL store
    over asyncpg. Use it as ``async with await open_journal(target) as journal:``.
    """

    #: Where the journal lives: a file path, or the URL without its password.
    location: str

    async def __aenter__(self) -> Journal:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the store; every change is already committed. Idempotent."""

    async def now(self) -> float:
        """Return the journal's clock (Unix seconds), by which its leases run out.

        The PostgreSQL store's is the database server's, the same for every worker.
        """
        return time.time()

    # -- creates -------------------------------------------------------------------------

    @abc.abstractmethod
    async def begin(
        self,
        record: JournalRecord,
        *,
        limits: Sequence[SpendLimit] = (),
        worker_id: str | None = None,
    ) -> JournalRecord:
        """Write *record* (state ``submitting``) before its create is sent; return it.

        Checked atomically with the write, so concurrent begins (other tasks, processes
        or workers on the same database) can never together go over a limit: each of
        *limits* must admit the record's cost (:func:`check_spend`, with the cost from
        :attr:`JournalRecord.expected_cost` or the last price of its model and size),
        else :class:`SpendLimitError` is raised and nothing is written. A key the
        journal already holds is begun again only as :func:`begin_refusal` allows (not
        while its create may still be in flight in another session, by the store's
        clock), else :class:`JournalError`. With *worker_id*, a batch item's record is refused
        (:class:`LeaseLostError`) unless the item is claimed by that worker: a lease that
        ran out still counts while nobody claimed the item since, as for :meth:`renew`.
        """

    @abc.abstractmethod
    async def update(
        self,
        key: str,
        state: JournalState,
        *,
        task_id: str | None = None,
        credits_reserved: float | None = None,
        completed_at: float | None = None,
        paths: Sequence[Path] | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> JournalRecord:
        """Record the create's new *state*; return the record as stored.

        A field given as None keeps its stored value. *credits_reserved* also becomes
        the last price of the record's model and size. Raises :class:`JournalError` if
        the journal has no record under *key*, or (changing nothing, checked atomically
        with the write) if the record has a task id and *state* says no task is known
        (:func:`update_refusal`): a stale worker's late answer never overwrites the task
        the item's new holder recorded. A state the record has gone past
        (:func:`passed_already`: ``completed`` over ``saved``, say) changes nothing, and
        the record is returned as it is: states move forward only.
        """

    @abc.abstractmethod
    async def get(self, key: str) -> JournalRecord | None:
        """Return the record under *key*, or None."""

    @abc.abstractmethod
    async def records(
        self,
        *,
        batch_id: str | None = None,
        states: Collection[JournalState] | None = None,
        task_id: str | None = None,
    ) -> list[JournalRecord]:
        """Return the records (of one batch, in some states, of one task), oldest first."""

    async def unfinished(self, *, batch_id: str | None = None) -> list[JournalRecord]:
        """Return the creates made or maybe made and not yet delivered, oldest first.

        That is ``submitting`` and ``uncertain`` creates (with their keys, to resend
        them safely) and ``created`` and ``completed`` ones (with their task ids).
        """
        return await self.records(batch_id=batch_id, states=UNFINISHED)

    @abc.abstractmethod
    async def spent(self, *, batch_id: str | None = None) -> Spend:
        """Return what the journal, or the batch *batch_id*, has reserved."""

    @abc.abstractmethod
    async def last_price(self, model: str, size: str | None) -> float | None:
        """Return the last ``credits_reserved`` seen for *model* and *size*, or None."""

    # -- batches -------------------------------------------------------------------------

    @abc.abstractmethod
    async def enqueue(self, batch_id: str, requests: Sequence[GenerationRequest]) -> int:
        """Add the batch's items (index = position in *requests*); return how many are new.

        Idempotent, so every worker of a batch calls it with the same requests. An item
        already in the journal keeps its key and lease; one whose request changed is
        refused with :class:`JournalError` (naming the indexes in the message) if its
        create may have a task, else takes the new request with a new key.
        """

    @abc.abstractmethod
    async def reopen(
        self,
        batch_id: str,
        states: Collection[JournalState],
        *,
        indexes: Collection[int] | None = None,
    ) -> int:
        """Make the batch's settled items whose create is in *states* claimable again.

        With *indexes*, only those items. A ``failed`` item gets a new key (its next
        create is a new task); any other keeps its key, so resending it returns the
        original task where keys are honoured. Returns how many items were reopened.
        """

    @abc.abstractmethod
    async def claim(
        self,
        batch_id: str,
        worker_id: str,
        *,
        lease_seconds: float,
        limit: int,
        begun_only: bool = False,
    ) -> list[JournalItem]:
        """Lease up to *limit* open items to *worker_id* for *lease_seconds*; return them.

        An item can be claimed while it is not settled (see :meth:`release`) and nobody
        holds it, or its lease has run out (the store's clock). Each item is held by one
        worker at a time; an item whose holder died is taken over with its key and its
        create's state and task id, for :func:`resume_action` to decide what to do.
        Settled items are claimed again only after :meth:`reopen`. With *begun_only*,
        only items whose create was begun and not refused (``rejected``) are claimed:
        those that may have a task, which a batch that stopped sending creates still
        finishes.
        """

    @abc.abstractmethod
    async def renew(self, batch_id: str, worker_id: str, *, lease_seconds: float) -> int:
        """Extend every lease *worker_id* still holds in the batch; return how many.

        A lease that ran out is extended too as long as nobody claimed the item since
        (it is still ``claimed_by`` *worker_id*): one late renewal does not lose the
        items a worker is still working on.
        """

    @abc.abstractmethod
    async def release(self, batch_id: str, worker_id: str, index: int, *, settled: bool) -> bool:
        """Give back the item; *settled* marks its outcome reached (not claimed again).

        Returns False (and changes nothing) if *worker_id* no longer held the item.
        """

    @abc.abstractmethod
    async def rekey(self, batch_id: str, worker_id: str, index: int) -> str | None:
        """Give the item *worker_id* holds a new key, for a new task; return the key.

        Only for an item whose task failed or whose links expired, when a new paid task
        was asked for: an item that may have a task keeps its key. Returns None (and
        changes nothing) if the item is no longer claimed by *worker_id* (a lease that
        ran out still counts while nobody claimed the item since, as for :meth:`renew`).
        """

    @abc.abstractmethod
    async def items(self, batch_id: str) -> list[JournalItem]:
        """Return the batch's items by index, with their leases and current creates."""
