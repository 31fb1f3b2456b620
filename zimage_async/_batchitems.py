"""The values of a batch: items, their states and outcomes, and the checks on its input.

:mod:`._batch` runs batches; this module holds what they are made of and report.
"""

from __future__ import annotations

import enum
import time
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path

import attrs

from ._batchoptions import BatchOptions
from ._exceptions import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    ImageExpiredError,
    InvalidRequestError,
    NoResultsError,
    PermissionDeniedError,
    SubmissionUncertainError,
    TaskFailedError,
    ZImageError,
)
from ._handle import TaskHandle
from ._idempotency import first_sent_without_key
from ._journal_records import JournalRecord, ResumeAction
from ._journaling import Bookkeeper
from ._models import GenerationRequest, GenerationResult
from ._quoting import a_type

__all__ = [
    "NO_RESULTS",
    "BatchItem",
    "BatchProgress",
    "BatchServices",
    "BatchStats",
    "ItemState",
    "Stopwatch",
    "build_request",
    "check_requests",
    "reported_error",
    "stop_error",
]

#: The journal's error code for a task that completed without any image link.
NO_RESULTS = "completed_without_results"


class ItemState(enum.Enum):
    """Where one item of a running batch stands."""

    QUEUED = "queued"
    SUBMITTING = "submitting"
    PENDING = "pending"
    PROCESSING = "processing"
    DOWNLOADING = "downloading"
    DONE = "done"
    FAILED = "failed"


@attrs.frozen(kw_only=True)
class BatchItem:
    """The outcome of one batch item: its paths or result, or the error that stopped it.

    ``index`` is the item's position in the requests given to
    :meth:`Session.generate_many`. ``task_id`` is set once a task exists (also on
    failure). With ``output_dir``, ``paths`` lists the files written; without it,
    ``result`` holds the downloaded images. ``error`` is the :class:`ZImageError` that
    ended this item (then ``ok`` is false). ``resumed`` is true when the task was
    created earlier: by an earlier run, or by another worker of the batch that this one
    took the item over from, as the journal recorded it. ``sent`` is false when the
    batch stopped (:attr:`Batch.stopped_by`) before this item's create was sent.
    """

    index: int
    request: GenerationRequest
    task_id: str | None = None
    paths: tuple[Path, ...] = ()
    result: GenerationResult | None = attrs.field(default=None, repr=False)
    error: ZImageError | None = None
    resumed: bool = False
    #: False when the item's create was never sent because the batch stopped first
    #: (an authentication or permission refusal, or a spend limit).
    sent: bool = True

    @property
    def ok(self) -> bool:
        """``True`` when the item's images were delivered."""
        return self.error is None


@attrs.frozen(kw_only=True)
class BatchProgress:
    """A snapshot of a batch: how many items are in each :class:`ItemState`."""

    total: int
    counts: Mapping[ItemState, int]
    #: Items finished in this run (resumed-and-saved ones included).
    finished: int
    #: Seconds since the batch started; once its work ended or it was closed, its duration.
    elapsed: float
    #: Items of the whole batch settled so far, by any worker, as last read from the
    #: journal (every few seconds while the batch runs).
    batch_settled: int = 0

    def count(self, state: ItemState) -> int:
        """How many items are in *state*."""
        return self.counts.get(state, 0)


@attrs.define
class Stopwatch:
    """A batch's duration: from its start to the end of its work, or its close."""

    started: float | None = None
    stopped: float | None = None

    def start(self) -> None:
        """Start the watch (the batch begins its work)."""
        self.started = time.monotonic()

    def stop(self) -> None:
        """Stop the watch, if it runs: the batch's work ended, or the batch was closed."""
        if self.started is not None and self.stopped is None:
            self.stopped = time.monotonic()

    @property
    def elapsed(self) -> float:
        """Seconds from the start to the stop, or to now while it runs (0 before it starts)."""
        if self.started is None:
            return 0.0
        return (self.stopped or time.monotonic()) - self.started


@attrs.frozen(kw_only=True)
class BatchStats:
    """What one worker (this process's :class:`Batch`) did with the batch.

    ``claimed`` items were leased to it; of those, ``taken_over`` had a create begun
    earlier and unfinished (by a worker that died or was stopped, or an earlier run),
    which it resumed by task id or resent with the item's original key. ``submitted``
    counts the creates it sent (a resend with the same key included), ``resumed`` the
    tasks it waited for by id; ``saved``, ``failed`` and ``not_sent`` its outcomes, and
    ``reported`` the items settled before it started, reported from the journal.
    """

    worker_id: str
    claimed: int = 0
    taken_over: int = 0
    submitted: int = 0
    resumed: int = 0
    saved: int = 0
    failed: int = 0
    not_sent: int = 0
    reported: int = 0
    #: Seconds since the worker started; once its work ended or it was closed, its duration.
    elapsed: float = 0.0

    def to_json(self) -> dict[str, object]:
        """Return the figures as a JSON-ready dict (``zimage batch --json`` prints it)."""
        return attrs.asdict(self) | {"elapsed": round(self.elapsed, 3)}


@attrs.frozen(kw_only=True)
class BatchServices:
    """What a batch needs of its session (and no more): made by the session."""

    #: Send the create call exactly as given: ``send(request, idempotency_key)``; nothing
    #: journaled.
    send: Callable[[GenerationRequest, str], Awaitable[TaskHandle]]
    #: A handle for an existing task id.
    task: Callable[..., TaskHandle]
    #: Wait until the session's rate gate lets a create go.
    gate_wait: Callable[[], Awaitable[None]]
    #: Where the tasks live (a journal's unfinished tasks must live there too).
    base_url: str
    #: Seconds the image links stay valid after completion.
    link_ttl: float
    #: The session's journal and spend limit, if it keeps one.
    book: Bookkeeper | None = None
    #: A request as its first send goes out (with the session's callback URL, if any).
    outgoing: Callable[[GenerationRequest], GenerationRequest] = lambda request: request

    def record_create(
        self,
        request: GenerationRequest,
        key: str,
        index: int,
        options: BatchOptions,
        resent: JournalRecord | None,
    ) -> JournalRecord:
        """Return the record to begin before item *index*'s create is sent under *key*.

        A first send records *request* as the session sends it (:attr:`outgoing`), under
        *request*'s fingerprint, so that a rerun's list matches; a resend (*resent*: the
        create recorded under *key*) records that create's body unchanged
        (:meth:`JournalRecord.to_send`).
        """
        return JournalRecord.to_send(
            request,
            key=key,
            base_url=self.base_url,
            expected_cost=options.cost,
            batch_id=options.batch_id,
            item_index=index,
            sent=self.outgoing(request),
            resent=resent,
        )

    def send_recorded(self, record: JournalRecord) -> Awaitable[TaskHandle]:
        """Send *record*'s create as it was recorded, under its key (each call sends once)."""
        return self.send(record.request(), record.key)


def _uncertain(row: JournalRecord) -> SubmissionUncertainError:
    """Return the report of an item whose earlier create may have made a task."""
    asked = "resubmit with resubmit_uncertain=True, or --resubmit-uncertain, once you have"
    if first_sent_without_key(row.key):  # imported from a manifest of before keys
        cause = APIConnectionError(
            "an earlier version's run sent this item's create without an idempotency key, "
            f"and whether it made a task is unknown ({row.error_message or 'no answer'}); "
            f"{asked} checked your usage: it is then sent under a new key, which cannot "
            "find a task that first send made",
            request_sent=True,
        )
        return SubmissionUncertainError(cause)
    cause = APIConnectionError(
        "an earlier create call for this item, by an earlier run or another worker of"
        f" this batch, ended without an answer ({asked} "
        "checked your usage; it is sent with its original idempotency key)",
        request_sent=True,
    )
    return SubmissionUncertainError(cause, idempotency_key=row.key, request=row.request())


def reported_error(plan: ResumeAction, row: JournalRecord, *, link_ttl: float) -> ZImageError:
    """Return the error a rerun reports for an item it does not send again."""
    if plan is ResumeAction.REPORT_FAILED and row.error_code == NO_RESULTS:
        return NoResultsError(task_id=row.task_id or "?")
    if plan is ResumeAction.REPORT_FAILED:
        return TaskFailedError(
            task_id=row.task_id or "?",
            code=row.error_code or "unknown_error",
            message=row.error_message or "",
        )
    if plan is ResumeAction.REPORT_UNCERTAIN:
        return _uncertain(row)
    ttl = link_ttl
    assert row.completed_at is not None
    return ImageExpiredError(
        f"task {row.task_id} completed in an earlier run and its image links have "
        f"expired (they live {ttl:g} s); to generate it again (a new, billed task), "
        "rerun the batch with resubmit_expired=True (zimage batch --resubmit-expired)",
        url="",
        task_id=row.task_id,
        index=0,
        expired_at=row.completed_at + ttl,
    )


def stop_error(exc: AuthenticationError | PermissionDeniedError) -> ZImageError:
    """Return *exc* restated as the refusal that stops a batch, naming the fix."""
    fix = "the batch stopped sending creates; check ZIMAGE_API_KEY (or api_key=): " + (
        "the key is missing, wrong or expired"
        if isinstance(exc, AuthenticationError)
        else "the key may not use this model or endpoint"
    )
    return type(exc)(
        f"{exc.message} - {fix}",
        status=exc.status,
        code=exc.code,
        type=exc.type,
        param=exc.param,
        method=exc.method,
        path=exc.path,
    )


@typing.overload
def key_stop(exc: AuthenticationError | PermissionDeniedError) -> ZImageError: ...
@typing.overload
def key_stop(exc: ZImageError) -> ZImageError | None: ...
def key_stop(exc: ZImageError) -> ZImageError | None:
    """Return the batch's stop after a create met *exc*, if *exc* says the key is refused.

    A typed 401 or 403 is restated by :func:`stop_error`. A create answered by a 401 or
    403 page without the API's envelope stays uncertain (no certain refusal), but the
    answer says the key is refused all the same: no further create is sent.
    """
    if isinstance(exc, (AuthenticationError, PermissionDeniedError)):
        return stop_error(exc)
    cause = exc.cause if isinstance(exc, SubmissionUncertainError) else None
    if not isinstance(cause, APIError) or cause.status not in (401, 403):
        return None
    kind = AuthenticationError if cause.status == 401 else PermissionDeniedError
    return stop_error(
        kind(
            f"{cause.message} (a page without the API's error envelope, which may come from"
            " a proxy in front of it)",
            status=cause.status,
            method=cause.method,
            path=cause.path,
        )
    )


def build_request(
    prompt: str | GenerationRequest,
    *,
    size: str | None,
    seed: int | None,
    nsfw_check: bool | None,
    callback_url: str | None,
) -> GenerationRequest:
    """Return *prompt* as a request: a ready one as it is, else one from the fields."""
    if isinstance(prompt, GenerationRequest):
        if any(v is not None for v in (size, seed, nsfw_check, callback_url)):
            raise TypeError("pass either a GenerationRequest or keyword fields, not both")
        return prompt
    try:
        return GenerationRequest(
            prompt=prompt, size=size, seed=seed, nsfw_check=nsfw_check, callback_url=callback_url
        )
    finally:  # a refusal's frames keep their locals: the URL's query may be a token
        del callback_url


def check_requests(requests: Iterable[str | GenerationRequest]) -> list[GenerationRequest]:
    """Turn prompts into requests; an invalid one raises naming its index.

    One string is refused rather than read as one prompt per character.
    """
    if isinstance(requests, (str, bytes)):
        raise InvalidRequestError(
            "requests",
            "an iterable of prompt strings or GenerationRequest objects, such as a list",
            f"got one {type(requests).__name__}, which would be one item per character; "
            "pass [prompt] for a batch of one",
        )
    checked = []
    for index, item in enumerate(requests):
        if isinstance(item, GenerationRequest):
            checked.append(item)
            continue
        if not isinstance(item, str):
            raise InvalidRequestError(
                f"requests[{index}]",
                "a prompt string or a GenerationRequest",
                f"got {a_type(item)}",
            )
        try:
            checked.append(GenerationRequest(prompt=item))
        except InvalidRequestError as exc:
            field = f"requests[{index}].{exc.field}"
            raise InvalidRequestError(field, exc.rule, exc.problem) from exc
    return checked
