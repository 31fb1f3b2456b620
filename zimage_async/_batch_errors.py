"""The batch's own error: a worker that lost an item's lease to another worker."""

from __future__ import annotations

from ._exceptions import JournalError

__all__ = ["LeaseLostError"]


class LeaseLostError(JournalError):
    """A batch worker no longer holds the lease on the item it was about to send.

    Its lease ran out (the worker was stalled, or stopped renewing) and another worker
    may have taken the item over; nothing was sent for it. The worker leaves the item to
    whoever holds it now. ``batch_id``, ``index`` and ``worker_id`` say which item and
    which worker.
    """

    def __init__(self, message: str, *, batch_id: str | None, index: int | None, worker_id: str):
        self.batch_id = batch_id
        self.index = index
        self.worker_id = worker_id
        super().__init__(message)
