"""Journal writes around a create: begun under a price, its end recorded come what may.

Used by :class:`._journaling.Bookkeeper` and the batch runner: :func:`begin_priced`
begins a record, waiting while another unpriced create of its kind is sent;
:func:`note_refused` and :func:`note_cancelled` record a create that made no task or
was stopped unanswered; :class:`PendingWrites` keeps such writes running when their
caller is cancelled, until the journal is closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ._exceptions import ZImageError
from ._journal_moves import IN_FLIGHT_WINDOW
from ._journal_records import JournalRecord, JournalState
from ._journal_spend import PriceAwaited, SpendLimit
from ._journal_store import Journal
from ._models import GenerationRequest
from ._outcome import refused_resend

__all__ = [
    "CLOSE_GRACE",
    "PendingWrites",
    "begin_priced",
    "note_cancelled",
    "note_refused",
]

logger = logging.getLogger("zimage_async.journal")

#: The most seconds closing waits for journal writes still under way.
CLOSE_GRACE = 10.0


class PendingWrites:
    """Journal writes that must finish even if their caller is cancelled.

    Whoever closes the journal calls :meth:`settle` first, so a write that a cancelled
    caller stopped waiting for is neither lost nor run against a closed store.
    """

    def __init__(self) -> None:
        self._writes: set[asyncio.Future[Any]] = set()

    async def shield(self, write: Awaitable[Any]) -> None:
        """Run *write* to its end even if the caller is cancelled; wait for it."""
        future = asyncio.ensure_future(write)
        self._writes.add(future)
        future.add_done_callback(self._writes.discard)
        await asyncio.shield(future)

    async def settle(self, timeout: float = CLOSE_GRACE) -> None:
        """Wait (at most *timeout* seconds) for the writes still under way."""
        if self._writes:
            await asyncio.wait(set(self._writes), timeout=timeout)


async def begin_priced(
    journal: Journal,
    record: JournalRecord,
    *,
    limits: Sequence[SpendLimit],
    worker_id: str | None = None,
) -> JournalRecord:
    """Begin *record*, first waiting while another unpriced create of its kind is sent.

    Under a spend limit a create whose cost is unknown counts as 0 credits, so only one
    create of a model and size without a known price is sent at a time (the store
    refuses the others with :class:`PriceAwaited`); they wait here, polling with a
    growing pause (at most 1 s), until its price is known or it settles without one.
    """
    pause = 0.05
    while True:
        try:
            return await journal.begin(record, limits=limits, worker_id=worker_id)
        except PriceAwaited:  # noqa: PERF203 (a wait loop, one begin per pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)


async def note_refused(
    note: Callable[..., Awaitable[Any]],
    key: str,
    request: GenerationRequest,
    exc: ZImageError,
    *,
    resending: bool,
) -> ZImageError:
    """Record a send that certainly made no task (*exc*); return the error to raise.

    ``rejected``; but with *resending* an earlier send under *key* may have made one:
    the create stays ``uncertain``, and :func:`refused_resend` says so.
    """
    if resending:
        uncertain = refused_resend(exc, key=key, request=request)
        await note(key, JournalState.UNCERTAIN, error_message=str(uncertain))
        return uncertain
    await note(key, JournalState.REJECTED, error_code=type(exc).__name__, error_message=str(exc))
    return exc


async def note_cancelled(
    note: Callable[..., Awaitable[Any]],
    key: str,
    pending: PendingWrites,
    *,
    sent: bool,
    error: BaseException | None = None,
) -> None:
    """Record the create under *key*, stopped (cancelled, its session closed) unanswered.

    ``uncertain`` if it may have been *sent*. Stopped before it was handed over
    (waiting for a connection, or out a 429 pause), it reached no one: ``rejected``, so
    that it counts as nothing spent and is never sent again as an uncertain create.
    A write that fails is logged (:func:`_unrecorded`), never raised: the caller
    raises what stopped the create, a cancellation above all.
    """
    why = "cancelled" if error is None or isinstance(error, asyncio.CancelledError) else "stopped"
    if sent:
        write = note(key, JournalState.UNCERTAIN, error_message=f"{why} while sending")
    else:
        write = note(
            key,
            JournalState.REJECTED,
            error_code=type(error).__name__ if error is not None else "CancelledError",
            error_message=f"{why} before it was sent",
        )
    await pending.shield(_unrecorded(write, key, why=why, sent=sent))


async def _unrecorded(write: Awaitable[Any], key: str, *, why: str, sent: bool) -> None:
    """Run *write*; if it fails, log a WARNING naming the create's key (and what it means).

    Its record then stays ``submitting``: counted as spent, and sent again (with *key*)
    by a ``recover(resubmit_uncertain=True)`` once it is no longer taken as in flight
    (:data:`IN_FLIGHT_WINDOW`).
    """
    try:
        await write
    except Exception as exc:  # logged: what stopped the create is what is raised
        if sent:
            logger.warning(
                "the create with key %s was %s after it was sent and may have made a task "
                "(billed) that the journal could not record (%s): its record stays "
                "submitting; once it is %.0f minutes old, recover(resubmit_uncertain=True) "
                "sends it again with that key, which gets that task without paying twice "
                "where the gateway honours keys",
                key,
                why,
                exc,
                IN_FLIGHT_WINDOW / 60,
            )
        else:
            logger.warning(
                "the create with key %s was %s before it was sent (not sent: no task, "
                "nothing billed), but the journal could not record that (%s): its record "
                "stays submitting, counted as spent until it is sent again",
                key,
                why,
                exc,
            )
