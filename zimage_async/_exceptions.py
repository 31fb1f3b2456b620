"""The exceptions raised by zimage-async: one tree, rooted at :class:`ZImageError`.

.. code-block:: text

    ZImageError
    ├── InvalidRequestError (ValueError)      bad input, raised before any request is sent
    ├── ManifestError (ValueError)            a batch manifest that does not fit this batch
    ├── JournalError                          the journal cannot be opened, read or written
    │   └── LeaseLostError                    a batch worker lost an item's lease; nothing sent
    ├── SpendLimitError                       a create would go over max_credits; nothing sent
    ├── APIError                              the API answered with an HTTP error
    │   ├── BadRequestError                   400 invalid_request_error
    │   ├── AuthenticationError               401 authentication_error
    │   ├── InsufficientQuotaError            402 insufficient_quota_error
    │   ├── PermissionDeniedError             403 permission_error
    │   ├── NotFoundError                     404 not_found_error
    │   ├── ConflictError                     409 the idempotency key was used for another request
    │   ├── RateLimitError                    429 rate_limit_error
    │   ├── InternalServerError               500 internal_server_error
    │   ├── UpstreamError                     502 upstream_error
    │   └── ServiceUnavailableError           503 service_unavailable_error
    ├── APIConnectionError                    no usable HTTP answer (refused, reset, TLS, ...)
    │   └── APITimeoutError (TimeoutError)    the HTTP exchange took too long
    ├── SubmissionUncertainError              the create call failed *after* it may have made a task
    ├── MalformedResponseError                an answer that does not parse as documented
    ├── TaskFailedError                       the task ended with status ``failed``
    ├── NoResultsError                        the task completed without any image link
    ├── WaitTimeoutError (TimeoutError)       the task did not finish within the deadline
    └── ImageDownloadError                    an image could not be fetched or failed checks
        ├── ImageExpiredError                 the image link has expired
        ├── ImageBlockedError                 the image host refused a link that is still valid
        └── ImageLinkRefusedError             the link or a redirect points where the SDK never goes

"The call failed" (:class:`APIError`, :class:`APIConnectionError`) is kept apart from
"the task failed" (:class:`TaskFailedError`): the first says nothing about the task, the
second is the service's verdict on it.

The root and the request, storage and HTTP errors are defined here; the errors about one
task live in :mod:`zimage_async._exceptions_task` and the image download errors in
:mod:`zimage_async._exceptions_image`. This module re-exports them all, and every class
names this module as its own (``__module__``), wherever it is defined.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from ._exceptions_base import SessionClosedError, ZImageError, note_closed, note_task
from ._exceptions_image import (
    ImageBlockedError,
    ImageDownloadError,
    ImageExpiredError,
    ImageLinkRefusedError,
    ImageSizeWarning,
)
from ._exceptions_task import (
    NoResultsError,
    SubmissionUncertainError,
    TaskFailedError,
    WaitTimeoutError,
)
from ._quoting import log_text
from ._secret import redact_text

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "ImageBlockedError",
    "ImageDownloadError",
    "ImageExpiredError",
    "ImageLinkRefusedError",
    "ImageSizeWarning",
    "InsufficientQuotaError",
    "InternalServerError",
    "InvalidRequestError",
    "JournalError",
    "LeaseLostError",
    "MalformedResponseError",
    "ManifestError",
    "NoResultsError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServiceUnavailableError",
    "SessionClosedError",
    "SpendLimitError",
    "SubmissionUncertainError",
    "TaskFailedError",
    "UpstreamError",
    "WaitTimeoutError",
    "ZImageError",
    "api_error_class",
    "note_closed",
    "note_task",
]


class InvalidRequestError(ZImageError, ValueError):
    """A request field breaks one of the API's documented rules.

    Raised before anything is sent, so nothing was billed. ``field`` names the request
    field (``"prompt"``, ``"size"``, ``"seed"``, ``"nsfw_check"``, ``"callback_url"``,
    ``"task_id"``...) and ``rule`` states the rule it broke, in words.
    """

    def __init__(self, field: str, rule: str, problem: str) -> None:
        self.field = field
        self.rule = rule
        self.problem = problem
        super().__init__(f"{field}: {problem}; the rule is: {rule}.")


class ManifestError(ZImageError, ValueError):
    """A batch manifest cannot be used for this batch; raised before anything is submitted.

    The file belongs to another batch, is not a manifest, cannot be opened, or holds
    tasks for items whose request has since changed (``items`` lists their indexes), or
    tasks that live at another base URL. Nothing was sent and nothing was mixed.
    """

    def __init__(self, message: str, *, items: tuple[int, ...] = ()) -> None:
        self.items = items
        super().__init__(message)


class APIError(ZImageError):
    """The API answered with an HTTP error status.

    Attributes carry the documented error envelope: ``status`` (HTTP status), ``code``
    (usually the status as an int, sometimes a string such as ``"invalid_task_id"``),
    ``type`` (``"rate_limit_error"``...), ``param`` (the request field at fault, if
    named), ``fallback_suggestion`` (the service's free-text hint), ``retry_after``
    (seconds to wait, from the ``Retry-After`` header or a ``retry after N seconds``
    suggestion, else ``None``), plus ``method`` and ``path`` of the call.

    Text from the service (``message``, ``type``, ``code``, ``param``,
    ``fallback_suggestion``) is stored with every ``Bearer <token>`` masked, so an
    envelope that echoes the request's ``Authorization`` header cannot carry the key into
    logs or error reports (the transport masks any other echo of the key, however the
    answer's JSON escapes it, before the envelope is read).
    """

    #: The HTTP status this class stands for (``0`` on the base class).
    status_code: ClassVar[int] = 0

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: int | str | None = None,
        type: str | None = None,  # the envelope's own field name
        param: str | None = None,
        fallback_suggestion: str | None = None,
        retry_after: float | None = None,
        method: str = "",
        path: str = "",
    ) -> None:
        message = redact_text(message)
        type = None if type is None else redact_text(type)
        param = None if param is None else redact_text(param)
        if fallback_suggestion is not None:
            fallback_suggestion = redact_text(fallback_suggestion)
        self.message = message
        self.status = status
        self.code = code if not isinstance(code, str) else redact_text(code)
        self.type = type
        self.param = param
        self.fallback_suggestion = fallback_suggestion
        self.retry_after = retry_after
        self.method = method
        self.path = path
        parts = [f"{method} {path} answered {status}".strip()]
        if type:
            parts.append(f"({log_text(type)})")
        text = " ".join(parts) + f": {log_text(message)}"
        if param:
            text += f" [param: {log_text(param)}]"
        if fallback_suggestion:
            text += f" [suggestion: {log_text(fallback_suggestion)}]"
        super().__init__(text)


class BadRequestError(APIError):
    """400 ``invalid_request_error``: the service refused the request; fix it, never retry."""

    status_code = 400


class AuthenticationError(APIError):
    """401 ``authentication_error``: the API key is missing, wrong or expired; never retried."""

    status_code = 401


class InsufficientQuotaError(APIError):
    """402 ``insufficient_quota_error``: the account is out of credit; never retried."""

    status_code = 402


class PermissionDeniedError(APIError):
    """403 ``permission_error``: the key has no access to the model; never retried."""

    status_code = 403


class NotFoundError(APIError):
    """404 ``not_found_error``: unknown model, or an unknown or expired task id."""

    status_code = 404


class ConflictError(APIError):
    """409: the create's ``Idempotency-Key`` was already used for a different request.

    Nothing new was made or billed. Send the new request with a new key (the default),
    or the original request with this key.
    """

    status_code = 409


class RateLimitError(APIError):
    """429 ``rate_limit_error``: too many requests; ``retry_after`` is the wait asked for.

    A read is retried after that wait and this is raised once the retry policy is spent,
    or at once, not slept on, when the wait is over ``RetryPolicy.max_retry_after``. Such a
    wait also holds the session's new submissions (create calls) for ``max_retry_after``
    seconds at most: each is refused at once with this error, nothing sent, its
    ``retry_after`` still the service's whole wait. Task reads are not held. A create's
    own 429 surfaces as :class:`SubmissionUncertainError`, with this error as its cause.
    """

    status_code = 429


class InternalServerError(APIError):
    """500 ``internal_server_error``: a transient fault at the service.

    Safe reads are retried. For the create call a 500 is ambiguous (a task may exist),
    so it surfaces as :class:`SubmissionUncertainError` with this error as its cause.
    """

    status_code = 500


class UpstreamError(APIError):
    """502 ``upstream_error``: the upstream model service is unavailable; transient."""

    status_code = 502


class ServiceUnavailableError(APIError):
    """503 ``service_unavailable_error``: the service is overloaded or down; transient."""

    status_code = 503


_API_ERRORS: Mapping[int, type[APIError]] = {
    cls.status_code: cls
    for cls in (
        BadRequestError,
        AuthenticationError,
        InsufficientQuotaError,
        PermissionDeniedError,
        NotFoundError,
        ConflictError,
        RateLimitError,
        InternalServerError,
        UpstreamError,
        ServiceUnavailableError,
    )
}


def api_error_class(status: int) -> type[APIError]:
    """Return the :class:`APIError` subclass for an HTTP *status* (the base class if none)."""
    return _API_ERRORS.get(status, APIError)


class APIConnectionError(ZImageError):
    """No usable HTTP answer: the connection was refused, reset, or broke mid-reply.

    ``request_sent`` is ``False`` only when the request certainly never left this
    process (the connection could not be opened), which is what makes a create call
    safe to retry.
    """

    def __init__(self, message: str, *, request_sent: bool, method: str = "", path: str = ""):
        self.request_sent = request_sent
        self.method = method
        self.path = path
        super().__init__(f"{method} {path}: {message}".strip(": "))


class APITimeoutError(APIConnectionError, TimeoutError):
    """One HTTP exchange exceeded its timeout (connect, read or total)."""


class MalformedResponseError(ZImageError):
    """An answer did not match the documented shape.

    ``path`` points at the bad part in JSONPath style (``$.task_info.estimated_time``,
    ``$`` for the whole body); ``detail`` says what was wrong with it.
    """

    def __init__(self, detail: str, *, path: str = "$", status: int | None = None) -> None:
        self.detail = detail
        self.path = path
        self.status = status
        where = f" (HTTP {status})" if status is not None else ""
        super().__init__(f"malformed response{where} at {path}: {detail}")


class JournalError(ZImageError):
    """The journal cannot be opened, read or written, or refuses a change.

    Raised when the journal's file or database is unusable (not a journal, unreachable,
    the ``postgres`` extra missing for a ``postgresql://`` URL), when a create is begun
    with a key the journal holds for another request or for a task that already exists,
    or when a batch worker acts on an item whose lease it no longer holds. Nothing was
    sent for the create concerned, except when the message says that a task was created
    and is billed but could not be recorded: ``task_id`` names it then. Collect it (with
    ``session.task(task_id)``), never submit it again: the journal records it then, or
    when the session closes.
    """


class LeaseLostError(JournalError):
    """A batch worker no longer holds the lease on the item it was about to send.

    Its lease ran out (the worker was stalled, or stopped renewing) and another worker
    took the item over; nothing was sent for it. The worker leaves the item to whoever
    holds it now (a lease that ran out while nobody else took the item is still the
    worker's own). ``batch_id``, ``index`` and ``worker_id`` say which item and
    which worker.
    """

    def __init__(
        self, message: str, *, batch_id: str | None, index: int | None, worker_id: str
    ) -> None:
        self.batch_id = batch_id
        self.index = index
        self.worker_id = worker_id
        super().__init__(message)


class SpendLimitError(ZImageError):
    """Creating one more task would reserve more credits than ``max_credits`` allows.

    Raised before the create request is sent, so nothing was billed. ``max_credits`` is
    the limit, ``reserved`` what the journal already counts (uncertain creates included),
    ``expected`` the expected cost of the refused create, and ``batch_id`` the batch the
    limit belongs to (``None`` for the limit on the whole journal).
    """

    def __init__(
        self, *, max_credits: float, reserved: float, expected: float, batch_id: str | None
    ) -> None:
        self.max_credits = max_credits
        self.reserved = reserved
        self.expected = expected
        self.batch_id = batch_id
        scope = f"batch {batch_id!r}" if batch_id is not None else "the journal"
        super().__init__(
            f"creating this task would reserve {expected:g} credit(s) on top of the "
            f"{reserved:g} already reserved in {scope} (uncertain creates included), over "
            f"max_credits={max_credits:g}; nothing was sent - raise max_credits, or wait "
            "for uncertain creates to be resolved"
        )
