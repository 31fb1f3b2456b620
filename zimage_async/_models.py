"""Value objects: the request a user builds, and the task, images and result the API gives."""

from __future__ import annotations

import enum
import math

import attrs

from . import _links
from ._callback_url import validate_request_callback_url
from ._imageinfo import EXTENSIONS
from ._links import LINK_TTL
from ._secret import frameless_refusals
from ._validation import (
    validate_model,
    validate_nsfw_check,
    validate_prompt,
    validate_seed,
    validate_size,
)

__all__ = [
    "GenerationRequest",
    "GenerationResult",
    "Image",
    "Task",
    "TaskErrorDetail",
    "TaskInfo",
    "TaskStatus",
    "Usage",
]


class TaskStatus(str, enum.Enum):
    """Where a task stands, read from its raw ``status`` string.

    A ``str``: each member equals its wire value and prints as it
    (``TaskStatus.COMPLETED == "completed"``, ``print(TaskStatus.COMPLETED)`` shows
    ``completed``); compare with ``is`` or with the string, as you like.

    ``PENDING``, ``PROCESSING``, ``COMPLETED`` and ``FAILED`` are documented.
    ``CANCELLED`` stands for ``cancelled`` / ``canceled``, which the callback text
    mentions; it is terminal. Spellings that other gateways of the family use for the
    same outcomes read as those members, with the raw value kept in
    :attr:`Task.raw_status`:

    * ``succeeded``, ``success``, ``successful``, ``complete`` read as ``COMPLETED``
      (the task's links are then used as for ``completed``);
    * ``error``, ``errored``, ``failure`` and ``expired`` read as ``FAILED`` (terminal:
      waiting longer cannot help; an ``expired`` task without an ``error`` gets the
      code ``resource_not_found``);
    * ``canceled`` reads as ``CANCELLED``.

    Anything else is ``UNKNOWN``: kept raw in :attr:`Task.raw_status`, treated as not
    finished, and logged.

    >>> TaskStatus.from_raw("Succeeded") == "completed"
    True
    >>> print(TaskStatus.from_raw("queued"))
    unknown
    """

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    @classmethod
    def from_raw(cls, raw: str) -> TaskStatus:
        """Map a status string from the wire to a member; unknown strings give ``UNKNOWN``."""
        known = _READ_STATUSES.get(raw)
        if known is not None:
            return known
        normalised = raw.strip().lower()
        member = _STATUS_ALIASES.get(normalised)
        if member is None:
            try:
                member = cls(normalised)
            except ValueError:
                member = cls.UNKNOWN
        if len(_READ_STATUSES) < _READ_STATUSES_KEPT:
            _READ_STATUSES[raw] = member
        return member

    @property
    def is_terminal(self) -> bool:
        """``True`` for statuses after which the task never changes again."""
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)


#: Raw statuses already read (a task is read on every poll), at most _READ_STATUSES_KEPT.
_READ_STATUSES: dict[str, TaskStatus] = {}
_READ_STATUSES_KEPT = 64

#: Other spellings of the documented outcomes (see :class:`TaskStatus`).
_STATUS_ALIASES = {
    "canceled": TaskStatus.CANCELLED,
    "succeeded": TaskStatus.COMPLETED,
    "success": TaskStatus.COMPLETED,
    "successful": TaskStatus.COMPLETED,
    "complete": TaskStatus.COMPLETED,
    "error": TaskStatus.FAILED,
    "errored": TaskStatus.FAILED,
    "failure": TaskStatus.FAILED,
    "expired": TaskStatus.FAILED,
}


def _links_repr(links: tuple[str, ...]) -> str:
    """Show result links without their query strings: signed links are credentials."""
    return repr(tuple(_links.redact_url(link) for link in links))


def _callback_repr(url: str | None) -> str:
    """Show a callback URL without its query string, which may hold a token for the receiver."""
    return repr(None if url is None else _links.redact_url(url))


@attrs.frozen(kw_only=True)
class GenerationRequest:
    """One image-generation request, checked against the API's rules when built.

    Every field is validated on construction, so an invalid request raises
    :class:`~zimage_async.InvalidRequestError` (a :class:`ValueError`) naming the field
    and the rule, before anything is sent.

    >>> GenerationRequest(prompt="a cute cat", size="16:9", seed=7)  # doctest: +ELLIPSIS
    GenerationRequest(prompt='a cute cat', size='16:9', seed=7, ...)
    >>> GenerationRequest(prompt="a cat", seed=0)
    Traceback (most recent call last):
    ...
    zimage_async._exceptions.InvalidRequestError: seed: ...
    """

    prompt: str = attrs.field(converter=validate_prompt)
    #: An aspect ratio (``"16:9"``) or ``"WIDTHxHEIGHT"`` with sides 376-1536; None: 1:1.
    size: str | None = attrs.field(default=None, converter=validate_size)
    #: 1..2147483647; None lets the service pick a random seed.
    seed: int | None = attrs.field(default=None, converter=validate_seed)
    #: Ask for the stricter NSFW check (the service defaults to False).
    nsfw_check: bool | None = attrs.field(default=None, converter=validate_nsfw_check)
    #: A public HTTPS URL the service POSTs the finished task to (a loopback one too,
    #: when ``Session.submit`` builds the request for a session on a loopback API).
    callback_url: str | None = attrs.field(
        default=None, converter=validate_request_callback_url, repr=_callback_repr
    )
    model: str = attrs.field(default="z-image-turbo", converter=validate_model)

    def to_json(self) -> dict[str, object]:
        """Return the JSON body of the create call (omitted fields are left out)."""
        body: dict[str, object] = {"model": self.model, "prompt": self.prompt}
        if self.size is not None:
            body["size"] = self.size
        if self.seed is not None:
            body["seed"] = self.seed
        if self.nsfw_check is not None:
            body["nsfw_check"] = self.nsfw_check
        if self.callback_url is not None:
            body["callback_url"] = self.callback_url
        return body


# Built by the caller with a callback URL that may hold a token: a refusal of any field
# is raised without the constructor's frames (their locals hold the URL).
setattr(GenerationRequest, "__init__", frameless_refusals(GenerationRequest.__init__))  # noqa: B010


@attrs.frozen(kw_only=True)
class TaskInfo:
    """The ``task_info`` hints: whether the task can be cancelled, and seconds to go."""

    can_cancel: bool | None = None
    #: The service's estimate of the seconds left; a hint, not a promise.
    estimated_time: float | None = None


@attrs.frozen(kw_only=True)
class Usage:
    """The ``usage`` block: how the task is billed."""

    billing_rule: str | None = None
    credits_reserved: float | None = None
    user_group: str | None = None


@attrs.frozen(kw_only=True)
class TaskErrorDetail:
    """Why a task failed: the service's business ``code`` (kept raw) and ``message``.

    A failed task always has one. When the service sent no usable ``error`` (missing,
    ``null``, a bare string, an object without a string or integer ``code``), ``code``
    is ``"unknown_error"`` (``"request_cancelled"`` for a cancelled task), ``message``
    is the bare string or the object's ``message`` if there was one, and the value as
    sent is kept in :attr:`Task.raw_error`.
    """

    code: str
    message: str = ""


_TERMINAL = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})


@attrs.frozen(kw_only=True)
class Task:
    """A snapshot of a task as the API reported it.

    Unknown fields in the reply are ignored, and ``null`` reads as absent for every
    field but ``id`` and ``status`` (so ``progress: null`` is 0 and ``results: null``
    is ``()``). An unknown ``status`` is kept in :attr:`raw_status` and reads as
    :attr:`TaskStatus.UNKNOWN`. A ``completed`` task may have no :attr:`results`: the
    handle then raises :class:`~zimage_async.NoResultsError`.
    """

    id: str
    raw_status: str
    progress: int = 0
    created: int | None = None
    model: str | None = None
    #: The image links. Their repr leaves out the query strings (signatures).
    results: tuple[str, ...] = attrs.field(default=(), repr=_links_repr)
    error: TaskErrorDetail | None = None
    task_info: TaskInfo | None = None
    usage: Usage | None = None
    #: The ``error`` field exactly as the service sent it (``None`` when absent or
    #: ``null``), for reporting an error that was not the documented ``{code, message}``
    #: object; :attr:`error` is the usable reading of it. Left out of ``==`` and ``repr``.
    raw_error: object = attrs.field(default=None, eq=False, repr=False)
    # What the links state of their expiry, ascending, read once on first use.
    _stated: tuple[float, ...] | None = attrs.field(init=False, default=None, eq=False, repr=False)
    # The status read once, when the snapshot is made: it is asked for on every poll.
    _status: TaskStatus = attrs.field(init=False, eq=False, repr=False)

    @_status.default
    def _read_status(self) -> TaskStatus:
        return TaskStatus.from_raw(self.raw_status)

    def _stated_expiries(self) -> tuple[float, ...]:
        """Return what the links state of their expiry, ascending; each link is read once."""
        stated = self._stated
        if stated is None:
            read = [_links.link_expiry(url) for url in self.results]
            stated = tuple(sorted(value for value in read if value is not None))
            object.__setattr__(self, "_stated", stated)
        return stated

    @property
    def stated_expiry(self) -> float | None:
        """The earliest value any result link states as its expiry, unchecked, or ``None``.

        Read from the links' query strings (``expires=``, ``Expires=``, ``exp=``,
        ``X-Amz-Date`` + ``X-Amz-Expires``) on first use and kept: each link is parsed
        once per task, however often this is asked. Taken as it is written, so it may be
        no time at all (``exp=1``): :meth:`believed_expiry` says what is believed.
        """
        stated = self._stated_expiries()
        return stated[0] if stated else None

    def believed_expiry(self, completed_at: float, *, lifetime: float = LINK_TTL) -> float | None:
        """Return the earliest stated expiry that is a plausible Unix time here, or ``None``.

        *completed_at* is when the task was first seen completed, *lifetime* how long
        links live from then. Believed: later than :attr:`created` (when stated) and
        than one lifetime before completion, and at most seven days after completion
        (:func:`~zimage_async._links.believed_expiry`); other values are ignored. A
        :attr:`created` that no float holds is no time, and is ignored too.
        """
        created = _as_time(self.created)
        return _links.believed_expiry(
            self._stated_expiries(), completed_at=completed_at, lifetime=lifetime, created=created
        )

    def links_expire_at(self, expiry: float, *, lifetime: float = LINK_TTL) -> float:
        """Return *expiry*, or the links' believed stated expiry when that is earlier.

        *expiry* is the end of the links' *lifetime* counted from completion (Unix time):
        the completion time is *expiry* minus *lifetime*. This says when the links are
        expected to stop working; a download is still attempted until *expiry* itself.
        """
        believed = self.believed_expiry(expiry - lifetime, lifetime=lifetime)
        return expiry if believed is None or believed >= expiry else believed

    @property
    def status(self) -> TaskStatus:
        """The status as a :class:`TaskStatus` member."""
        return self._status

    @property
    def is_terminal(self) -> bool:
        """``True`` once the task is completed, failed or cancelled."""
        return self._status in _TERMINAL

    @property
    def estimated_time(self) -> float | None:
        """Shorthand for ``task_info.estimated_time``."""
        return self.task_info.estimated_time if self.task_info is not None else None


def _as_time(created: object) -> float | None:
    """Return *created* as a float, or ``None`` when it is absent or no finite float holds it."""
    if created is None:
        return None
    try:
        value = float(created)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


@attrs.frozen(kw_only=True)
class Image:
    """One downloaded image: its bytes and what was verified about them."""

    index: int
    url: str = attrs.field(repr=False)
    data: bytes = attrs.field(repr=lambda data: f"<{len(data)} bytes>")
    #: ``image/png``, ``image/jpeg`` or ``image/webp``, read from the bytes themselves.
    content_type: str
    width: int | None = None
    height: int | None = None

    @property
    def extension(self) -> str:
        """The file extension for this image's format, without the dot."""
        return EXTENSIONS[self.content_type]


@attrs.frozen(kw_only=True)
class GenerationResult:
    """A finished generation: the completed task and its downloaded images."""

    task: Task
    images: tuple[Image, ...]

    @property
    def image(self) -> Image:
        """The first image (a task makes one image unless the service says otherwise)."""
        return self.images[0]
