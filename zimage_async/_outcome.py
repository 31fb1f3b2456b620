"""The create call's outcome policy: one pure function over what the answer was.

The create call (``POST /v1/images/generations``) is billed. Whether a failed one may be
sent again depends on whether the service could have made a task. :func:`judge_create`
decides that from the transport stage, the HTTP status and the error envelope's
``type`` and ``code``, and nothing else, so the table in the docs (``protocol.md``,
"What a failed create means") is tested row by row against it. :class:`CreateTries`
applies it across one create's tries.

The rules, most specific first:

* The request never left (the connection did not open): no task; retry.
* The request left but no complete answer came (reset, timeout, stall): uncertain.
* A 2xx is a task (an unreadable one is uncertain; the caller salvages the id).
* A redirect (not followed) says the request was not handled here: refused; except
  303 See Other, the answer a server gives *after* handling a POST: uncertain.
* An envelope ``code`` from the gateway's admission checks (quota, balance, key and
  account codes) is a refusal before charging, whatever the status and whether or not
  the envelope has a ``type``: refused.
* Anything else that is not the API's own typed envelope (an HTML page from a proxy,
  text, an empty body, JSON without ``error.type``) is never a certain refusal: uncertain.
* 429 ``rate_limit_error``, 502 ``upstream_error`` and 503 ``service_unavailable_error``
  in the API's own envelope may come after the task was made (the gateway family's
  client reads them as "outcome unknown"): resend once, with the same key, after the
  advised wait; a second unknown outcome is uncertain.
* 500 and every other 5xx: uncertain, as the provider's page says of the 500.
* Every other typed 4xx (400, 401, 402, 403, 404, 409 ...): refused.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping

from ._exceptions import (
    APIConnectionError,
    APIError,
    InvalidRequestError,
    MalformedResponseError,
    SubmissionUncertainError,
    ZImageError,
)
from ._idempotency import REPLAYED_HEADER
from ._models import GenerationRequest, Task
from ._parsing import parse_error, parse_json, parse_task, salvage_task_id
from ._validation import validate_task_id

__all__ = [
    "PRE_CHARGE_REFUSALS",
    "CreateTries",
    "CreateVerdict",
    "Stage",
    "judge_create",
    "read_create_reply",
    "refused_resend",
]

logger = logging.getLogger("zimage_async")


class Stage(enum.Enum):
    """How far one create request got."""

    #: The connection never opened: the request certainly did not leave this process.
    NOT_SENT = "not sent"
    #: The request was written, but no complete answer came back.
    SENT = "sent"
    #: A complete HTTP answer came back.
    ANSWERED = "answered"


class CreateVerdict(enum.Enum):
    """What a create request's outcome means for the task and for sending it again."""

    #: A task was made and its id is known.
    CREATED = "created"
    #: Certainly no task; sending again (with the same idempotency key) may succeed.
    RETRY = "retry"
    #: Certainly no task; sending the same request again cannot help.
    REFUSED = "refused"
    #: A task may have been made and billed; never sent again automatically.
    UNCERTAIN = "uncertain"
    #: A task may have been made and billed; sent again once, with the same key, after
    #: the advised wait (a gateway that honours keys answers with the task it made).
    RESEND_ONCE = "resend once"


#: Envelope codes of the gateway's admission checks, which refuse before charging.
PRE_CHARGE_REFUSALS = frozenset(
    {
        "insufficient_quota",
        "quota_not_enough",
        "insufficient_balance",
        "key_disabled",
        "key_expired",
        "key_model_not_allowed",
        "user_disabled",
    }
)

#: The statuses that waiting can cure but that may come after the task was made: the
#: outcome is unknown, whatever the type; the API's own type for each gets one resend.
_UNKNOWN_OUTCOMES = {
    429: "rate_limit_error",
    502: "upstream_error",
    503: "service_unavailable_error",
}


def judge_create(
    stage: Stage,
    *,
    status: int | None = None,
    error_type: str | None = None,
    error_code: int | str | None = None,
) -> CreateVerdict:
    """Return what a create request's outcome means.

    *status*, *error_type* and *error_code* describe a complete answer (the envelope's
    ``error.type`` and ``error.code``, ``None`` when absent or not the documented
    envelope); they are ignored for the other stages.

    >>> judge_create(Stage.ANSWERED, status=520).value
    'uncertain'
    >>> judge_create(Stage.ANSWERED, status=503, error_type="service_unavailable_error").value
    'resend once'
    >>> judge_create(Stage.ANSWERED, status=429, error_type="x", error_code="insufficient_quota")
    <CreateVerdict.REFUSED: 'refused'>
    >>> judge_create(Stage.ANSWERED, status=402, error_code="quota_not_enough").value
    'refused'
    >>> judge_create(Stage.ANSWERED, status=429, error_type="rate_limit_exceeded").value
    'uncertain'
    """
    if stage is Stage.NOT_SENT:
        return CreateVerdict.RETRY
    if stage is Stage.SENT or status is None:
        return CreateVerdict.UNCERTAIN
    if 200 <= status < 300:
        return CreateVerdict.CREATED
    if 300 <= status < 400:
        return CreateVerdict.UNCERTAIN if status == 303 else CreateVerdict.REFUSED
    if isinstance(error_code, str) and error_code in PRE_CHARGE_REFUSALS:
        return CreateVerdict.REFUSED
    if not error_type:
        return CreateVerdict.UNCERTAIN
    unknown = _UNKNOWN_OUTCOMES.get(status)
    if unknown == error_type:
        return CreateVerdict.RESEND_ONCE
    if unknown is not None or not 400 <= status < 500:  # decided by status, whatever type
        return CreateVerdict.UNCERTAIN
    return CreateVerdict.REFUSED


def read_create_reply(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    path: str,
    idempotency_key: str,
    request: GenerationRequest,
    now: float,
) -> Task:
    """Read a complete answer to the create call: the task, or the error it means (pure).

    A 2xx is the task (a replayed one, marked ``idempotency-replayed: true``, is logged as
    not billed again); an unreadable 2xx is :class:`SubmissionUncertainError`, with the
    task id when it can still be read; an error status raises the :class:`APIError`
    subclass, or :class:`SubmissionUncertainError` wrapping it when :func:`judge_create`
    says a task may exist.
    """
    if 200 <= status < 300:
        payload = None
        try:
            payload = parse_json(body, status=status)
            task = parse_task(payload)
        except MalformedResponseError as exc:
            raise SubmissionUncertainError(
                exc,
                task_id=salvage_task_id(body, payload),
                idempotency_key=idempotency_key,
                request=request,
            ) from exc
        try:
            validate_task_id(task.id)  # it goes into every poll's URL
        except InvalidRequestError as exc:
            raise SubmissionUncertainError(
                MalformedResponseError(exc.problem, path="$.id", status=status),
                idempotency_key=idempotency_key,
                request=request,
            ) from None
        if headers.get(REPLAYED_HEADER, "").strip().lower() == "true":
            logger.info(
                "the gateway replayed task %s: it was made earlier under the same "
                "idempotency key, and is not billed again",
                task.id,
            )
        else:
            logger.info("created task %s (billed)", task.id)
        return task
    error = parse_error(status, headers, body, method="POST", path=path, now=now)
    verdict = judge_create(
        Stage.ANSWERED, status=error.status, error_type=error.type, error_code=error.code
    )
    if verdict is CreateVerdict.UNCERTAIN:
        raise SubmissionUncertainError(
            error, idempotency_key=idempotency_key, request=request
        ) from error
    raise error


def refused_resend(
    exc: ZImageError, *, key: str, request: GenerationRequest, sent: int = 1
) -> SubmissionUncertainError:
    """Return the error for a resend of a create that may have made a task, refused by *exc*.

    The resend carried the create's own key, but the gateway may refuse (quota, key)
    before it looks the key up, so the refusal does not show that no task was made: the
    create stays uncertain under that key.
    """
    return SubmissionUncertainError(
        exc, idempotency_key=key, request=request, resent=True, sent=sent
    )


class CreateTries:
    """One create's tries in its retry loop: what each failure means for the next one.

    The loop calls :meth:`answered` with each error the service answered (not the rate
    gate's own refusal, which sends nothing), :meth:`judge` with every failure (the
    least wait before the next try, or None for none), and :meth:`final` with the error
    it is about to raise. A connection that never opened is tried again within the
    policy. An unknown outcome (:attr:`CreateVerdict.RESEND_ONCE`) is sent again once;
    from then on the create ends :class:`SubmissionUncertainError` under *key*, whatever
    the last try said: a refusal of the resend (quota, key) does not show that the
    earlier send made no task (:func:`refused_resend`).
    """

    def __init__(self, *, key: str, request: GenerationRequest) -> None:
        self._key = key
        self._request = request
        self._answer: APIError | None = None
        #: The latest answer whose outcome was unknown, once there is one.
        self._unknown: APIError | None = None
        #: The tries the service answered with an error.
        self._answers = 0

    @property
    def maybe_made(self) -> bool:
        """Whether a try so far may have made a task (its outcome is unknown)."""
        return self._unknown is not None

    def answered(self, error: APIError) -> APIError:
        """Note *error* as the service's answer to the try under way; return it."""
        self._answer = error
        self._answers += 1
        return error

    def _verdict(self, exc: ZImageError) -> CreateVerdict:
        if exc is self._answer:
            return judge_create(
                Stage.ANSWERED, status=exc.status, error_type=exc.type, error_code=exc.code
            )
        if isinstance(exc, APIConnectionError) and not exc.request_sent:
            return CreateVerdict.RETRY
        if isinstance(exc, APIError):  # the rate gate's refusal: nothing was sent
            return CreateVerdict.RETRY
        return CreateVerdict.UNCERTAIN

    def judge(self, exc: ZImageError) -> float | None:
        """Return the least wait before trying again after *exc*, or None to stop."""
        verdict = self._verdict(exc)
        if verdict is CreateVerdict.RESEND_ONCE:
            assert isinstance(exc, APIError)
            first, self._unknown = self._unknown is None, exc
            return (exc.retry_after or 0.0) if first else None
        if verdict is CreateVerdict.RETRY:
            return (exc.retry_after or 0.0) if isinstance(exc, APIError) else 0.0
        return None

    def stopped(self) -> SubmissionUncertainError | None:
        """Return the error of a create stopped between tries (its session closed), if any.

        Uncertain when a try so far may have made a task (the resend that would tell was
        never sent); None when none may have, and the stop's own error stands.
        """
        if self._unknown is None:
            return None
        return SubmissionUncertainError(
            self._unknown, idempotency_key=self._key, request=self._request, sent=self._answers
        )

    def final(self, exc: ZImageError) -> ZImageError:
        """Return the error to raise for the create, which ended with *exc*."""
        if self._unknown is None:
            return exc
        sent = self._answers
        if isinstance(exc, SubmissionUncertainError):  # the last try's answer was lost too
            return SubmissionUncertainError(
                exc.cause,
                task_id=exc.task_id,
                idempotency_key=self._key,
                request=self._request,
                sent=sent + 1,
            )
        verdict = self._verdict(exc)
        if verdict is CreateVerdict.REFUSED:
            return refused_resend(exc, key=self._key, request=self._request, sent=sent)
        cause = exc if verdict is CreateVerdict.RESEND_ONCE else self._unknown
        return SubmissionUncertainError(
            cause, idempotency_key=self._key, request=self._request, sent=sent
        )
