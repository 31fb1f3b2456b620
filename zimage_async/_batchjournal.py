"""A batch worker's journal writes where its item may have been taken over meanwhile.

A worker whose lease ran out may still get an answer to a create it sent; the item's
new holder may have recorded the task already. :func:`note_held` records an answer
unless it would write over that task, and :func:`recorded_meanwhile` gives an item back
when its task turned up in the journal before the worker could begin its create.
:func:`give_back` releases what a worker that closes still holds.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ._batchverdicts import unrecorded
from ._deadlines import within
from ._exceptions import JournalError, LeaseLostError, ZImageError
from ._journal_records import JournalState
from ._journal_store import Journal

if TYPE_CHECKING:
    from ._batchoptions import BatchOptions
    from ._batchrun import ItemRunner

__all__ = ["give_back", "note_created", "note_held", "recorded_meanwhile", "release_all"]

logger = logging.getLogger("zimage_async.batch")


async def note_held(
    journal: Journal, key: str, state: JournalState, *, worker_id: str, **fields: Any
) -> None:
    """Record *state* for the create under *key*, as the worker *worker_id*.

    Raises :class:`LeaseLostError` when the answer is a late one: the item was taken over
    and its new holder recorded the task (this answer says no task is known, names
    another task - then billed and not recorded -, or would move the create back).
    """
    try:
        await journal.update(key, state, **fields)
    except LeaseLostError:
        raise
    except JournalError:
        late = fields.get("task_id")
        if state.has_task and late is None:
            raise
        current = await journal.get(key)
        if current is None or current.task_id is None:
            raise
        # A late answer: the item was taken over and its new holder recorded the task.
        lost = "" if late in (None, current.task_id) else f" (task {late}, billed)"
        raise LeaseLostError(
            f"the create with key {key} has task {current.task_id}, recorded by the "
            f"item's new holder; this worker's {state.value} answer{lost} is not recorded",
            batch_id=current.batch_id,
            index=current.item_index,
            worker_id=worker_id,
        ) from None


async def note_created(
    journal: Journal, key: str, task_id: str, *, worker_id: str, index: int, **fields: Any
) -> None:
    """Record *task_id* as made under *key* (item *index*) by the worker *worker_id*.

    Raises :class:`JournalError` naming *task_id* as billed and unrecorded when the
    write fails or is refused (a late answer naming another task than the one the
    item's new holder recorded), and :class:`LeaseLostError` when the new holder
    recorded this very task (it is left to that holder).
    """
    try:
        await note_held(
            journal, key, JournalState.CREATED, worker_id=worker_id, task_id=task_id, **fields
        )
    except LeaseLostError as exc:
        current = await journal.get(key)
        if current is not None and current.task_id == task_id:
            raise
        raise unrecorded(exc, task_id, index) from exc
    except JournalError as exc:
        raise unrecorded(exc, task_id, index) from exc


async def recorded_meanwhile(
    journal: Journal, batch_id: str, worker_id: str, *, index: int, key: str
) -> None:
    """Give the item back (unsettled, to resume by id) if its task was recorded meanwhile.

    That is its former holder's late answer; returns if the record has no task.
    """
    current = await journal.get(key)
    if current is None or current.task_id is None:
        return
    logger.info(
        "item %d: its task %s was recorded meanwhile; given back to be resumed by id",
        index,
        current.task_id,
    )
    await journal.release(batch_id, worker_id, index, settled=False)
    raise LeaseLostError(
        f"item {index}: task {current.task_id} was recorded meanwhile",
        batch_id=batch_id,
        index=index,
        worker_id=worker_id,
    )


async def give_back(journal: Journal, batch_id: str, worker_id: str) -> None:
    """Release, unsettled, every item of the batch the journal says *worker_id* holds.

    Those it was running, and those whose claim was written as the worker was
    cancelled (its answer never reached the worker), so that a rerun or another worker
    takes them at once rather than when their leases run out.
    """
    for item in await journal.items(batch_id):
        if item.claimed_by == worker_id and not item.settled:
            await journal.release(batch_id, worker_id, item.index, settled=False)


async def release_all(
    journal: Journal, options: BatchOptions, runner: ItemRunner | None, *, owned: bool
) -> None:
    """End a batch's close: finish its journal writes, give its items back.

    Waits for the journal writes of *runner* under way, gives back what the worker
    holds (within 5 s; a journal that fails then is left to the leases' expiry, with a
    warning saying so), and
    closes the journal if the batch opened it (*owned*).
    """
    if runner is not None:
        await runner.pending.settle()
    try:
        await within(give_back(journal, options.batch_id, options.worker_id), 5.0)
    except (ZImageError, asyncio.TimeoutError) as exc:
        logger.warning(
            "the items worker %s holds in batch %r could not be given back (%s): they "
            "stay leased until their lease runs out (%g s), and a rerun waits for them",
            options.worker_id,
            options.batch_id,
            str(exc) or "the journal did not answer within 5 s",
            options.lease,
        )
    if owned:
        await journal.close()
