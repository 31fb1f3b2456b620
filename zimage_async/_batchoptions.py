"""How one batch runs: its options, checked before anything is sent, and worker ids."""

from __future__ import annotations

import errno
import numbers
import os
import re
import socket
import tempfile
import unicodedata
import uuid
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import attrs

from ._config import is_finite
from ._durable import make_folder
from ._exceptions import InvalidRequestError
from ._models import GenerationRequest
from ._naming import check_batch_names
from ._partfiles import remove_stale_parts
from ._quoting import int_text, number_or_type, quote, short_repr, surrogate_at, wrong_type
from ._saving import path_text, plan_save

__all__ = [
    "DEFAULT_LEASE",
    "BatchOptions",
    "check_batch_id",
    "check_cost",
    "check_flag",
    "check_lease",
    "check_numbers",
    "check_output_dir",
    "check_output_names",
    "check_spend_type",
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
            f"got {short_repr(worker_id)}",
        )
    return worker_id


def check_lease(lease: float) -> float:
    """Return *lease* (seconds, at least 1) as a float."""
    if isinstance(lease, bool) or not isinstance(lease, (int, float)) or not 1 <= lease <= 86400:
        rule = "a number of seconds from 1 to 86400"
        raise InvalidRequestError("lease", rule, f"got {number_or_type(lease)}")
    return float(lease)


def check_batch_id(batch_id: str) -> str:
    """Return *batch_id* if it is a non-empty string of at most 1000 characters, in UTF-8.

    Control characters (NUL, which PostgreSQL cannot store, a newline, ESC...) are
    refused: a batch id is printed and stored as it is.
    """
    rule = (
        "a non-empty string of at most 1000 characters, without control characters, "
        "that can be encoded as UTF-8"
    )
    if not isinstance(batch_id, str) or not 1 <= len(batch_id) <= 1000:
        raise InvalidRequestError("batch_id", rule, f"got {short_repr(batch_id)}")
    if surrogate_at(batch_id) is not None:
        raise InvalidRequestError("batch_id", rule, "it holds a lone surrogate (U+D800-U+DFFF)")
    control = next((c for c in batch_id if unicodedata.category(c) == "Cc"), None)
    if control is not None:
        raise InvalidRequestError(
            "batch_id", rule, f"it holds the control character U+{ord(control):04X}"
        )
    return batch_id


def check_flag(value: bool, field: str) -> bool:
    """Return *value* if it is True or False (a string such as ``"no"`` is refused)."""
    if not isinstance(value, bool):
        raise InvalidRequestError(field, "True or False", wrong_type(value))
    return value


def check_spend_type(max_credits: object) -> float | None:
    """Return *max_credits* as a float, if a real number a float holds (a Decimal too).

    The journal checks its range; None (no limit) stays None.
    """
    if max_credits is None:
        return None
    rule = "a number of credits >= 0"
    if isinstance(max_credits, bool) or not isinstance(max_credits, (numbers.Real, Decimal)):
        raise InvalidRequestError("max_credits", rule, wrong_type(max_credits))
    try:
        return float(max_credits)
    except OverflowError:  # an int too large
        problem = f"{short_repr(max_credits)} does not fit in a float"
        raise InvalidRequestError("max_credits", rule, problem) from None


_NUMBERS_RULE = "a sequence of distinct integers, one per request, in the requests' order"


def check_numbers(numbers: Sequence[int] | None, count: int) -> tuple[int, ...] | None:
    """Return *numbers* as a tuple if they are *count* distinct integers (or None)."""
    if numbers is None:
        return None
    if not isinstance(numbers, Sequence) or isinstance(numbers, (str, bytes)):
        raise InvalidRequestError("numbers", _NUMBERS_RULE, wrong_type(numbers))
    if len(numbers) != count:
        raise InvalidRequestError("numbers", _NUMBERS_RULE, f"got {len(numbers)} for {count}")
    first: dict[int, int] = {}
    for index, number in enumerate(numbers):
        if isinstance(number, bool) or not isinstance(number, int):
            raise InvalidRequestError(
                "numbers", _NUMBERS_RULE, f"numbers[{index}]: {wrong_type(number)}"
            )
        earlier = first.setdefault(int(number), index)
        if earlier != index:
            raise InvalidRequestError(
                "numbers",
                _NUMBERS_RULE,
                f"{int_text(number)} is given twice (numbers[{earlier}] and numbers[{index}]), "
                "so two items would share a number and their file names",
            )
    return tuple(first)


_OUTPUT_DIR_RULE = (
    "a folder for the batch's images: an existing folder, or a path where one can be "
    "made that does not end in .png, .jpg, .jpeg or .webp, without NUL, which the "
    "file system can encode, and in which files can be made"
)


def check_output_dir(output_dir: str | os.PathLike[str] | None) -> Path | None:
    """Return *output_dir* as a Path if it can be the batch's folder (or None).

    Whether files can be made in it is checked when the batch starts
    (:func:`ready_output_dir`), still before anything is sent.
    """
    rule = _OUTPUT_DIR_RULE
    if output_dir is None:
        return None
    text = path_text("output_dir", output_dir, rule)
    if not text:
        raise InvalidRequestError("output_dir", rule, "it is empty")
    folder = Path(text)
    blocker = _not_a_folder(folder)
    if blocker == folder:
        raise InvalidRequestError("output_dir", rule, f"it is {_what_is_there(folder)}")
    if blocker is not None:
        problem = (
            f"{quote(blocker.name)} in its path is {_what_is_there(blocker)}: none can be made"
        )
        raise InvalidRequestError("output_dir", rule, problem)
    if plan_save(folder).target is not None:
        raise InvalidRequestError(
            "output_dir",
            rule,
            f"{quote(text)} ends in an image extension and is no existing folder, so it "
            "would be taken for one file, written by every item; name a folder without "
            "that extension, or create the folder first",
        )
    return folder


def _what_is_there(path: Path) -> str:
    """Say what *path*, which exists but is no folder, is: a file, or a link to none."""
    if path.is_symlink():
        try:
            path.stat()
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return "a link that loops, not a folder"
            return "a link to nothing, not a folder"
        return "a link to a file, not a folder"
    return "a file, not a folder"


async def ready_output_dir(folder: Path) -> None:
    """Make the batch's *folder* and a file in it (then gone), before anything is sent.

    A folder no file can be made in (a read-only file system, no permission) is refused
    as ``output_dir`` before the first create, not found out by the first item's save
    once its task is paid for. Partial files a killed process left there are removed.
    """
    try:
        await make_folder(folder, durable=True)  # its saves are durable
        fd, name = tempfile.mkstemp(dir=folder, prefix=".zimage-", suffix=".probe")
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InvalidRequestError(
            "output_dir", _OUTPUT_DIR_RULE, f"no file can be made in it ({reason})"
        ) from None
    remove_stale_parts(folder)


def _not_a_folder(folder: Path) -> Path | None:
    """Return *folder*, or the nearest of its parents, that exists but is no folder.

    None when *folder* is a folder, or can be made (its nearest existing parent is a
    folder). A link counts as what it points to; a link to nothing is no folder. A path
    found to exist is looked at once more: another worker on the same batch may have made
    the folder since the first look found nothing there.
    """
    for path in (folder, *folder.parents):
        if path.is_dir():
            return None
        if os.path.lexists(path):
            return None if path.is_dir() else path
    return None


def check_output_names(
    name: str | None, requests: Sequence[GenerationRequest], numbers: Sequence[int] | None
) -> None:
    """Refuse a *name* template that could give two items of a batch one file name.

    Or one that gives an item, with its own number and seed, a name that is no file
    name of the folder (see :func:`~zimage_async._naming.stem_problem`).
    """
    check_batch_names(
        name,
        [
            (request.prompt, request.seed, index + 1 if numbers is None else numbers[index])
            for index, request in enumerate(requests)
        ],
    )


def check_cost(cost: float | None) -> float | None:
    """Return *cost* as a float if it is None or a finite number of credits > 0."""
    if cost is None:
        return None
    if isinstance(cost, bool) or not isinstance(cost, (int, float)):
        raise InvalidRequestError("cost", "a finite number of credits > 0", wrong_type(cost))
    if not is_finite(cost) or cost <= 0:
        raise InvalidRequestError(
            "cost", "a finite number of credits > 0", f"got {short_repr(cost)}"
        )
    return float(cost)


def _printed(journal: str | os.PathLike[str] | None) -> str:
    """Return the journal as a repr shows it: a URL without its password."""
    from ._journal_postgres_sql import without_password  # only when shown: not at import

    return repr(without_password(journal) if isinstance(journal, str) else journal)


@attrs.frozen(kw_only=True)
class BatchOptions:
    """Everything :class:`Batch` needs to know besides its requests (already checked)."""

    concurrency: int
    output_dir: Path | None
    #: The batch's own journal (a file or URL) when the session keeps none; None and no
    #: session journal: an in-memory journal that ends with the batch.
    journal: str | os.PathLike[str] | None = attrs.field(repr=_printed)
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
