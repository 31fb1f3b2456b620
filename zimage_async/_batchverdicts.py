"""What a batch worker says about an item it does not simply run (pure, no I/O).

Whether a saved item's files are there for this worker, whether a spend refusal is one
that creates in flight cause, and the errors of an item whose request the journal holds
otherwise, of an item left to another service, of a delivered item whose files and
links are gone, of a task made but not recorded (or recorded, and a later write
failed), and of a create that may have a task, not sent again after the batch stopped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from ._batchitems import BatchItem, ItemState, reported_error
from ._exceptions import (
    APIConnectionError,
    ImageExpiredError,
    JournalError,
    SpendLimitError,
    SubmissionUncertainError,
    ZImageError,
)
from ._idempotency import first_sent_without_key
from ._journal_records import JournalItem, JournalRecord, JournalState, ResumeAction
from ._journal_spend import SpendLimit, check_spend
from ._manifest import fingerprint
from ._models import GenerationRequest

#: Actions that would send or wait for a create made at the record's base URL.
SENDS_OR_WAITS = frozenset({ResumeAction.WAIT, ResumeAction.RESUBMIT})
#: Actions that would use a task made at the record's base URL.
USES_TASK = frozenset(
    {
        ResumeAction.WAIT,
        ResumeAction.RESUBMIT,
        ResumeAction.REPORT_UNCERTAIN,
        ResumeAction.EXPIRED,
    }
)
#: The actions whose item is reported from the journal with an error.
_REPORTED = frozenset(
    {ResumeAction.REPORT_FAILED, ResumeAction.REPORT_UNCERTAIN, ResumeAction.EXPIRED}
)

__all__ = [
    "SENDS_OR_WAITS",
    "USES_TASK",
    "elsewhere_message",
    "elsewhere_refusal",
    "files_present",
    "foreign_message",
    "journal_outcome",
    "left_unsent",
    "left_unsettled",
    "list_differs",
    "lost_files",
    "recorded",
    "refused_for_estimates",
    "unrecorded",
    "unsent_resend",
]


def files_present(record: JournalRecord, output_dir: Path | None = None) -> bool:
    """Whether *record*'s saved files need not be saved again by a worker saving to *output_dir*.

    A record that names no file (its images were handed to the caller) has none
    present. Files recorded under another directory (another worker's, maybe on
    another machine) count as present: they are reported, not fetched again; only
    those under *output_dir* are looked for.
    """
    if not record.paths:
        return False
    if output_dir is None:
        return True
    here = output_dir.resolve()
    return all(path.exists() for path in record.paths if path.resolve().is_relative_to(here))


def journal_outcome(
    record: JournalRecord,
    action: ResumeAction,
    index: int,
    request: GenerationRequest,
    *,
    link_ttl: float,
) -> BatchItem | None:
    """Return the outcome of an item reported from the journal, or None if it needs work.

    A *record* made for another request than *request* (sent under the item's key by
    a worker with an older list) is never reported as its outcome: None.
    """
    if record.fingerprint != fingerprint(request):
        return None
    if action is ResumeAction.DONE:
        return BatchItem(
            index=index, request=request, task_id=record.task_id, paths=record.paths, resumed=True
        )
    if action not in _REPORTED:
        return None
    error: ZImageError
    if record.state is JournalState.SAVED:
        error = lost_files(record, link_ttl)
    else:
        error = reported_error(action, record, link_ttl=link_ttl)
    return BatchItem(
        index=index, request=request, task_id=record.task_id, error=error, resumed=True
    )


def lost_files(record: JournalRecord, link_ttl: float) -> ImageExpiredError:
    """Return the error of a delivered item whose files are gone after its links expired."""
    completed_at = record.completed_at or 0.0
    shown = ", ".join(str(path) for path in record.paths[:3])
    return ImageExpiredError(
        f"task {record.task_id} was saved in an earlier run ({shown}), its files are "
        f"gone and its image links have expired (they live {link_ttl:g} s); a delivered "
        "item is not generated again: restore the files, or generate it in a new batch",
        url="",
        task_id=record.task_id,
        index=0,
        expired_at=completed_at + link_ttl,
    )


def list_differs(batch_id: str, index: int) -> JournalError:
    """Return why a worker stops: the journal holds another request for item *index*.

    The item was changed (an edited list run on the same journal and batch id) after
    this worker started with its own list; sending this worker's request under the
    item's key would file its image under the other request. The prompt is not quoted.
    """
    return JournalError(
        f"the journal holds another request for item {index} of batch {batch_id!r} than "
        "this worker's list: a run with an edited list changed the item after this worker "
        "started; this worker stops, and gave the item back unsent - run the batch with "
        "the list the journal holds"
    )


def foreign_message(record: JournalRecord, index: int) -> str:
    """Return the warning for item *index*, whose create *record* was made for another request."""
    return (
        f"item {index} of batch {record.batch_id!r}: its create with key {record.key} (task "
        f"{record.task_id or 'unknown'}) was made for another request, by a worker with an "
        "older list; it is not this item's: the item is sent under a new key"
    )


def refused_for_estimates(refusal: SpendLimitError, in_flight: float) -> bool:
    """Whether only the estimates of creates in flight (*in_flight* credits) cause *refusal*.

    Those creates count at their expected cost until their answers bring the real one:
    without them the refused create would fit the limit, so it waits for them and is
    checked again. False when it would not fit even if they cost nothing.

    >>> refusal = SpendLimitError(max_credits=0.25, reserved=0.2, expected=0.1, batch_id=None)
    >>> refused_for_estimates(refusal, 0.2), refused_for_estimates(refusal, 0.0)
    (True, False)
    """
    if in_flight <= 0:
        return False
    limit = SpendLimit(max_credits=refusal.max_credits, batch_id=refusal.batch_id)
    reserved = max(0.0, refusal.reserved - in_flight)
    return check_spend(limit, reserved=reserved, expected=refusal.expected or None) is None


def elsewhere_message(record: JournalRecord, base_url: str) -> str:
    """Return why *record*, made at another base URL, is refused at *base_url*."""
    return (
        f"item {record.item_index} of batch {record.batch_id!r} was sent to "
        f"{record.base_url} ({record.state.value}) and may have a task there, not at "
        f"{base_url}: it is refused here; run the batch with a session on {record.base_url}"
    )


def elsewhere_refusal(batch_id: str, indexes: Sequence[int], base_url: str) -> JournalError:
    """Return why a batch is refused at its start: tasks of its items live at another URL."""
    shown = ", ".join(map(str, indexes[:10]))
    return JournalError(
        f"the journal holds tasks of {len(indexes)} item(s) of batch {batch_id!r} that "
        f"live at another base URL (item index {shown}), not at {base_url}; run the "
        "batch with a session on the base URL that made them"
    )


def unrecorded(exc: JournalError, task_id: str, index: int) -> JournalError:
    """Return *exc* naming the billed task it left unrecorded, and how to collect it."""
    error = JournalError(
        f"{exc}; task {task_id} (item {index}) was created and is billed but could "
        f"not be recorded - collect it with `zimage task {task_id} -o DIR` or "
        f"session.task({task_id!r}), do not submit the item again"
    )
    error._unrecorded = (str(exc), task_id, index)  # type: ignore[attr-defined]
    error.task_id = task_id
    return error


def recorded(exc: JournalError, task_id: str, index: int) -> JournalError:
    """Return *exc* naming the task of the item it stopped, whose id the journal holds.

    A write after the task id was committed failed (the ``completed``, ``failed`` or
    ``saved`` one): the task is not lost, and running the batch again resumes it by its
    id, paying nothing more; it is not one to collect by hand.
    """
    return JournalError(
        f"{exc}; task {task_id} (item {index}) is recorded in the journal: run the batch "
        "again, on the same journal, to resume it by its id (it is not paid for again)"
    )


def all_unrecorded(first: BaseException, others: Iterable[BaseException]) -> BaseException:
    """Return *first*, or one error naming every billed task it and *others* left unrecorded.

    The items in flight when a batch's journal failed each made a task it could not
    record; the batch stops at the first, and the others end with the same failure while
    it stops: each of those tasks is paid for and must be named, not only the first.
    """
    tasks: dict[str, int] = {}
    cause = None
    for error in (first, *others):
        noted = getattr(error, "_unrecorded", None)
        if noted is not None:
            cause = cause or noted[0]
            tasks.setdefault(noted[1], noted[2])
    if not tasks or (len(tasks) == 1 and getattr(first, "_unrecorded", None) is not None):
        return first  # it names them all already
    if getattr(first, "_unrecorded", None) is None:  # the first failure made no task
        cause = str(first)
    listed = ", ".join(f"{task_id} (item {index})" for task_id, index in tasks.items())
    return JournalError(
        f"{cause}; {len(tasks)} task(s) were created and are billed but could not be "
        f"recorded: {listed} - collect each with `zimage task ID -o DIR` or "
        "session.task(ID), do not submit these items again"
    )


def left_unsettled(error: BaseException, tasks: Mapping[int, str]) -> BaseException:
    """Return *error*, its message naming the created *tasks* (by item) its batch leaves.

    A batch ended by an unexpected error (a closed Session, a full disk) leaves the tasks
    of the items in flight, and of outcomes it could not deliver, made and billed:
    without a journal file nothing else remembers them. Those the message names already
    with their items (:func:`all_unrecorded`, :func:`recorded`) are not repeated. The
    note goes where ``str(error)`` shows it (an ``OSError``'s ``strerror``, else a
    one-argument message), the error keeping its type and attributes; any other error
    gets it as an exception note.
    """
    shown = str(error)
    each = [f"{task_id} (item {index})" for index, task_id in sorted(tasks.items())]
    named = [one for one in each if one not in shown]
    if not named:
        return error
    listed = ", ".join(named)
    note = (
        f"[the batch stopped with {len(named)} created task(s) it did not deliver, billed: "
        f"{listed} - collect each with session.task(ID) (or `zimage task ID -o DIR`) "
        "instead of generating it again; with a journal file, running the batch again "
        "resumes them]"
    )
    args = error.args
    if isinstance(error, OSError) and error.strerror is not None:
        error.strerror = f"{error.strerror} {note}"
        error.args = (error.errno, error.strerror)
    elif len(args) == 1 and isinstance(args[0], str) and shown == args[0]:
        error.args = (f"{args[0]} {note}",)
    elif hasattr(error, "add_note"):  # Python 3.11 and later
        error.add_note(note)
    else:
        error.__notes__ = [*getattr(error, "__notes__", []), note]  # type: ignore[attr-defined]
    return error


def unsent_resend(
    record: JournalRecord, request: GenerationRequest, stopped_by: ZImageError
) -> SubmissionUncertainError:
    """Return the error of an item whose create may have a task, not sent again after a stop.

    A resend with the create's key may bill (the gateway may not honour the key), so a
    batch stopped by *stopped_by* does not send it: the item stays uncertain.
    """
    stop = type(stopped_by).__name__
    if first_sent_without_key(record.key):  # no key to offer: its first send had none
        cause = APIConnectionError(
            "an earlier version's run sent this item's create without an idempotency key, "
            f"and it may have made a task; the batch stopped sending creates ({stop}) "
            "before sending it again; a rerun sends it under a new key, which cannot find "
            "a task that first send made",
            request_sent=True,
        )
        return SubmissionUncertainError(cause)
    cause = APIConnectionError(
        f"an earlier create of this item ({record.state.value}, key {record.key}) may have "
        f"made a task, and the batch stopped sending creates ({stop}) "
        "before sending it again with its key; a rerun sends it again with that key",
        request_sent=True,
    )
    return SubmissionUncertainError(cause, idempotency_key=record.key, request=request)


def left_unsent(
    items: Sequence[JournalItem], states: Sequence[ItemState], worker_id: str, *, now: float
) -> list[int]:
    """Return the indexes a stopped worker reports as not sent, of the batch's *items*.

    Those open, not brought to an outcome by this worker already (its *states*), whose
    create was never begun (or was refused, so no task exists), and that no other
    worker holds (a lease running at Unix time *now*). An item whose create may have a
    task is never reported as not sent: the worker that holds it, or a rerun, finishes
    it.
    """
    found = []
    for item in items:
        if item.settled or states[item.index] in (ItemState.DONE, ItemState.FAILED):
            continue
        if item.record is not None and item.record.state.counts_as_spent:
            continue
        held = item.claimed_by not in (None, worker_id)
        if held and item.lease_until is not None and item.lease_until > now:
            continue
        found.append(item.index)
    return found
