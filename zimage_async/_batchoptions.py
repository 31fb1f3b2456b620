"""How one batch runs: its options, checked before anything is sent, and worker ids."""

from __future__ import annotations

import math
import os
import re
import socket
import uuid
from collections.abc import Sequence
from pathlib import Path

import attrs

from ._exceptions import InvalidRequestError

__all__ = [
    "DEFAULT_LEASE",
    "BatchOptions",
    "check_batch_id",
    "check_cost",
    "check_lease",
    "check_worker_id",
    "default_worker_id",
]

#: Seconds a worker holds a claimed item before another worker may take it over,
#: unless it renews the lease (which it does every third of this while it works).
DEFAULT_LEASE = 60.0
_WORKER_ID = re.compile(r"[\x21-\x7e]{1,200}")


def default_worker_id() -> str:
    """Return a worker id unique to this process: ``host:pid:random``."""
    host = socket.gethostname().split(".")[0] or "host"
    return f"{host}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def check_worker_id(worker_id: str | None) -> str:
    """Return *worker_id* (printable ASCII, no spaces, 1-200 characters) or a new one."""
    if worker_id is None:
        return default_worker_id()
    if not isinstance(worker_id, str) or not _WORKER_ID.fullmatch(worker_id):
        raise InvalidRequestError(
            "worker_id",
            "1-200 printable ASCII characters without spaces, unique to each worker",
            f"got {worker_id!r}",
        )
    return worker_id


def check_lease(lease: float) -> float:
    """Return *lease* (seconds, at least 1) as a float."""
    if isinstance(lease, bool) or not isinstance(lease, (int, float)) or not 1 <= lease <= 86400:
        raise InvalidRequestError("lease", "a number of seconds from 1 to 86400", f"got {lease!r}")
    return float(lease)


def check_batch_id(batch_id: str) -> str:
    """Return *batch_id* if it is a non-empty string of at most 1000 characters."""
    if not isinstance(batch_id, str) or not 1 <= len(batch_id) <= 1000:
        raise InvalidRequestError(
            "batch_id", "a non-empty string of at most 1000 characters", f"got {batch_id!r}"
        )
    return batch_id


def check_cost(cost: float | None) -> float | None:
    """Return *cost* as a float if it is None or a finite number of credits > 0."""
    if cost is None:
        return None
    if isinstance(cost, bool) or not isinstance(cost, (int, float)):
        raise InvalidRequestError("cost", "a finite number of credits > 0", f"got {cost!r}")
    if not math.isfinite(cost) or cost <= 0:
        raise InvalidRequestError("cost", "a finite number of credits > 0", f"got {cost!r}")
    return float(cost)


@attrs.frozen(kw_only=True)
class BatchOptions:
    """Everything :class:`Batch` needs to know besides its requests (already checked)."""

    concurrency: int
    output_dir: Path | None
    #: The batch's own journal (a file or URL) when the session keeps none; None and no
    #: session journal: an in-memory journal that ends with the batch.
    journal: str | os.PathLike[str] | None
    batch_id: str
    worker_id: str
    lease: float
    timeout: float | None
    resubmit_uncertain: bool
    resubmit_failed: bool
    resubmit_expired: bool
    max_credits: float | None
    name: str | None
    numbers: Sequence[int] | None
    #: Generate again (new key) items whose task lives at another base URL: the tasks of
    #: an in-process emulator end with its process (``zimage batch`` on the emulator).
    forget_elsewhere: bool = False
    #: Each item's expected cost in credits, for the spend limit until the service
    #: reports the real one (None: the last price of its model and size, if any).
    cost: float | None = None
