"""The exceptions raised by zimage-async: one tree, rooted at :class:`ZImageError`.

.. code-block:: text

    ZImageError
    ├── InvalidRequestError (ValueError)      bad input, raised before any request is sent
    ├── ManifestError (ValueError)            a batch manifest that does not fit this batch
    ├── JournalError                          the journal cannot be opened, read or written
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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

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
    "MalformedResponseError",
    "ManifestError",
    "NoResultsError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServiceUnavailableError",
    "SpendLimitError",
    "SubmissionUncertainError",
    "TaskFailedError",
    "UpstreamError",
    "WaitTimeoutError",
    "ZImageError",
    "api_error_class",
    "note_task",
]


class ZImageError(Exception):
    """Root of every exception that zimage-async raises on purpose.

    Catch it to handle anything the SDK reports; the subclasses say what went wrong.
    ``task_id`` names the billed task an error concerns, when there is one: an error met
    while waiting for a task that was already created carries it (and its message says
    how to collect the task), so that nobody pays for the same image twice.
    """

    #: The id of the (billed) task this error concerns, or None.
    task_id: str | None = None


def note_task(error: ZImageError, task_id: str) -> ZImageError:
    """Attach *task_id* to an error met after the task was created, saying how to collect it.

    An error that already names a task is returned unchanged.
    """
    if error.task_id is None:
        error.task_id = task_id
        hint = (
            f" [task {task_id} was created and is billed: collect it later with "
            f"session.task({task_id!r}) or `zimage task {task_id} -o DIR` instead of "
            "generating it again]"
        )
        first = str(error.args[0]) if error.args else ""
        error.args = (first + hint, *error.args[1:])
    return error


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

    Text from the service (``message``, ``param``, ``fallback_suggestion``) is stored
    with every ``Bearer <token>`` masked, so an envelope that echoes the request's
    ``Authorization`` header cannot carry the key into logs or error reports.
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
            parts.append(f"({type})")
        text = " ".join(parts) + f": {message}"
        if param:
            text += f" [param: {param}]"
        if fallback_suggestion:
            text += f" [suggestion: {fallback_suggestion}]"
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
    """429 ``rate_limit_error``: too many requests; retried after ``retry_after`` seconds.

    Raised to the caller only once the retry policy is spent.
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


class SubmissionUncertainError(ZImageError):
    """The create call failed in a way that leaves it unknown whether a task was made.

    A 5xx that is not the API's own typed refusal, a reset or a timeout after the request
    was sent, an unreadable 2xx: the service may have created (and billed) a task whose id
    we never received. The SDK does not send such a call again on its own, except where
    the retry policy allows it with the *same* ``Idempotency-Key``, which the gateway uses
    to answer with the task it already made.

    ``__cause__`` holds the underlying error. ``task_id`` is the id of the task that was
    made, when it could be read from a garbled answer (resume it with
    ``session.task(task_id)``), else ``None``. ``idempotency_key`` is the key the create
    was sent with and ``request`` the request itself: :meth:`Session.resubmit
    <zimage_async.Session.resubmit>` sends it again with that key, so a gateway that
    honours keys returns the original task instead of billing a second one.
    """

    def __init__(
        self,
        cause: ZImageError,
        *,
        task_id: str | None = None,
        idempotency_key: str | None = None,
        request: object | None = None,
    ) -> None:
        self.cause = cause
        self.task_id = task_id
        self.idempotency_key = idempotency_key
        self.request = request
        if task_id:
            known = f"; the answer names task {task_id}, which session.task() can resume"
        elif idempotency_key:
            known = (
                "; session.resubmit(error) sends it again with the same idempotency key, "
                "which returns the original task where the gateway honours keys"
            )
        else:
            known = ""
        super().__init__(
            "the create request failed after it was sent, so a task may have been created "
            f"and billed ({cause}); it was not sent again, to avoid paying twice - check "
            f"before resubmitting{known}"
        )


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


# PROTOCOL.md's task error codes, with whether resubmitting the same request can help.
_TASK_ERROR_KINDS: Mapping[str, tuple[str, bool]] = {
    "content_policy_violation": ("change the prompt; do not resubmit it unchanged", False),
    "invalid_parameters": ("fix the parameters", False),
    "image_processing_error": ("change the input", False),
    "image_dimension_mismatch": ("change the size", False),
    "request_cancelled": ("the task was cancelled; resubmit if still wanted", True),
    "generation_failed_no_content": ("the model produced nothing; try another prompt", False),
    "service_error": ("a transient provider fault; resubmit later", True),
    "generation_timeout": ("a transient provider fault; resubmit later", True),
    "resource_exhausted": ("a transient provider fault; resubmit later", True),
    "quota_exceeded": ("rate or quota reached; slow down and resubmit later", True),
    "service_unavailable": ("a transient provider fault; resubmit later", True),
    "resource_not_found": ("the task id is invalid or expired; check the id", False),
    "unknown_error": ("unclassified; report it", False),
}


class TaskFailedError(ZImageError):
    """The task ended with status ``failed``; the call itself worked.

    ``task_id``, ``code`` (the service's business code, kept raw even when unknown),
    ``message``; ``resubmit_may_help`` is ``True`` for transient provider-side codes
    (``service_error``, ``generation_timeout``...) and ``False`` where the request itself
    must change; ``advice`` is the sensible reaction from the protocol's table. The task
    was billed either way.
    """

    def __init__(self, *, task_id: str, code: str, message: str, raw_error: object = None) -> None:
        self.task_id = task_id
        self.code = code
        self.message = message
        #: The ``error`` field exactly as the service sent it (``None`` when absent), kept
        #: for reporting when it was not the documented ``{code, message}`` object.
        self.raw_error = raw_error
        advice, retry = _TASK_ERROR_KINDS.get(code, ("an unrecognised code; report it", False))
        self.advice = advice
        self.resubmit_may_help = retry
        super().__init__(f"task {task_id} failed with {code}: {message} ({advice})")


class NoResultsError(ZImageError):
    """The task ended ``completed`` but its ``results`` hold no image link.

    The answer will not change, so it is raised at once, without retries. The task was
    billed; ``task_id`` names it and ``task`` is the task as the service sent it. Report
    it to the provider, or submit the request again if you still want an image.
    """

    def __init__(self, *, task_id: str, task: object | None = None) -> None:
        self.task_id = task_id
        self.task = task
        super().__init__(
            f"task {task_id} completed without any image link; the service will not add "
            "one later - report the task id to the provider, or submit again if you still "
            "want the image"
        )


class WaitTimeoutError(ZImageError, TimeoutError):
    """The operation's deadline passed: the task was not finished, or not downloaded.

    ``stage`` is ``"wait"`` when the task was still running, ``"download"`` when it had
    completed but its images were not all fetched in time. The task goes on at the
    service (and is billed); ``task_id`` and ``last_status`` say where it stood. Resume
    with ``session.task(task_id)`` or by awaiting the same handle.
    """

    def __init__(
        self, *, task_id: str, timeout: float, last_status: str | None, stage: str = "wait"
    ) -> None:
        self.task_id = task_id
        self.timeout = timeout
        self.last_status = last_status
        self.stage = stage
        if stage == "download":
            what = f"the images of task {task_id} were not all downloaded within {timeout:g} s"
            then = "it is billed and its links live 24 hours"
        else:
            what = f"task {task_id} was still {last_status or 'unknown'} after {timeout:g} s"
            then = "it keeps running at the service"
        super().__init__(
            f"{what}; {then} - await the handle again, or collect it later with "
            f"session.task({task_id!r}) (or `zimage task {task_id} -o DIR`)"
        )


class ImageDownloadError(ZImageError):
    """An image could not be downloaded, or its bytes failed verification.

    ``url`` is the link without its query string (signed links are credentials),
    ``task_id`` and ``index`` say which image; ``reason`` says what went wrong.
    """

    def __init__(self, reason: str, *, url: str, task_id: str | None, index: int | None):
        self.reason = reason
        self.url = url
        self.task_id = task_id
        self.index = index
        which = f"image {index} of task {task_id}" if task_id is not None else "image"
        super().__init__(f"{which} from {url}: {reason}")


class ImageExpiredError(ImageDownloadError):
    """The image link has expired (links live 24 hours), so the bytes are gone.

    Raised without a request once the handle knows the link is past its expiry, and
    when the image host answers 404, 410, or a 403 that does not look like a block of
    this client (see :class:`ImageBlockedError`). ``expired_at`` is the known expiry as
    a Unix time, if any.
    """

    def __init__(
        self,
        reason: str,
        *,
        url: str,
        task_id: str | None,
        index: int | None,
        expired_at: float | None = None,
    ) -> None:
        self.expired_at = expired_at
        super().__init__(reason, url=url, task_id=task_id, index=index)


class ImageSizeWarning(UserWarning):
    """An image's dimensions differ from the size the request asked for.

    Issued with :func:`warnings.warn` (the image is still returned): ``WIDTHxHEIGHT``
    sizes must match exactly, ratios by aspect within 2 %. Turn it into an error with
    ``warnings.simplefilter("error", ImageSizeWarning)``.
    """


class ImageBlockedError(ImageDownloadError):
    """The image host refused (403) a link whose expiry is still ahead.

    That looks like the host blocking this client, not like expiry: CDNs in front of the
    provider's file host refuse clients whose ``User-Agent`` looks like a script
    (Cloudflare error 1010). The SDK sends ``zimage-async/<version>``; set another with
    ``Session(user_agent=...)``. ``expires_at`` is the link's own expiry (Unix time),
    when known.
    """

    def __init__(
        self,
        reason: str,
        *,
        url: str,
        task_id: str | None,
        index: int | None,
        expires_at: float | None = None,
    ) -> None:
        self.expires_at = expires_at
        super().__init__(reason, url=url, task_id=task_id, index=index)


class JournalError(ZImageError):
    """The journal cannot be opened, read or written, or refuses a change.

    Raised when the journal's file or database is unusable (not a journal, unreachable,
    the ``postgres`` extra missing for a ``postgresql://`` URL), when a create is begun
    with a key the journal holds for another request or for a task that already exists,
    or when a batch worker acts on an item whose lease it no longer holds. Nothing was
    sent for the create concerned.
    """


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


class ImageLinkRefusedError(ImageDownloadError):
    """The image link, or a redirect from it, points where the SDK never fetches from.

    Raised before connecting, and never retried (asking again cannot change the answer):
    a scheme other than ``https`` (plain ``http`` only while the API itself is on
    loopback), user info in the URL, an internal target (loopback, private, link-local
    such as the cloud metadata address ``169.254.169.254``) unless the API itself is on
    such an address, a host name that resolves to such an address, more redirects than
    allowed, or a redirect loop. ``reason`` says which.
    """
