"""The errors about one task: a create in doubt, a failure, no links, a wait out of time.

All but :class:`SubmissionUncertainError` concern a task that exists and is billed, and
say how to collect it later.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ._exceptions_base import SHOWN_MODULE, ZImageError
from ._quoting import log_text

if TYPE_CHECKING:
    from ._models import GenerationRequest, Task

__all__ = [
    "NoResultsError",
    "SubmissionUncertainError",
    "TaskFailedError",
    "WaitTimeoutError",
]


class SubmissionUncertainError(ZImageError):
    """The create call failed in a way that leaves it unknown whether a task was made.

    A 500 or another 5xx, the API's 429, 502 or 503 (after the one resend the SDK makes
    with the same key), a reset or a timeout after the request was sent, an unreadable
    2xx: the service may have created (and billed) a task whose id we never received.
    The SDK does not send such a call again on its own beyond that one resend with the
    *same* ``Idempotency-Key``, which a gateway that honours keys uses to answer with the
    task it already made.

    ``__cause__`` holds the underlying error. ``task_id`` is the id of the task that was
    made, when it could be read from a garbled answer (resume it with
    ``session.task(task_id)``), else ``None``. ``idempotency_key`` is the key the create
    was sent with and ``request`` the request itself: :meth:`Session.resubmit
    <zimage_async.Session.resubmit>` sends it again with that key, so a gateway that
    honours keys returns the original task instead of billing a second one.

    ``resent`` is true when this was such a resend and the gateway refused it (a quota
    or key refusal, ``__cause__``): the gateway may check those before it looks up the
    key, so the refusal does not show that the first send made no task. The create stays
    uncertain under the same key, to be sent again with it later.

    ``sent`` is how many times this call's create reached the service with that key:
    2 when a 429, 502 or 503 (which may come after the task was made) was followed by
    the one resend the SDK makes. Where the gateway ignores the key, each may have
    billed a task.
    """

    __module__ = SHOWN_MODULE

    def __init__(
        self,
        cause: ZImageError,
        *,
        task_id: str | None = None,
        idempotency_key: str | None = None,
        request: GenerationRequest | None = None,
        resent: bool = False,
        sent: int = 1,
    ) -> None:
        self.cause = cause
        self.task_id = task_id
        self.idempotency_key = idempotency_key
        self.request = request
        self.resent = resent
        self.sent = sent
        if task_id:
            known = f"; the answer names task {task_id}, which session.task() can resume"
        elif idempotency_key:
            known = (
                "; session.resubmit(error) sends it again with the same idempotency key, "
                "which returns the original task where the gateway honours keys"
            )
        else:
            known = ""
        if resent:
            super().__init__(
                f"the create was sent again with its idempotency key {idempotency_key} "
                f"and refused ({cause}), which does not show that its first send made no "
                "task (the gateway may refuse before it looks up the key): a task may have "
                "been created and billed - the create is still uncertain; send it again "
                "with the same key later (never with a new one)"
            )
            return
        if sent > 1:
            super().__init__(
                f"the create request was sent {sent} times with the same idempotency key and "
                f"no answer showed whether a task was made ({cause}), so a task may have been "
                f"created and billed, up to {sent} where the gateway ignores the key; it was "
                f"not sent again - check before resubmitting{known}"
            )
            return
        super().__init__(
            "the create request failed after it was sent, so a task may have been created "
            f"and billed ({cause}); it was not sent again, to avoid paying twice - check "
            f"before resubmitting{known}"
        )


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

    Attributes:
        raw_error: The ``error`` field exactly as the service sent it (``None`` when
            absent), kept for reporting when it was not the documented ``{code,
            message}`` object.
    """

    __module__ = SHOWN_MODULE

    def __init__(self, *, task_id: str, code: str, message: str, raw_error: object = None) -> None:
        self.task_id = task_id
        self.code = code
        self.message = message
        self.raw_error = raw_error
        advice, retry = _TASK_ERROR_KINDS.get(code, ("an unrecognised code; report it", False))
        self.advice = advice
        self.resubmit_may_help = retry
        said = f"{log_text(code)}: {log_text(message)}"
        super().__init__(f"task {task_id} failed with {said} ({advice})")


class NoResultsError(ZImageError):
    """The task ended ``completed`` but its ``results`` hold no image link.

    The answer will not change, so it is raised at once, without retries. The task was
    billed; ``task_id`` names it and ``task`` is the task as the service sent it. Report
    it to the provider, or submit the request again if you still want an image.
    """

    __module__ = SHOWN_MODULE

    def __init__(self, *, task_id: str, task: Task | None = None) -> None:
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

    __module__ = SHOWN_MODULE

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
            status = log_text(last_status or "unknown")
            what = f"task {task_id} was still {status} after {timeout:g} s"
            then = "it keeps running at the service"
        super().__init__(
            f"{what}; {then} - await the handle again, or collect it later with "
            f"session.task({task_id!r}) (or `zimage task {task_id} -o DIR`)"
        )
