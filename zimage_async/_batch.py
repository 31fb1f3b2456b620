"""Concurrent batches on the journal: :class:`Batch`, what :meth:`Session.generate_many` returns.

The batch's items are added to the journal under its ``batch_id``; the batch then
claims items with a lease (at most ``concurrency`` in flight or waiting unread, see
:mod:`._batchoutcomes`), renews the leases in the background while it works, runs each
claimed item (:mod:`._batchrun`) and releases it, settled, once it has its outcome.
Any number of such workers, in this process or others sharing the journal (a
PostgreSQL one across machines), share one batch: each item is held by one worker at a
time, and the item of a worker that died is taken over when its lease runs out. When
nothing is left to claim but other workers still hold items, the batch keeps trying to
claim at a bounded interval until every item is settled; then the iteration ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Sequence

import attrs

from ._batchitems import BatchItem, BatchProgress, BatchServices, BatchStats, ItemState, Stopwatch
from ._batchjournal import give_back, release_all
from ._batchoptions import BatchOptions, ready_output_dir
from ._batchoutcomes import Crash, Outcomes
from ._batchrun import ItemRunner
from ._batchverdicts import all_unrecorded, elsewhere_refusal, left_unsent, left_unsettled
from ._exceptions import NoResultsError, TaskFailedError, ZImageError
from ._journal import open_batch_journal
from ._journal_records import JournalItem, JournalState
from ._journal_spend import SpendLimit
from ._journal_store import Journal
from ._models import GenerationRequest
from ._stopping import outlast, stop_in_order, stop_task

__all__ = ["Batch", "BatchItem", "BatchProgress", "BatchStats", "ItemState"]

logger = logging.getLogger("zimage_async.batch")

_ALL_STATES = frozenset(JournalState)


class Batch:
    """A running batch: iterate it for :class:`BatchItem` outcomes in completion order.

    Made by :meth:`Session.generate_many`; nothing is sent before the first
    ``async for`` step (or ``async with``). Use it as ``async with zs.generate_many(...)
    as batch:`` so that leaving the block early (``break``, an exception) cancels the
    work in flight at once; cancellation of the consuming task does the same. Stopped
    items keep their tasks at the service (billed): the journal records them, and a
    rerun resumes them.

    A batch yields the items this worker brought to an outcome, and first those
    settled before it started (reported from the journal, ``resumed=True``); alone on
    its batch that is every item once. With other workers on the same batch, each item
    is yielded by the worker that settled it; :attr:`stats` says what this one did.
    """

    def __init__(
        self,
        services: BatchServices,
        requests: Sequence[GenerationRequest],
        options: BatchOptions,
    ) -> None:
        self._services = services
        self._requests = requests
        self._options = options
        self._journal: Journal | None = None
        self._owns_journal = False
        self._runner: ItemRunner | None = None
        self._outcomes = Outcomes()
        self._supervisor: asyncio.Task[None] | None = None
        self._held: set[int] = set()
        self._finished = 0
        self._batch_settled = 0
        self._clock = Stopwatch()
        self._starting: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self._closed = False
        self._ended = False

    def __repr__(self) -> str:
        total = len(self._requests)
        return f"<Batch {self._options.batch_id!r} {total} items, {self._finished} finished>"

    def __len__(self) -> int:
        return len(self._requests)

    @property
    def batch_id(self) -> str:
        """The batch's id in the journal."""
        return self._options.batch_id

    @property
    def worker_id(self) -> str:
        """This worker's id, which its leases carry."""
        return self._options.worker_id

    @property
    def journal_location(self) -> str | None:
        """Where the batch's journal lives (None before the batch starts, or in memory)."""
        if self._journal is None or self._journal.location == ":memory:":
            return None
        return self._journal.location

    @property
    def stopped_by(self) -> ZImageError | None:
        """The refusal that stopped the batch from sending more creates, if any.

        The first :class:`AuthenticationError` or :class:`PermissionDeniedError` of a
        create, or a :class:`SpendLimitError` before one, stops the batch at once: no
        further create is sent, nor resent with its key. Items whose create has a task
        finish, those an interrupted run or a dead worker made too (collecting costs
        nothing); one whose create may have a task is reported uncertain; those never
        sent are reported with ``sent=False`` and that error (a refusal's says to check
        ``ZIMAGE_API_KEY``). They stay open in the journal: a rerun sends them.
        """
        return None if self._runner is None else self._runner.stopped_by

    @property
    def progress(self) -> BatchProgress:
        """How many items are in each state now (this worker's view)."""
        states = self._runner.states if self._runner is not None else []
        return BatchProgress(
            total=len(self._requests),
            counts=dict(Counter(states)),
            finished=self._finished,
            elapsed=self._clock.elapsed,
            batch_settled=self._batch_settled,
        )

    @property
    def stats(self) -> BatchStats:
        """What this worker did: items claimed, taken over, submitted, saved, and so on."""
        counts = Counter[str]() if self._runner is None else self._runner.counts
        return BatchStats(
            worker_id=self._options.worker_id,
            elapsed=self._clock.elapsed,
            **{name: counts[name] for name in _COUNTED},
        )

    # -- lifecycle -----------------------------------------------------------------------

    async def _start(self) -> None:
        if self._closed:
            raise RuntimeError("this batch was closed; call generate_many() again to rerun it")
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._open())
        await asyncio.shield(self._starting)

    async def _open(self) -> None:
        options = self._options
        if options.output_dir is not None:  # first: a folder that takes no file costs nothing
            await ready_output_dir(options.output_dir)
        if self._services.book is not None:
            journal = self._services.book.journal
        else:
            journal = await open_batch_journal(options.journal)
            self._owns_journal = True
        self._journal = journal
        limits = []
        if options.max_credits is not None:
            limits.append(SpendLimit(max_credits=options.max_credits, batch_id=options.batch_id))
        runner = ItemRunner(journal, self._services, self._requests, options, limits)
        await journal.enqueue(options.batch_id, self._requests)
        # Items an earlier run under this worker id held (killed): its renewals would keep them.
        await give_back(journal, options.batch_id, options.worker_id)
        reported = await self._plan_settled(runner, await self._items(journal))
        self._runner = runner
        self._clock.start()
        for item in reported:
            self._settle(item, reported=True)
        self._supervisor = asyncio.ensure_future(self._supervise())

    async def _plan_settled(self, runner: ItemRunner, items: list[JournalItem]) -> list[BatchItem]:
        """Report the items settled earlier that need nothing; reopen those that do."""
        reported, reopen, elsewhere = runner.plan_settled(items)
        if elsewhere:
            raise elsewhere_refusal(self._options.batch_id, elsewhere, self._services.base_url)
        if reopen:
            assert self._journal is not None
            await self._journal.reopen(self._options.batch_id, _ALL_STATES, indexes=reopen)
        return reported

    async def aclose(self) -> None:
        """Cancel the work in flight, wait until it has stopped, release the items held.

        Idempotent: every call, also from another task, waits for the one close. Tasks
        already created keep running at the service (billed); the journal records them
        for a rerun. The items held are given back (unsettled) for a rerun or another
        worker. A cancellation of the caller does not cut the close short (a create's
        answer may take ``CREATE_GRACE``): it is raised when the close is done.
        """
        self._closed = True
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        cancelled = await outlast(self._closing)
        if cancelled is not None:
            raise cancelled
        self._closing.result()

    async def _close(self) -> None:
        await stop_task(self._starting)
        await stop_task(self._supervisor)
        self._clock.stop()
        self._outcomes.end()  # a consumer waiting for an item sees the end
        self._held = set()
        journal, owned, self._owns_journal = self._journal, self._owns_journal, False
        if journal is not None:
            await release_all(journal, self._options, self._runner, owned=owned)

    async def __aenter__(self) -> Batch:
        try:
            await self._start()
        except BaseException:  # a refused start: __aexit__ will not run
            await self.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __aiter__(self) -> Batch:
        return self

    async def __anext__(self) -> BatchItem:
        if self._ended:
            raise StopAsyncIteration
        try:
            await self._start()
            outcome = await self._outcomes.take()
        except BaseException:
            await self.aclose()
            raise
        if isinstance(outcome, Crash):
            try:
                await self.aclose()
            except asyncio.CancelledError as cancel:
                raise cancel from outcome.exc  # the crash is not lost
            rest = [o.exc for o in self._outcomes.rest() if isinstance(o, Crash)]
            tasks = {} if self._runner is None else self._runner.tasks  # not delivered
            raise left_unsettled(all_unrecorded(outcome.exc, rest), tasks)
        if outcome is None:  # the end
            self._ended = True
            await self.aclose()
            raise StopAsyncIteration
        if self._runner is not None:
            self._runner.tasks.pop(outcome.index, None)  # delivered
        return outcome

    # -- work ------------------------------------------------------------------------------

    def _settle(self, item: BatchItem, *, reported: bool = False, counted: bool = True) -> None:
        """Hand *item*'s outcome to the consumer; *counted*: see :meth:`Outcomes.put`."""
        assert self._runner is not None
        self._runner.states[item.index] = ItemState.DONE if item.ok else ItemState.FAILED
        if isinstance(item.error, (TaskFailedError, NoResultsError)):
            self._runner.tasks.pop(item.index, None)  # ended: nothing to collect
        counts = self._runner.counts
        if reported:
            counts["reported"] += 1
        elif item.ok:
            counts["saved"] += 1
        elif not item.sent:
            counts["not_sent"] += 1
        else:
            counts["failed"] += 1
        self._finished += 1
        self._outcomes.put(item, counted=counted and not reported)

    @property
    def _idle(self) -> float:
        """Seconds between claims while other workers hold the remaining items."""
        return min(1.0, max(0.05, self._options.lease / 4))

    async def _supervise(self) -> None:
        assert self._journal is not None
        assert self._runner is not None
        journal, runner, options = self._journal, self._runner, self._options
        outcomes = self._outcomes
        renewing = asyncio.ensure_future(self._renew())
        running: dict[asyncio.Task[None], int] = {}
        try:
            while True:
                outcomes.read.clear()  # set when the consumer takes an outcome
                free = options.concurrency - len(running) - outcomes.unread
                claimed: list[JournalItem] = []
                if free > 0:  # after a stop, only items that may have a task: no new spend
                    claimed = await journal.claim(
                        options.batch_id,
                        options.worker_id,
                        lease_seconds=options.lease,
                        limit=free,
                        begun_only=runner.stopped_by is not None,
                    )
                    for item in claimed:
                        if item.index in self._held:
                            # Its lease ran out while this worker still runs it (the
                            # renewal came late) and nobody took it: the claim renewed it.
                            continue
                        self._held.add(item.index)  # past the end of the list: held only
                        if item.index < len(self._requests):
                            running[asyncio.ensure_future(self._run(item))] = item.index
                if not running and free > 0:  # (none free: outcomes wait unread)
                    if not claimed and runner.stopped_by is not None:
                        await self._report_unsent(journal, runner)
                        break
                    if not claimed:
                        if await self._all_settled(journal):
                            break
                        await asyncio.sleep(self._idle)
                    continue
                waiting = None if free - len(claimed) <= 0 else self._idle
                await outcomes.next_change(running, waiting)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a bug, a full disk, a journal gone: the consumer sees it
            outcomes.crash(exc)
        else:
            if self._held:  # items not sent, and past the end of the list: given back open
                with contextlib.suppress(ZImageError):  # else aclose() gives them back
                    await give_back(journal, options.batch_id, options.worker_id)
            outcomes.end()
        finally:  # the leases are renewed until the items have stopped (a create's grace)
            await stop_in_order(running, renewing)
            self._clock.stop()

    async def _run(self, item: JournalItem) -> None:
        assert self._journal is not None
        assert self._runner is not None
        try:
            outcome = await self._runner.run(item)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the consumer sees the item's own error first
            self._outcomes.crash(exc)
            raise
        batch_id, worker_id = self._options.batch_id, self._options.worker_id
        if outcome is not None and not outcome.sent:
            # Not sent (a stop): held, so that this worker does not claim it again, until
            # the batch ends; then given back open in the journal, for a rerun to send.
            self._settle(outcome)
            return
        if outcome is None:  # lost: given back if still this worker's, to be run again
            await self._journal.release(batch_id, worker_id, item.index, settled=False)
        elif not await self._journal.release(batch_id, worker_id, item.index, settled=True):
            # Its lease ran out and another worker claimed it: that one reports it.
            logger.warning("item %d of batch %r: another worker holds it now", item.index, batch_id)
            outcome = None
        self._held.discard(item.index)
        if outcome is not None:  # None: another worker holds it now, and its task
            self._settle(outcome)
        else:
            self._runner.tasks.pop(item.index, None)

    async def _renew(self) -> None:
        """Renew this worker's leases every third of a lease, and read the batch's totals."""
        assert self._journal is not None
        options = self._options
        while True:
            await asyncio.sleep(options.lease / 3)
            try:
                await self._journal.renew(
                    options.batch_id, options.worker_id, lease_seconds=options.lease
                )
                items = await self._items(self._journal)
            except ZImageError as exc:  # the next claim or write will fail loudly
                logger.warning("could not renew the leases of batch %r: %s", options.batch_id, exc)
                continue
            self._batch_settled = sum(item.settled for item in items)

    async def _items(self, journal: Journal) -> list[JournalItem]:
        """Return the batch's items in the journal, but those past the end of a shortened list."""
        items = await journal.items(self._options.batch_id)
        return [item for item in items if item.index < len(self._requests)]

    async def _all_settled(self, journal: Journal) -> bool:
        items = await self._items(journal)
        self._batch_settled = sum(item.settled for item in items)
        return all(item.settled for item in items)

    async def _report_unsent(self, journal: Journal, runner: ItemRunner) -> None:
        """After a stop: report the open items never sent that nobody else holds (left open)."""
        items = await self._items(journal)
        for index in left_unsent(items, runner.states, self._options.worker_id, now=time.time()):
            self._settle(runner.not_sent(index), counted=False)  # nothing spent, no image


_COUNTED = [f.name for f in attrs.fields(BatchStats) if f.name not in ("worker_id", "elapsed")]
