"""How a journal record may change: which begins and updates a store refuses or keeps.

Pure (no I/O); both stores call these inside the transaction that writes the change.

- :func:`begin_refusal`: whether a key may be begun (sent) again. Never for another
  request, never once it has a task, and not while its create may still be in flight
  in another session (:func:`in_flight`).
- :func:`update_refusal`: a late answer that would take the task away, replace it, or
  move the create back to ``created`` is refused.
- :func:`passed_already`: a state the record has gone past (a handle waited on again
  after its images were saved reports ``completed``) changes nothing. A record with a
  task moves forward only: ``created``, ``completed``, ``expired``, then ``saved`` or
  ``failed``, which are final.
"""

from __future__ import annotations

from ._journal_records import JournalRecord, JournalState

__all__ = [
    "IN_FLIGHT_WINDOW",
    "begin_refusal",
    "in_flight",
    "passed_already",
    "unrecorded_task",
    "update_refusal",
]

#: Seconds after it was begun during which a ``submitting`` create may still be in
#: flight in a live session (30 minutes): longer than a create can take with the
#: default settings - at most 5 tries (``RetryPolicy.max_attempts``) of at most 120 s
#: each (``Session(total_timeout=...)``), at most 120 s apart (``max_retry_after``),
#: 20 minutes in all - with room for a wait for a connection.
IN_FLIGHT_WINDOW = 1800.0


def in_flight(record: JournalRecord, *, now: float) -> bool:
    """Whether *record*'s create may still be being sent by a live session at *now*.

    A ``submitting`` record begun (or last begun: its ``updated_at``, by the journal's
    clock) less than :data:`IN_FLIGHT_WINDOW` ago: plain records name no sender, so
    one that young is taken as in flight, and one older as left by a process that
    died. An ``uncertain`` one is not (its sender gave up), nor a batch item (its
    lease says whether a worker holds it).
    """
    return (
        record.state is JournalState.SUBMITTING
        and record.batch_id is None
        and now - record.updated_at < IN_FLIGHT_WINDOW
    )


def begin_refusal(
    existing: JournalRecord | None, record: JournalRecord, *, now: float | None = None
) -> str | None:
    """Return why *record* may not be begun over *existing* (same key), or None.

    A key may be begun again (sent again, with the same key) while its create has no
    known task: ``submitting``, ``uncertain`` or ``rejected``. A key that already has a
    task is resumed by task id, never sent again; a key is never reused for another
    request. With *now* (the journal's clock), a create that may still be in flight in
    another session (:func:`in_flight`) is not begun again: where the gateway ignores
    keys, that would pay for a second task.
    """
    if existing is None:
        return None
    if existing.fingerprint != record.fingerprint:
        return (
            f"the idempotency key {record.key!r} was used for another request; send this "
            "request with a new key"
        )
    if existing.state.has_task:
        return (
            f"the create with key {record.key!r} already made task {existing.task_id} "
            f"({existing.state.value}); resume that task by its id instead of sending again"
        )
    if existing.state is not JournalState.REJECTED and existing.base_url != record.base_url:
        return (
            f"the create with key {record.key!r} was sent to {existing.base_url} "
            f"({existing.state.value}) and may have made a task there; sending it to "
            f"{record.base_url} would pay for a second task - resume it with a session "
            f"on {existing.base_url}"
        )
    if now is not None and in_flight(existing, now=now):
        begun = max(0.0, now - existing.updated_at)
        return (
            f"the create with key {record.key!r} is being sent by another session (begun "
            f"{begun:.0f} s ago, not answered yet); sending it again could pay for a second "
            f"task - wait for its answer, or, if the process sending it stopped, send it "
            f"again after {IN_FLIGHT_WINDOW - begun:.0f} s"
        )
    return None


def update_refusal(
    existing: JournalRecord, state: JournalState, task_id: str | None = None
) -> str | None:
    """Return why *existing* may not be moved to *state* (with *task_id*, if given), or None.

    A create whose task id is recorded never goes back to a state that says no task is
    known (``submitting``, ``uncertain``, ``rejected``), never takes another task id,
    and never goes back to ``created`` from a later state: each is a late answer of an
    earlier send (a worker whose item was taken over) writing over the task the item's
    new holder recorded.
    """
    recorded = existing.task_id
    if recorded is None:
        return None
    if task_id is not None and task_id != recorded:
        return (
            f"the create with key {existing.key!r} already has task {recorded} "
            f"({existing.state.value}); task {task_id} is not recorded over it"
        )
    backwards = state is JournalState.CREATED and existing.state not in _CREATED_OR_BEFORE
    if state not in _NO_TASK and not backwards:
        return None
    return (
        f"the create with key {existing.key!r} already has task {recorded} "
        f"({existing.state.value}); it is not moved back to {state.value}"
    )


def passed_already(existing: JournalRecord, state: JournalState) -> bool:
    """Whether *existing* has gone past the outcome *state*: then the update changes nothing.

    Outcomes are reported late or again: a handle waited on again after its images were
    saved reports ``completed``, a second download of a failed task ``failed``. A record
    with a task moves forward only (:data:`_PROGRESS`): ``saved`` and ``failed`` are
    final, and ``expired`` gives way only to them (images delivered after all). The
    same state again is written (``saved`` again with the paths of a new save).
    Backward moves to ``created`` and to states without a task are refused
    (:func:`update_refusal`), not kept.
    """
    if existing.task_id is None or state is existing.state:
        return False
    before, after = _PROGRESS.get(existing.state), _PROGRESS.get(state)
    return before is not None and after is not None and after <= before


def unrecorded_task(failure: object, task_id: str, key: str) -> str:
    """Return the message of a journal write *failure* that left billed *task_id* unrecorded."""
    return (
        f"{failure}; task {task_id} (key {key}) was created and is billed but could not "
        f"be recorded - collect it with `zimage task {task_id} -o DIR` or "
        f"session.task({task_id!r}), do not submit it again"
    )


_NO_TASK = frozenset({JournalState.SUBMITTING, JournalState.UNCERTAIN, JournalState.REJECTED})
_CREATED_OR_BEFORE = _NO_TASK | {JournalState.CREATED}
#: How far a create with a task has got; a record never moves to a lower rank.
_PROGRESS = {
    JournalState.CREATED: 1,
    JournalState.COMPLETED: 2,
    JournalState.EXPIRED: 3,
    JournalState.SAVED: 4,
    JournalState.FAILED: 4,
}
