"""The journal: one durable record for every paid create, single or in a batch.

A :class:`JournalRecord` is written (state ``submitting``, with the create's
idempotency key, the request and its fingerprint, and its expected cost) *before* the
create request is sent, and rewritten after each change of state. After a restart the
journal says which creates are unfinished and how to resume each, how many credits are
reserved, and, for batches shared by several workers, which worker holds which item.

This module is the pure part: the states, the values, the decisions (spend check,
expected cost, resume action) and the abstract store API. The stores are
:mod:`._journal_sqlite` (a file, the default) and :mod:`._journal_postgres`
(``postgresql://`` URLs, several workers on one batch); :func:`open_journal` picks one.

Credits: a record costs its ``credits_reserved`` once the service has reported it, else
its ``expected_cost``, else the last ``credits_reserved`` the journal has seen for the
same model and size, else nothing. A ``rejected`` create costs nothing; every other
state counts, ``submitting`` and ``uncertain`` included (a task may have been billed).
"""

from __future__ import annotations

import abc
import enum
import json
import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

import attrs

from ._exceptions import JournalError, SpendLimitError
from ._idempotency import validate_idempotency_key
from ._manifest import fingerprint
from ._models import GenerationRequest

__all__ = [
    "Journal",
    "JournalItem",
    "JournalRecord",
    "JournalState",
    "ResumeAction",
    "Spend",
    "SpendGroup",
    "SpendLimit",
    "begin_refusal",
    "check_spend",
    "expected_cost",
    "open_journal",
    "price_key",
    "reserved_credits",
    "resume_action",
]


class JournalState(enum.Enum):
    """Where one paid create stands; the values are what the journal stores."""

    #: The create is being sent; if the process dies here a task may exist, id unknown.
    SUBMITTING = "submitting"
    #: The create failed ambiguously: a task may exist; its key can resend it safely.
    UNCERTAIN = "uncertain"
    #: The service certainly made no task (a 4xx refusal, a connection never opened).
    REJECTED = "rejected"
    #: The task id is known; the task is being waited for.
    CREATED = "created"
    #: The task finished; its image links are valid from ``completed_at`` for 24 h.
    COMPLETED = "completed"
    #: The images were delivered: written to ``paths``, or handed to the caller.
    SAVED = "saved"
    #: The task failed (``error_code``, ``error_message``); it was billed.
    FAILED = "failed"

    @property
    def counts_as_spent(self) -> bool:
        """Whether the create may have reserved credits (every state but ``rejected``)."""
        return self is not JournalState.REJECTED

    @property
    def unfinished(self) -> bool:
        """Whether the create was (or may have been) made and is not yet delivered."""
        return self in _UNFINISHED

    @property
    def has_task(self) -> bool:
        """Whether a task id is known for this state (``created`` and later)."""
        return self in _WITH_TASK


_UNFINISHED = frozenset(
    {
        JournalState.SUBMITTING,
        JournalState.UNCERTAIN,
        JournalState.CREATED,
        JournalState.COMPLETED,
    }
)
_WITH_TASK = frozenset(
    {JournalState.CREATED, JournalState.COMPLETED, JournalState.SAVED, JournalState.FAILED}
)


def price_key(model: str, size: str | None) -> tuple[str, str]:
    """Return the key under which the journal keeps a price: ``(model, size or "")``."""
    return (model, size or "")


@attrs.frozen(kw_only=True)
class JournalRecord:
    """One paid create as the journal remembers it, keyed by its idempotency key."""

    #: The create's ``Idempotency-Key``; unique in the journal.
    key: str
    fingerprint: str = attrs.field(repr=False)
    #: The create-call body as JSON text.
    request_json: str = attrs.field(repr=False)
    model: str
    size: str | None
    state: JournalState
    base_url: str
    #: The credits this create was expected to reserve when it was begun, if known.
    expected_cost: float | None = None
    #: The credits the service reported (``usage.credits_reserved``), once known.
    credits_reserved: float | None = None
    task_id: str | None = None
    completed_at: float | None = None
    paths: tuple[Path, ...] = ()
    error_code: str | None = None
    error_message: str | None = attrs.field(default=None, repr=False)
    batch_id: str | None = None
    item_index: int | None = None
    #: Unix times, set by the store.
    created_at: float = attrs.field(default=0.0, repr=False)
    updated_at: float = attrs.field(default=0.0, repr=False)

    @classmethod
    def for_request(
        cls,
        request: GenerationRequest,
        *,
        key: str,
        base_url: str,
        expected_cost: float | None = None,
        batch_id: str | None = None,
        item_index: int | None = None,
    ) -> JournalRecord:
        """Return the ``submitting`` record to :meth:`Journal.begin` before sending *request*.

        >>> record = JournalRecord.for_request(
        ...     GenerationRequest(prompt="a cat", size="16:9"),
        ...     key="order-4711-image-0001",
        ...     base_url="https://api.example",
        ... )
        >>> record.state, record.model, record.size
        (<JournalState.SUBMITTING: 'submitting'>, 'z-image-turbo', '16:9')
        """
        return cls(
            key=validate_idempotency_key(key),
            fingerprint=fingerprint(request),
            request_json=json.dumps(request.to_json(), sort_keys=True, ensure_ascii=False),
            model=request.model,
            size=request.size,
            state=JournalState.SUBMITTING,
            base_url=base_url,
            expected_cost=expected_cost,
            batch_id=batch_id,
            item_index=item_index,
        )

    def request(self) -> GenerationRequest:
        """Rebuild the request the create was (or is to be) sent with."""
        return request_from_json(self.request_json)

    @property
    def cost(self) -> float | None:
        """``credits_reserved`` if the service reported it, else ``expected_cost``."""
        return self.credits_reserved if self.credits_reserved is not None else self.expected_cost


def request_from_json(text: str) -> GenerationRequest:
    """Rebuild a :class:`GenerationRequest` from the create-call body stored as *text*."""
    body = json.loads(text)
    fields = ("prompt", "size", "seed", "nsfw_check", "callback_url", "model")
    return GenerationRequest(**{name: body[name] for name in fields if name in body})


@attrs.frozen(kw_only=True)
class JournalItem:
    """One item of a batch kept in the journal, with its lease and its current create."""

    batch_id: str
    index: int
    fingerprint: str = attrs.field(repr=False)
    request_json: str = attrs.field(repr=False)
    #: The key the item's create is sent with; kept across takeovers and resubmissions.
    key: str
    #: The worker holding the item, and until when (Unix time, the store's clock).
    claimed_by: str | None = None
    lease_until: float | None = None
    #: Whether the item has reached its outcome for this run (claimed no more).
    settled: bool = False
    #: The create under ``key``, once it has been begun.
    record: JournalRecord | None = None

    def request(self) -> GenerationRequest:
        """Rebuild the item's request."""
        return request_from_json(self.request_json)

    @property
    def state(self) -> JournalState | None:
        """The state of the item's create, or None if it was never begun."""
        return None if self.record is None else self.record.state


@attrs.frozen(kw_only=True)
class SpendLimit:
    """At most *max_credits* reserved in the whole journal, or in one batch.

    >>> SpendLimit(max_credits=-1)
    Traceback (most recent call last):
    ...
    ValueError: max_credits must be a number of credits >= 0, got -1
    """

    max_credits: float = attrs.field()
    #: The batch the limit belongs to; None for every create in the journal.
    batch_id: str | None = None

    @max_credits.validator
    def _check(self, _attribute: object, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"max_credits must be a number of credits >= 0, got {value!r}")


@attrs.frozen(kw_only=True)
class SpendGroup:
    """Creates of one model and size that count as spent: what is known, what is not."""

    model: str
    size: str | None
    #: The sum of the costs known for them (``credits_reserved`` or ``expected_cost``).
    known_credits: float
    #: How many of them have no known cost yet.
    unpriced: int = 0


@attrs.frozen(kw_only=True)
class Spend:
    """What the journal (or one batch in it) has reserved."""

    #: Credits reserved, uncertain creates included; unpriced creates at the last price.
    credits: float
    #: Creates that count as spent (every state but ``rejected``).
    creates: int
    #: Of those, the ones in ``submitting`` or ``uncertain`` (a task may or may not exist).
    uncertain: int
    #: Of those, the ones whose cost is still unknown (no price seen for their model/size).
    unpriced: int


def reserved_credits(
    groups: Iterable[SpendGroup], prices: Mapping[tuple[str, str], float]
) -> tuple[float, int]:
    """Return the credits *groups* reserve and how many creates in them are unpriced.

    A create without a known cost counts at the last price seen for its model and size
    (*prices*, by :func:`price_key`), or as 0 credits while none has been seen.

    >>> reserved_credits(
    ...     [SpendGroup(model="m", size=None, known_credits=3.0, unpriced=2)], {("m", ""): 1.5}
    ... )
    (6.0, 0)
    >>> reserved_credits([SpendGroup(model="m", size="1:1", known_credits=0.0, unpriced=2)], {})
    (0.0, 2)
    """
    total = 0.0
    unpriced = 0
    for group in groups:
        total += group.known_credits
        price = prices.get(price_key(group.model, group.size))
        if price is None:
            unpriced += group.unpriced
        else:
            total += price * group.unpriced
    return total, unpriced


def expected_cost(*, given: float | None, last_price: float | None) -> float | None:
    """Return the expected cost of a create: *given* by the caller, else the last price.

    The last price is the ``credits_reserved`` the journal last saw for the same model
    and size. None means unknown: the spend check counts such a create as 0 credits
    until the first task of that model and size reports its cost (and from then on at
    that cost, in-flight ones included). Give a cost to have the first ones checked too.

    >>> expected_cost(given=None, last_price=2.0)
    2.0
    >>> expected_cost(given=0.5, last_price=2.0)
    0.5
    >>> expected_cost(given=None, last_price=None) is None
    True
    """
    if given is not None:
        if isinstance(given, bool) or not given >= 0:
            raise ValueError(f"a create's cost must be a number of credits >= 0, got {given!r}")
        return float(given)
    return last_price


def check_spend(
    limit: SpendLimit, *, reserved: float, expected: float | None
) -> SpendLimitError | None:
    """Return the error refusing a create of cost *expected*, or None if it fits *limit*.

    *reserved* is what the limit's scope already counts, uncertain creates included. An
    unknown (None) or zero cost is refused only once the limit is reached.

    >>> check_spend(SpendLimit(max_credits=10), reserved=9.0, expected=1.0) is None
    True
    >>> check_spend(SpendLimit(max_credits=10), reserved=9.5, expected=1.0)  # doctest: +ELLIPSIS
    SpendLimitError('creating this task would reserve 1 credit(s) on top of ...')
    >>> check_spend(SpendLimit(max_credits=10), reserved=10.0, expected=None) is not None
    True
    """
    cost = expected or 0.0
    fits = reserved + cost <= limit.max_credits if cost else reserved < limit.max_credits
    if fits:
        return None
    return SpendLimitError(
        max_credits=limit.max_credits, reserved=reserved, expected=cost, batch_id=limit.batch_id
    )


def begin_refusal(existing: JournalRecord | None, record: JournalRecord) -> str | None:
    """Return why *record* may not be begun over *existing* (same key), or None.

    A key may be begun again (sent again, with the same key) while its create has no
    known task: ``submitting``, ``uncertain`` or ``rejected``. A key that already has a
    task is resumed by task id, never sent again; a key is never reused for another
    request.
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
    return None


class ResumeAction(enum.Enum):
    """What to do with a journal record after a restart (see :func:`resume_action`)."""

    #: Never sent, or certainly refused: send it (with the record's key).
    SUBMIT = "submit"
    #: A task may exist but its id is unknown: send it again with the *same* key.
    RESUBMIT = "resubmit"
    #: The task id is known: wait for it by id, then deliver (save) its images.
    WAIT = "wait"
    #: Delivered already: report the paths.
    DONE = "done"
    #: A task may exist, id unknown, and resubmitting was not asked for: report it.
    REPORT_UNCERTAIN = "report_uncertain"
    #: The task failed and resubmitting was not asked for: report the failure.
    REPORT_FAILED = "report_failed"
    #: The task failed: send a *new* create (a new key), as asked.
    SUBMIT_NEW = "submit_new"
    #: The task completed but its image links expired before delivery: report it.
    EXPIRED = "expired"


def resume_action(
    record: JournalRecord | None,
    *,
    now: float,
    link_ttl: float,
    resubmit_uncertain: bool = False,
    resubmit_failed: bool = False,
    files_present: bool = True,
) -> ResumeAction:
    """Decide how to resume *record* (None: never begun) at Unix time *now*.

    Nothing is ever sent that could make a second paid task for a create that may have
    one: a create whose task id is unknown is resent only with its own key, and only
    with *resubmit_uncertain*; a failed task is replaced (new key) only with
    *resubmit_failed*. *files_present* says whether a ``saved`` record's files are all
    still there (if not, they are saved again while the links are valid).

    >>> resume_action(None, now=0.0, link_ttl=86400.0)
    <ResumeAction.SUBMIT: 'submit'>
    """
    if record is None or record.state is JournalState.REJECTED:
        return ResumeAction.SUBMIT
    state = record.state
    if state is JournalState.FAILED:
        return ResumeAction.SUBMIT_NEW if resubmit_failed else ResumeAction.REPORT_FAILED
    if record.task_id is None:  # submitting or uncertain
        return ResumeAction.RESUBMIT if resubmit_uncertain else ResumeAction.REPORT_UNCERTAIN
    if state is JournalState.SAVED and files_present:
        return ResumeAction.DONE
    if record.completed_at is not None and now > record.completed_at + link_ttl:
        return ResumeAction.EXPIRED
    return ResumeAction.WAIT


#: The columns of a create, in the order :func:`record_from_row` reads them.
RECORD_COLUMNS = (
    "key, fingerprint, request, model, size, state, base_url, expected_cost,"
    " credits_reserved, task_id, completed_at, paths, error_code, error_message, batch_id,"
    " item_index, created_at, updated_at"
)
#: The columns of a batch item, in the order :func:`item_from_row` reads them.
ITEM_COLUMNS = "batch_id, idx, fingerprint, request, key, claimed_by, lease_until, settled"


def _float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def record_from_row(row: Sequence[object]) -> JournalRecord:
    """Build a record from a row of :data:`RECORD_COLUMNS` (either store's)."""
    paths = json.loads(str(row[11]))
    return JournalRecord(
        key=str(row[0]),
        fingerprint=str(row[1]),
        request_json=str(row[2]),
        model=str(row[3]),
        size=str(row[4]) or None,
        state=JournalState(row[5]),
        base_url=str(row[6]),
        expected_cost=_float(row[7]),
        credits_reserved=_float(row[8]),
        task_id=None if row[9] is None else str(row[9]),
        completed_at=_float(row[10]),
        paths=tuple(Path(p) for p in paths),
        error_code=None if row[12] is None else str(row[12]),
        error_message=None if row[13] is None else str(row[13]),
        batch_id=None if row[14] is None else str(row[14]),
        item_index=None if row[15] is None else int(row[15]),  # type: ignore[call-overload]
        created_at=float(row[16]),  # type: ignore[arg-type]
        updated_at=float(row[17]),  # type: ignore[arg-type]
    )


def item_from_row(row: Sequence[object], record: JournalRecord | None) -> JournalItem:
    """Build an item from a row of :data:`ITEM_COLUMNS` and the item's current create."""
    return JournalItem(
        batch_id=str(row[0]),
        index=int(row[1]),  # type: ignore[call-overload]
        fingerprint=str(row[2]),
        request_json=str(row[3]),
        key=str(row[4]),
        claimed_by=None if row[5] is None else str(row[5]),
        lease_until=_float(row[6]),
        settled=bool(row[7]),
        record=record,
    )


def summarize_spend(
    rows: Iterable[Sequence[object]], prices: Mapping[tuple[str, str], float]
) -> Spend:
    """Build a :class:`Spend` from per-(model, size) rows of the stores' spend query.

    Each row: model, size, sum of known costs, count of unpriced creates, count of
    creates, count of uncertain ones.
    """
    groups = []
    creates = uncertain = 0
    for model, size, known, unpriced, count, maybe in rows:
        groups.append(
            SpendGroup(
                model=str(model),
                size=str(size) or None,
                known_credits=float(known or 0),  # type: ignore[arg-type]
                unpriced=int(unpriced or 0),  # type: ignore[call-overload]
            )
        )
        creates += int(count or 0)  # type: ignore[call-overload]
        uncertain += int(maybe or 0)  # type: ignore[call-overload]
    credits, unpriced_total = reserved_credits(groups, prices)
    return Spend(credits=credits, creates=creates, uncertain=uncertain, unpriced=unpriced_total)


def changed_items(
    stored: Mapping[int, tuple[str, JournalState | None]],
    requests: Sequence[GenerationRequest],
) -> tuple[list[int], list[int]]:
    """Split stored items whose request differs from *requests* by whether it may be changed.

    *stored* maps each index to the stored fingerprint and the state of the item's
    create. Returns (indexes that may take the new request, indexes that may not because
    their create may have a task; an index past the end of *requests* counts as changed).
    """
    replace, refuse = [], []
    for index, (stored_fingerprint, state) in sorted(stored.items()):
        if index < len(requests) and fingerprint(requests[index]) == stored_fingerprint:
            continue
        if state is None or state is JournalState.REJECTED:
            if index < len(requests):
                replace.append(index)
        else:
            refuse.append(index)
    return replace, refuse


def refuse_changed(location: str, batch_id: str, refused: Sequence[int]) -> JournalError:
    """Return the error for batch items whose request changed after their create was sent."""
    shown = ", ".join(str(i) for i in refused[:10]) + (" ..." if len(refused) > 10 else "")
    return JournalError(
        f"the journal {location} holds creates for {len(refused)} item(s) of batch "
        f"{batch_id!r} whose request has changed or is gone (item index {shown}); a task "
        "is never mixed with another request - restore those items, or use another batch id"
    )


def lease_refusal(
    record: JournalRecord,
    worker_id: str,
    claimed_by: object,
    lease_until: object,
    key: object,
    now: float,
) -> JournalError | None:
    """Return the error refusing *worker_id* to begin *record* for a batch item, or None."""
    if claimed_by != worker_id or lease_until is None or float(lease_until) <= now:  # type: ignore[arg-type]
        return JournalError(
            f"worker {worker_id!r} does not hold the lease on item {record.item_index} of "
            f"batch {record.batch_id!r} (held by {claimed_by!r}); nothing was sent - claim "
            "the item again"
        )
    if key != record.key:
        return JournalError(
            f"item {record.item_index} of batch {record.batch_id!r} is sent with key "
            f"{key!r}, not {record.key!r}; begin the item's create with the item's key"
        )
    return None


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
        journal already holds is begun again only as :func:`begin_refusal` allows, else
        :class:`JournalError`. With *worker_id*, a batch item's record is refused
        (:class:`JournalError`) unless that worker holds the item's lease.
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
        the journal has no record under *key*.
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
    ) -> list[JournalRecord]:
        """Return the records (of one batch, in some states), oldest first."""

    async def unfinished(self, *, batch_id: str | None = None) -> list[JournalRecord]:
        """Return the creates made or maybe made and not yet delivered, oldest first.

        That is ``submitting`` and ``uncertain`` creates (with their keys, to resend
        them safely) and ``created`` and ``completed`` ones (with their task ids).
        """
        return await self.records(batch_id=batch_id, states=_UNFINISHED)

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
    ) -> int:
        """Make the batch's settled items whose create is in *states* claimable again.

        A ``failed`` item gets a new key (its next create is a new task); any other
        keeps its key, so resending it returns the original task where keys are
        honoured. Returns how many items were reopened.
        """

    @abc.abstractmethod
    async def claim(
        self, batch_id: str, worker_id: str, *, lease_seconds: float, limit: int
    ) -> list[JournalItem]:
        """Lease up to *limit* open items to *worker_id* for *lease_seconds*; return them.

        An item can be claimed while it is not settled (see :meth:`release`) and nobody
        holds it, or its lease has run out (the store's clock). Each item is held by one
        worker at a time; an item whose holder died is taken over with its key and its
        create's state and task id, for :func:`resume_action` to decide what to do.
        Settled items are claimed again only after :meth:`reopen`.
        """

    @abc.abstractmethod
    async def renew(self, batch_id: str, worker_id: str, *, lease_seconds: float) -> int:
        """Extend every lease *worker_id* still holds in the batch; return how many."""

    @abc.abstractmethod
    async def release(self, batch_id: str, worker_id: str, index: int, *, settled: bool) -> bool:
        """Give back the item; *settled* marks its outcome reached (not claimed again).

        Returns False (and changes nothing) if *worker_id* no longer held the item.
        """

    @abc.abstractmethod
    async def items(self, batch_id: str) -> list[JournalItem]:
        """Return the batch's items by index, with their leases and current creates."""


def check_lease_seconds(lease_seconds: float) -> float:
    """Return *lease_seconds* if usable (a number >= 0), else raise ValueError."""
    if isinstance(lease_seconds, bool) or not lease_seconds >= 0:
        raise ValueError(f"lease_seconds must be a number of seconds >= 0, got {lease_seconds!r}")
    return float(lease_seconds)


def is_postgres_url(target: str | os.PathLike[str]) -> bool:
    """Whether *target* names a PostgreSQL database rather than a file."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


async def open_journal(target: str | os.PathLike[str]) -> Journal:
    """Open (creating if needed) the journal at *target*: a file path or a PostgreSQL URL.

    A path opens an SQLite file (an existing batch manifest is taken over: its items
    join the journal under the manifest's batch id). A ``postgresql://`` URL needs the
    ``postgres`` extra (asyncpg). Raises
    :class:`JournalError` if the journal cannot be opened.
    """
    if is_postgres_url(target):
        from ._journal_postgres import PostgresJournal

        return await PostgresJournal.open(str(target))
    if isinstance(target, str) and "://" in target:
        raise JournalError(
            f"the journal must be a file path or a postgresql:// URL, not {target.split('://')[0]}://"
        )
    from ._journal_sqlite import SqliteJournal

    return await SqliteJournal.open(Path(target))
