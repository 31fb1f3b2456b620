"""The two documented API calls, with the retry rules that keep billing honest.

``create`` (``POST /v1/images/generations``) is billed. Every create carries an
``Idempotency-Key`` (one per logical submission, the same on each retry). Whether a
failed create is sent again is decided by :func:`~zimage_async._outcome.judge_create`:
only when the service certainly made no task (a connection that never opened, the API's
own typed 429/502/503). Anything else that may have made a task surfaces as
:class:`~zimage_async.SubmissionUncertainError`, carrying the key so that a later
resubmission can reuse it. ``get_task`` is a plain read and is retried on every
transient fault.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import attrs
import backoff

from ._exceptions import (
    APIConnectionError,
    APIError,
    InvalidRequestError,
    MalformedResponseError,
    RateLimitError,
    SubmissionUncertainError,
    ZImageError,
)
from ._idempotency import IDEMPOTENCY_HEADER, REPLAYED_HEADER, new_key
from ._models import GenerationRequest, Task
from ._outcome import CreateVerdict, Stage, judge_create
from ._parsing import parse_error, parse_json, parse_task, parse_task_reply, salvage_task_id
from ._schedule import RetryPolicy, retry_waits
from ._secret import Secret
from ._transport import RedactedHeaders, Transport
from ._validation import validate_task_id

__all__ = ["APIClient", "RateGate"]

logger = logging.getLogger("zimage_async")

T = TypeVar("T")

#: The largest JSON answer accepted from the API.
MAX_API_BODY = 1 << 20


class RateGate:
    """Session-wide back-pressure: after a 429, new submissions wait out the advice.

    Every create call passes through :meth:`wait`; any 429 calls :meth:`pause`. Waiters
    released together are spread by a little jitter so they do not stampede.
    """

    def __init__(self, *, rng: random.Random, clock: Callable[[], float] = time.monotonic):
        self._rng = rng
        self._clock = clock
        self._until = 0.0

    @property
    def paused_for(self) -> float:
        """Seconds until submissions may go again (0 when open)."""
        return max(0.0, self._until - self._clock())

    def pause(self, seconds: float) -> None:
        """Hold new submissions for *seconds* from now (an earlier pause is never cut)."""
        self._until = max(self._until, self._clock() + seconds)

    async def wait(self) -> None:
        """Return once no pause is in force."""
        # A later 429 may extend the pause while we sleep, so re-check after each nap.
        while (delay := self._until - self._clock()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(delay + self._rng.random() * min(1.0, delay * 0.1))


def _create_retryable(exc: BaseException, policy: RetryPolicy) -> bool:
    if isinstance(exc, APIError):
        verdict = judge_create(
            Stage.ANSWERED, status=exc.status, error_type=exc.type, error_code=exc.code
        )
        return verdict is CreateVerdict.RETRY and policy.honours(exc.retry_after)
    return isinstance(exc, APIConnectionError) and not exc.request_sent


def _read_retryable(exc: BaseException, policy: RetryPolicy) -> bool:
    if isinstance(exc, APIError):
        transient = exc.status == 429 or exc.status >= 500
        return transient and policy.honours(exc.retry_after)
    return isinstance(exc, (APIConnectionError, MalformedResponseError))


@attrs.define
class _Tries:
    """The state of one call's retries: tries made, and a failure to hand to backoff."""

    made: int
    failure: ZImageError | None


async def _attempt(call: Callable[[int], Awaitable[T]], what: str, tries: _Tries) -> T:
    """Make one try of *call* (*what* names the call for the retry log).

    The first try runs outside the backoff loop (most calls succeed, and the loop costs
    more than the call); its failure is replayed here, so backoff schedules the retry.
    """
    failure, tries.failure = tries.failure, None
    if failure is not None:
        raise failure
    tries.made += 1
    return await call(tries.made)


def _log_retry(details: Any) -> None:
    logger.info(
        "retrying %s (attempt %d failed: %s) in %.2f s",
        details["args"][1],
        details["tries"],
        details["exception"],
        details["wait"],
    )


class APIClient:
    """Builds, sends and reads the API calls for one session."""

    def __init__(
        self,
        transport: Transport,
        *,
        base_url: str,
        api_key: Secret,
        retry: RetryPolicy,
        rng: random.Random,
    ) -> None:
        self._transport = transport
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._retry = retry
        self._rng = rng
        self.gate = RateGate(rng=rng)
        # The retry loops are built once: building a backoff decorator per call costs
        # more than the rest of the call.
        self._create_retries = (_create_retryable, self._retrier(_create_retryable))
        self._read_retries = (_read_retryable, self._retrier(_read_retryable))

    def _headers(self, idempotency_key: str | None = None) -> RedactedHeaders:
        headers = RedactedHeaders(
            {
                "Authorization": f"Bearer {self._api_key.reveal()}",
                "Accept": "application/json",
                "Content-Type": "application/json",
            }
        )
        if idempotency_key is not None:
            headers[IDEMPOTENCY_HEADER] = idempotency_key
        return headers

    def _retrier(
        self, retryable: Callable[[BaseException, RetryPolicy], bool]
    ) -> Callable[..., Awaitable[Any]]:
        """Build, once, the backoff loop that retries calls judged by *retryable*."""
        policy = self._retry
        retrying: Callable[..., Awaitable[Any]] = backoff.on_exception(
            functools.partial(retry_waits, policy, rng=self._rng),
            ZImageError,
            max_tries=policy.max_attempts,
            giveup=lambda exc: not retryable(exc, policy),
            jitter=None,
            on_backoff=_log_retry,
            logger=None,
        )(_attempt)
        return retrying

    async def _with_retries(
        self,
        call: Callable[[int], Awaitable[T]],
        *,
        retries: tuple[Callable[[BaseException, RetryPolicy], bool], Callable[..., Awaitable[Any]]],
        what: str,
    ) -> T:
        retryable, retrying = retries
        try:
            return await call(1)
        except ZImageError as exc:
            if not retryable(exc, self._retry) or self._retry.max_attempts == 1:
                raise
            failure = exc
        result: T = await retrying(call, what, _Tries(made=1, failure=failure))
        return result

    def _note_rate_limit(self, error: APIError) -> None:
        if isinstance(error, RateLimitError):
            self.gate.pause(error.retry_after or self._retry.wait_initial)

    async def create(
        self,
        request: GenerationRequest,
        *,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> Task:
        """``POST /v1/images/generations``: create (and pay for) one task.

        *callback_url*, already checked by the session, is sent when the request has none.
        *idempotency_key* (already checked) is sent on every try; a new one is made when
        it is None.
        """
        url = f"{self._base_url}/v1/images/generations"
        fields = request.to_json()
        if callback_url is not None:
            fields.setdefault("callback_url", callback_url)
        body = json.dumps(fields, ensure_ascii=False).encode()
        key = idempotency_key if idempotency_key is not None else new_key()
        headers = self._headers(key)

        def uncertain(cause: ZImageError, task_id: str | None = None) -> SubmissionUncertainError:
            return SubmissionUncertainError(
                cause, task_id=task_id, idempotency_key=key, request=request
            )

        async def call(attempt: int) -> Task:
            await self.gate.wait()
            try:
                reply = await self._transport.request(
                    "POST", url, headers=headers, body=body, max_body=MAX_API_BODY, attempt=attempt
                )
            except APIConnectionError as exc:
                if judge_create(Stage.SENT if exc.request_sent else Stage.NOT_SENT) is (
                    CreateVerdict.UNCERTAIN
                ):
                    raise uncertain(exc) from exc
                raise
            except MalformedResponseError as exc:
                raise uncertain(exc) from exc
            if 200 <= reply.status < 300:
                try:
                    task = parse_task(parse_json(reply.body, status=reply.status))
                except MalformedResponseError as exc:
                    raise uncertain(exc, salvage_task_id(reply.body)) from exc
                try:
                    validate_task_id(task.id)  # it goes into every poll's URL
                except InvalidRequestError as exc:
                    raise uncertain(
                        MalformedResponseError(exc.problem, path="$.id", status=reply.status)
                    ) from None
                if reply.headers.get(REPLAYED_HEADER, "").strip().lower() == "true":
                    logger.info(
                        "the gateway replayed task %s: it was made earlier under the same "
                        "idempotency key, and is not billed again",
                        task.id,
                    )
                else:
                    logger.info("created task %s (billed)", task.id)
                return task
            error = parse_error(
                reply.status, reply.headers, reply.body, method="POST", path=url, now=time.time()
            )
            self._note_rate_limit(error)
            verdict = judge_create(
                Stage.ANSWERED, status=error.status, error_type=error.type, error_code=error.code
            )
            if verdict is CreateVerdict.UNCERTAIN:
                raise uncertain(error) from error
            raise error

        return await self._with_retries(call, retries=self._create_retries, what="POST create")

    async def get_task(self, task_id: str) -> Task:
        """``GET /v1/tasks/{task_id}``: the task as it stands now.

        *task_id* must already be valid (``Session.task`` and ``Session.get_task`` check
        it), since this runs on every poll.
        """
        url = f"{self._base_url}/v1/tasks/{task_id}"

        async def call(attempt: int) -> Task:
            reply = await self._transport.request(
                "GET", url, headers=self._headers(), max_body=MAX_API_BODY, attempt=attempt
            )
            try:
                return parse_task_reply(
                    reply.status, reply.headers, reply.body, method="GET", path=url, now=time.time()
                )
            except APIError as error:
                self._note_rate_limit(error)
                raise

        return await self._with_retries(call, retries=self._read_retries, what=f"GET {task_id}")
