"""How a session recovers its unfinished creates: :func:`recover_unfinished`.

Used by :meth:`Bookkeeper.recover <._journaling.Bookkeeper.recover>`; see there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ._exceptions import ZImageError
from ._handle import TaskHandle
from ._journal_moves import IN_FLIGHT_WINDOW, in_flight
from ._journal_records import JournalItem, JournalRecord, JournalState
from ._quoting import log_text

if TYPE_CHECKING:
    from ._journaling import Bookkeeper

__all__ = ["recover_unfinished"]

logger = logging.getLogger("zimage_async.journal")


async def recover_unfinished(
    book: Bookkeeper,
    *,
    link_ttl: float,
    resume: Callable[[JournalRecord], TaskHandle],
    resend: Callable[[JournalRecord], Awaitable[TaskHandle]] | None,
) -> list[TaskHandle]:
    """Return a handle for each unfinished create of *book* made at its base URL.

    As :meth:`Bookkeeper.recover` says. The items of a batch are read once, when its
    first create without a task id is met, not once per create; whether a lease is
    still running, or a create may still be in flight in another session
    (:func:`in_flight`: begun less than :data:`IN_FLIGHT_WINDOW` ago), is judged by the
    journal's clock (a machine whose clock runs ahead would otherwise resend a create
    that a live worker or session is sending).
    """
    handles: list[TaskHandle] = []
    now = time.time()  # links expire by this machine's clock (completed_at is its own)
    lease_now: float | None = None  # leases and begins run by the journal's clock
    read: dict[str, dict[int, JournalItem]] = {}
    for record in await book.unfinished():
        if record.base_url != book.base_url:
            continue
        if record.task_id is not None:
            ended = record.completed_at
            if ended is None or now <= ended + link_ttl:
                handles.append(resume(record))
            else:
                await _expire(book, record)
        elif resend is not None:
            if lease_now is None:
                lease_now = await book.journal.now()
            if in_flight(record, now=lease_now):
                logger.info(
                    "the create with key %s was begun %.0f s ago and may still be in flight "
                    "in another session: not sent again (a recover sends it again if it is "
                    "still unanswered in %.0f s)",
                    record.key,
                    max(0.0, lease_now - record.updated_at),
                    IN_FLIGHT_WINDOW - max(0.0, lease_now - record.updated_at),
                )
                continue
            if await _leased(book, record, lease_now, read):
                logger.info(
                    "the create with key %s is item %s of batch %r, which a running "
                    "worker holds: left to that batch",
                    record.key,
                    record.item_index,
                    record.batch_id,
                )
                continue
            try:
                handles.append(await resend(record))
            except ZImageError as exc:
                logger.warning(
                    "the create with key %s could not be sent again, or got no task back: %s: %s",
                    record.key,
                    type(exc).__name__,
                    log_text(exc),
                )
    return handles


async def _leased(
    book: Bookkeeper, record: JournalRecord, now: float, read: dict[str, dict[int, JournalItem]]
) -> bool:
    """Whether *record* is a batch item a worker holds a live lease on.

    *read*: the items of each batch read so far in this recovery.
    """
    if record.batch_id is None or record.item_index is None:
        return False
    if record.batch_id not in read:
        found = await book.journal.items(record.batch_id)
        read[record.batch_id] = {item.index: item for item in found}
    item = read[record.batch_id].get(record.item_index)
    return item is not None and item.claimed_by is not None and (item.lease_until or 0.0) > now


async def _expire(book: Bookkeeper, record: JournalRecord) -> None:
    await book.note(record.key, JournalState.EXPIRED)
    logger.warning(
        "task %s (key %s) completed at %s and its image links have expired, so its "
        "images are lost; the journal records it as expired",
        record.task_id,
        record.key,
        time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(record.completed_at or 0)),
    )
