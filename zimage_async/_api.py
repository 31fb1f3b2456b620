"""The two documented API calls, with the retry rules that keep billing honest.

``create`` (``POST /v1/images/generations``) is billed. Every create carries an
``Idempotency-Key`` (one per logical submission, the same on each retry). Whether a
failed create is sent again is decided by :func:`~zimage_async._outcome.judge_create`,
applied across the tries by :class:`~zimage_async._outcome.CreateTries`: freely when the
connection never opened, once (after the advised wait) after the API's own typed
429/502/503, which may come after the task was made. Anything else that may have made
a task, and a create whose every try left that unknown or whose resend was refused,
surfaces as :class:`~zimage_async.SubmissionUncertainError`, carrying the key so that a
later resubmission can reuse it. ``get_task`` is a plain read and is retried on every
transient fault.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from ._exceptions import (
    APIConnectionError,
    APIError,
    MalformedResponseError,
    RateLimitError,
    SubmissionUncertainError,
    ZImageError,
)
from ._idempotency import IDEMPOTENCY_HEADER, new_key
from ._models import GenerationRequest, Task
from ._outcome import CreateTries, CreateVerdict, Stage, judge_create, read_create_reply
from ._parsing import parse_error, parse_json, parse_task, salvage_task_id
from ._polling import wait_out
from ._quoting import log_text
from ._rategate import RateGate
from ._redaction import SealedBody
from ._schedule import RetryPolicy, transient_status
from ._secret import Secret
from ._sending import watching
from ._telemetry import NO_CHILD, NO_SPAN, TaskSpan, child_span, task_span
from ._transport import RedactedHeaders, Transport

__all__ = ["APIClient", "RateGate", "judge_read_failure"]

logger = logging.getLogger("zimage_async")

T = TypeVar("T")

#: The largest JSON answer accepted from the API.
MAX_API_BODY = 1 << 20
#: The most tasks whose reads mask their create's callback token (the latest ones made).
MASKED_READS_KEPT = 4096
#: Logged when a create handed to the service was cancelled: its task may exist.
CANCELLED_AFTER_SENDING = (
    "a create cancelled after it was sent may have made a task (billed) that nothing "
    "records: submit the same request again with idempotency_key=%r to get that task "
    "without paying twice"
)

#: The create call's body encoder, made once (json.dumps makes one per call with options).
_JSON = json.JSONEncoder(ensure_ascii=False)
#: Its C core, made once too (``JSONEncoder.encode`` makes one per call), without the
#: check for circular references: a request's JSON fields are plain strings and numbers.
_C_MAKE = getattr(json.encoder, "c_make_encoder", None)
_ENCODE: Callable[[dict[str, object], int], Any] | None = (
    None
    if _C_MAKE is None
    else _C_MAKE(
        None,
        _JSON.default,
        json.encoder.encode_basestring,
        None,
        _JSON.key_separator,
        _JSON.item_separator,
        False,
        False,
        True,
    )
)

#: A judge's verdict on a failure: None never retries it, a float is the least wait.
Judge = Callable[[ZImageError], "float | None"]


def _create_body(request: GenerationRequest, callback_url: str | None) -> SealedBody:
    """Return the create's JSON body; *callback_url* is sent when the request names none."""
    fields = request.to_json()
    if callback_url is not None:
        fields.setdefault("callback_url", callback_url)
    text = _JSON.encode(fields) if _ENCODE is None else "".join(_ENCODE(fields, 0))
    return SealedBody(text.encode())


def _query_values(url: str | None) -> list[str]:
    """Return the values in *url*'s query string (a callback URL's token), raw and decoded."""
    if url is None or "?" not in url:
        return []
    query = urlsplit(url).query
    raw = [pair.partition("=")[2] if "=" in pair else pair for pair in query.split("&")]
    return [*raw, *(value for _, value in parse_qsl(query))]


def judge_read_failure(exc: ZImageError) -> float | None:
    """Whether a failed task read may be repeated, and how soon: every transient fault.

    >>> judge_read_failure(MalformedResponseError("cut short"))
    0.0
    """
    if isinstance(exc, APIError):
        return (exc.retry_after or 0.0) if transient_status(exc.status) else None
    if isinstance(exc, (APIConnectionError, MalformedResponseError)):
        return 0.0
    return None


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
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._transport = transport
        self._base_url = base_url.rstrip("/")
        #: Where the path starts in this client's URLs (each error names its URL's path).
        self._path_start = len(self._base_url) - len(urlsplit(self._base_url).path)
        self._create_url = f"{self._base_url}/v1/images/generations"
        self._create_path = self._create_url[self._path_start :]
        self._api_key = api_key
        self._retry = retry
        self._rng = rng
        self._sleep = sleep
        self.gate = RateGate(rng=rng, clock=clock, sleep=sleep, max_pause=retry.max_retry_after)
        #: Task spans started by create calls, until the task's handle takes them.
        self.task_spans: dict[str, TaskSpan] = {}
        # Built once per client: a read sends no body, so no Content-Type.
        self._read_headers = RedactedHeaders(
            {"Authorization": f"Bearer {api_key.reveal()}", "Accept": "application/json"}
        )
        self._plain_headers = self._read_headers.with_header("Content-Type", "application/json")
        # The read headers of the tasks made with a callback token: their reads mask it too.
        self._masked_reads: dict[str, RedactedHeaders] = {}
        self._last_masked = self._read_headers  # shared by the tasks of one callback URL

    def _headers(self, idempotency_key: str | None = None) -> RedactedHeaders:
        """Return the headers of a call with a JSON body, copied only to add a key."""
        if idempotency_key is None:
            return self._plain_headers
        return self._plain_headers.with_header(IDEMPOTENCY_HEADER, idempotency_key)

    async def _call(
        self,
        call: Callable[[int, str], Awaitable[T]],
        url: str,
        judge: Judge,
        what: str,
        span: TaskSpan = NO_SPAN,
        *,
        span_name: str,
    ) -> T:
        """Run ``call(attempt, url)`` in the API's one retry loop: try, ask, wait, try again.

        Each try is a child span of *span* (else of the current span) when telemetry is on.
        """
        attempt = 1
        while True:
            try:
                scope = child_span(span_name, parent=span, key="zimage.attempt", value=attempt)
                if scope is NO_CHILD:  # telemetry off: no span, nothing to enter
                    return await call(attempt, url)
                with scope:
                    return await call(attempt, url)
            except ZImageError as exc:
                delay = self._retry.after(attempt, judge(exc), rng=self._rng)
                if delay is None:
                    raise
                logger.info(
                    "retrying %s (attempt %d failed: %s) in %.2f s",
                    what,
                    attempt,
                    log_text(exc),
                    delay,
                )
                why = f"the last try failed ({exc})"
            span.retries += 1
            await wait_out(self._sleep, delay, why)
            attempt += 1

    def _note_rate_limit(self, error: APIError, *, pace: bool) -> None:
        """Pause the session's creates after a 429; *pace*: it answered a create."""
        if isinstance(error, RateLimitError):
            self.gate.pause(error.retry_after or self._retry.wait_initial, pace=pace)

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
        it is None. The tries follow :class:`CreateTries`.
        """
        url = self._create_url
        body = _create_body(request, callback_url)
        # Its query may be a token: only the sealed body holds it, and answers quoting it
        # have it masked, as the key.
        tokens = _query_values(request.callback_url or callback_url)
        del callback_url
        key = idempotency_key if idempotency_key is not None else new_key()
        headers = self._headers(key)
        reads = self._read_headers.masking(*tokens) if tokens else None
        del tokens
        if reads is not None and reads.masks_as(self._read_headers):
            reads = None  # no value long enough to be a token
        elif reads is not None:  # one URL's tasks share them: their patterns made once
            if reads.masks_as(self._last_masked):
                reads = self._last_masked
            headers = headers.masking_as(reads)
            self._last_masked = reads
        tries = CreateTries(key=key, request=request)

        async def call(attempt: int, url: str) -> Task:
            await self.gate.admit()  # every try, a resend too, takes its turn after a 429
            try:
                reply = await self._transport.request(
                    "POST",
                    url,
                    headers=headers,
                    body=body,
                    max_body=MAX_API_BODY,
                    attempt=attempt,
                    keep_cut=True,
                )
            except (APIConnectionError, MalformedResponseError) as exc:
                sent = not isinstance(exc, APIConnectionError) or exc.request_sent
                if judge_create(Stage.SENT if sent else Stage.NOT_SENT) is CreateVerdict.UNCERTAIN:
                    raise SubmissionUncertainError(
                        exc, idempotency_key=key, request=request
                    ) from exc
                raise
            if reply.cut is not None:  # answered, but not whole: the id may be in what came
                made = salvage_task_id(reply.body) if 200 <= reply.status < 300 else None
                raise SubmissionUncertainError(
                    reply.cut, task_id=made, idempotency_key=key, request=request
                ) from reply.cut
            try:
                task = read_create_reply(
                    reply.status,
                    reply.headers,
                    reply.body,
                    path=self._create_path,
                    idempotency_key=key,
                    request=request,
                    now=time.time(),
                )
            except APIError as error:
                self._note_rate_limit(error, pace=True)
                raise tries.answered(error) from None
            self.gate.accepted()  # the rate the gateway accepts is learned from these
            return task

        span = task_span()
        try:
            with watching() as (mark, outermost):

                def judge(exc: ZImageError) -> float | None:
                    delay = tries.judge(exc)
                    if delay is not None:  # to wait for the next try: nothing in flight now
                        mark.sent, mark.flying = tries.maybe_made, False
                    return delay

                try:
                    task = await self._call(
                        call,
                        url,
                        judge,
                        "POST create",
                        span,
                        span_name="POST /v1/images/generations",
                    )
                except asyncio.CancelledError:
                    if mark.sent and outermost:  # no journal above says it: say it here
                        logger.warning(CANCELLED_AFTER_SENDING, key)
                    raise
        except ZImageError as exc:
            final = tries.final(exc)
            uncertain = isinstance(final, SubmissionUncertainError)
            made = final.task_id if isinstance(final, SubmissionUncertainError) else None
            if made is not None and reads is not None:  # resumed by its id, it is read
                self._mask_reads(made, reads)
            span.end("uncertain" if uncertain else "not created", error=final)
            if final is exc:
                raise
            assert isinstance(final, SubmissionUncertainError)
            raise final from final.cause
        except Exception as exc:  # not the API's own failure (a closed session, a bug)
            lost = tries.stopped()  # closed while a resend was due: a task may exist
            span.end("error" if lost is None else "uncertain", error=lost or exc)
            if lost is None:
                raise
            raise lost from exc
        except BaseException:  # cancelled (Ctrl-C, a timeout around it): ``stopped``, as a wait
            span.end("stopped")
            raise
        if reads is not None:
            self._mask_reads(task.id, reads)
        if span.recording:
            span.set("task_id", task.id)
            self.task_spans[task.id] = span
        return task

    def _mask_reads(self, task_id: str, reads: RedactedHeaders) -> None:
        """Have the reads of *task_id* mask what its create sent (the latest tasks' only)."""
        masked = self._masked_reads
        masked[task_id] = reads
        if len(masked) > MASKED_READS_KEPT:
            del masked[next(iter(masked))]

    def get_task(self, task_id: str, *, span: TaskSpan = NO_SPAN) -> Coroutine[Any, Any, Task]:
        """``GET /v1/tasks/{task_id}``: the task as it stands now (await it).

        *task_id* must already be valid (``Session.task`` and ``Session.get_task`` check
        it), since this runs on every poll. *span* is the task's span, for telemetry. A
        plain method returning the retry loop's coroutine: no coroutine of its own per poll.
        """
        return self._call(
            self._read_task,
            f"{self._base_url}/v1/tasks/{task_id}",
            judge_read_failure,
            f"GET {task_id}",
            span,
            span_name="GET /v1/tasks/{id}",
        )

    async def _read_task(self, attempt: int, url: str) -> Task:
        """Send one ``GET /v1/tasks/{id}`` and read the answer (one try of :meth:`get_task`).

        The answer of a task this client made with a callback token has the token masked.
        """
        asked = url.rpartition("/")[2]
        headers = self._read_headers
        if self._masked_reads:
            headers = self._masked_reads.get(asked, headers)
        reply = await self._transport.request(
            "GET", url, headers=headers, max_body=MAX_API_BODY, attempt=attempt
        )
        status = reply.status
        if not 200 <= status < 300:  # what parse_task_reply does, the clock read only here
            error = parse_error(
                status,
                reply.headers,
                reply.body,
                method="GET",
                path=url[self._path_start :],
                now=time.time(),
            )
            self._note_rate_limit(error, pace=False)  # says nothing of the rate of creates
            raise error
        task = parse_task(parse_json(reply.body, status=status), status=status)
        if task.id != asked:  # a cache keyed wrongly: another task's answer is not this one's
            raise MalformedResponseError(
                f"the answer is the snapshot of task {task.id}, not of task {asked}",
                path="$.id",
                status=reply.status,
            )
        return task
