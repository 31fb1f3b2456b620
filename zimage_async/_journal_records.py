"""The journal's values: the states of a paid create, its record, a batch item, resume.

See :mod:`._journal` for the whole journal; this module is pure (no I/O).
"""

from __future__ import annotations

import enum
import json
from pathlib import Path

import attrs

from ._callback_url import building_for
from ._exceptions import JournalError
from ._idempotency import validate_idempotency_key
from ._manifest import fingerprint
from ._models import GenerationRequest
from ._secret import raise_alone

__all__ = [
    "UNFINISHED",
    "JournalItem",
    "JournalRecord",
    "JournalState",
    "ResumeAction",
    "price_key",
    "request_from_json",
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
    #: The task completed, but its image links expired before its images were
    #: delivered: they are lost (it was billed). Set by :meth:`Session.recover`.
    EXPIRED = "expired"

    @property
    def counts_as_spent(self) -> bool:
        """Whether the create may have reserved credits (every state but ``rejected``)."""
        return self is not JournalState.REJECTED

    @property
    def unfinished(self) -> bool:
        """Whether the create was (or may have been) made and is not yet delivered."""
        return self in UNFINISHED

    @property
    def has_task(self) -> bool:
        """Whether a task id is known for this state (``created`` and later)."""
        return self in _WITH_TASK


UNFINISHED = frozenset(
    {
        JournalState.SUBMITTING,
        JournalState.UNCERTAIN,
        JournalState.CREATED,
        JournalState.COMPLETED,
    }
)
_WITH_TASK = frozenset(
    {
        JournalState.CREATED,
        JournalState.COMPLETED,
        JournalState.SAVED,
        JournalState.FAILED,
        JournalState.EXPIRED,
    }
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
        sent: GenerationRequest | None = None,
    ) -> JournalRecord:
        """Return the ``submitting`` record to :meth:`Journal.begin` before sending *request*.

        *sent* is the request as it goes out, if not *request* itself: with the session's
        callback URL, added because *request* names none. Its body is recorded (a resend
        sends it unchanged: a gateway answers a key sent again with another body by 409),
        while the fingerprint is *request*'s, the same whatever callback URL a session
        adds (a batch item's, or a key's, across sessions).

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
            request_json=_body(request if sent is None else sent),
            model=request.model,
            size=request.size,
            state=JournalState.SUBMITTING,
            base_url=base_url,
            expected_cost=expected_cost,
            batch_id=batch_id,
            item_index=item_index,
        )

    @classmethod
    def to_send(
        cls,
        request: GenerationRequest,
        *,
        key: str,
        base_url: str,
        expected_cost: float | None,
        batch_id: str | None,
        item_index: int | None,
        sent: GenerationRequest,
        resent: JournalRecord | None,
    ) -> JournalRecord:
        """Return the record to begin before sending *request* under *key*.

        A first send (*resent* None) records *sent*, the request as it goes out, under
        *request*'s fingerprint (:meth:`for_request`). A resend of *resent*, the create
        recorded under *key*, records that create's body unchanged (:meth:`again`),
        whatever callback URL this session has, or none: a gateway that honours keys
        answers a key sent again with another body by 409.
        """
        if resent is not None:
            return resent.again(
                base_url=base_url,
                expected_cost=expected_cost,
                batch_id=batch_id,
                item_index=item_index,
            )
        return cls.for_request(
            request,
            key=key,
            base_url=base_url,
            expected_cost=expected_cost,
            batch_id=batch_id,
            item_index=item_index,
            sent=sent,
        )

    def again(
        self,
        *,
        base_url: str,
        expected_cost: float | None = None,
        batch_id: str | None = None,
        item_index: int | None = None,
    ) -> JournalRecord:
        """Return the ``submitting`` record that sends this create again, as it was sent.

        The same key, fingerprint and body: whichever session resends it, the create
        goes out as the first send sent it, callback URL included (or left out).
        """
        return JournalRecord(
            key=self.key,
            fingerprint=self.fingerprint,
            request_json=self.request_json,
            model=self.model,
            size=self.size,
            state=JournalState.SUBMITTING,
            base_url=base_url,
            expected_cost=expected_cost,
            batch_id=batch_id,
            item_index=item_index,
        )

    def sends(self, request: GenerationRequest) -> bool:
        """Whether *request* is this create's: as asked (its fingerprint) or as sent (its body)."""
        return fingerprint(request) == self.fingerprint or _body(request) == self.request_json

    def request(self) -> GenerationRequest:
        """Rebuild the request the create was (or is to be) sent with, as it went out.

        By the rule of the session that recorded it: a task's own loopback callback URL,
        taken on a loopback API (the emulator), reads back as it was sent.
        """
        with building_for(self.base_url):
            return request_from_json(self.request_json, row=f"the create with key {self.key!r}")

    @property
    def cost(self) -> float | None:
        """``credits_reserved`` if the service reported it, else ``expected_cost``."""
        return self.credits_reserved if self.credits_reserved is not None else self.expected_cost


def _body(request: GenerationRequest) -> str:
    """Return *request*'s create-call body as the journal stores it."""
    return json.dumps(request.to_json(), sort_keys=True, ensure_ascii=False)


#: How a JSON value that is not an object is named (any other is a number).
_JSON_KINDS: dict[type, str] = {list: "array", str: "string", bool: "boolean", type(None): "null"}


def request_from_json(text: str, *, row: str = "a row") -> GenerationRequest:
    """Rebuild a :class:`GenerationRequest` from the create-call body stored as *text*.

    Raises :class:`JournalError` naming *row* if *text* is not a request.
    """
    fields = ("prompt", "size", "seed", "nsfw_check", "callback_url", "model")
    body: object = None
    try:  # no text of it is quoted, nor kept in a frame: it may hold a callback's token
        body = json.loads(text)  # its errors give a position, no text
        if not isinstance(body, dict):
            raise TypeError(f"it is a JSON {_JSON_KINDS.get(type(body), 'number')}, not an object")
        return GenerationRequest(**{name: body[name] for name in fields if name in body})
    except (ValueError, TypeError) as exc:
        problem = str(exc)  # the rule broken, naming the field (never a callback's query)
    del text, body
    return raise_alone(
        JournalError(
            f"the journal holds {row} whose request cannot be read ({problem}); "
            "was it changed by hand?"
        )
    )


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
    #: Set by :meth:`Journal.claim` only: the worker whose lease on the item had run out
    #: when this claim took it (it died or stalled), or None when the item was free
    #: (never claimed, or given back in order by a worker that stopped).
    taken_from: str | None = None

    def request(self) -> GenerationRequest:
        """Rebuild the item's request."""
        return request_from_json(
            self.request_json, row=f"item {self.index} of batch {self.batch_id!r}"
        )

    @property
    def state(self) -> JournalState | None:
        """The state of the item's create, or None if it was never begun."""
        return None if self.record is None else self.record.state


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
    #: The task failed, or its links expired undelivered: send a *new* create (a new
    #: key), as asked.
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
    resubmit_expired: bool = False,
    resend_submitting: bool = False,
    files_present: bool = True,
) -> ResumeAction:
    """Decide how to resume *record* (None: never begun) at Unix time *now*.

    Nothing is ever sent that could make a second paid task for a create that may have
    one: a create whose task id is unknown is resent only with its own key, and only
    with *resubmit_uncertain*; a failed task is replaced (new key) only with
    *resubmit_failed*, and a completed task whose links expired before its images were
    delivered only with *resubmit_expired*. *resend_submitting* resends a create left
    ``submitting`` (its process died before any answer was recorded) with its own key,
    as batch workers do when they take an item over: where the gateway honours keys
    that returns the task the first send made, if any. *files_present* says whether a
    ``saved`` record's files are all still there (if not, they are saved again while
    the links are valid, by task id; a ``saved`` record is never sent again).

    ==========================================  =====================================
    the create is                               the action
    ==========================================  =====================================
    never begun, or ``rejected``                ``SUBMIT`` (with the record's key)
    ``saved``, every file present               ``DONE``: report it, send nothing
    ``failed``                                  ``REPORT_FAILED``; ``SUBMIT_NEW`` (a
                                                new key) with *resubmit_failed*
    ``submitting``                              ``RESUBMIT`` (same key) with
                                                *resend_submitting* or
                                                *resubmit_uncertain*, else
                                                ``REPORT_UNCERTAIN``
    ``uncertain``                               ``RESUBMIT`` (same key) with
                                                *resubmit_uncertain*, else
                                                ``REPORT_UNCERTAIN``
    ``expired``, or completed with links past   ``EXPIRED``; ``SUBMIT_NEW`` with
    their lifetime                              *resubmit_expired*
    ``saved``, files gone, links past their     ``EXPIRED`` (a delivered create is
    lifetime                                    never sent again)
    any other with a task id                    ``WAIT``: poll it by id, then save
    ==========================================  =====================================

    >>> resume_action(None, now=0.0, link_ttl=86400.0)
    <ResumeAction.SUBMIT: 'submit'>
    """
    if record is None or record.state is JournalState.REJECTED:
        return ResumeAction.SUBMIT
    state = record.state
    if state is JournalState.FAILED:
        return ResumeAction.SUBMIT_NEW if resubmit_failed else ResumeAction.REPORT_FAILED
    if record.task_id is None:  # submitting or uncertain
        resend = resubmit_uncertain or (resend_submitting and state is JournalState.SUBMITTING)
        return ResumeAction.RESUBMIT if resend else ResumeAction.REPORT_UNCERTAIN
    if state is JournalState.SAVED and files_present:
        return ResumeAction.DONE
    lapsed = record.completed_at is not None and now > record.completed_at + link_ttl
    if lapsed or state is JournalState.EXPIRED:
        delivered = state is JournalState.SAVED  # never paid for twice
        return (
            ResumeAction.SUBMIT_NEW if resubmit_expired and not delivered else ResumeAction.EXPIRED
        )
    return ResumeAction.WAIT
