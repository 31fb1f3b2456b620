"""The API's request handlers: create a task, get a task.

Routes (under the ``/apiv1`` prefix, like production ``https://ai.odkkk.com/apiv1``):

- ``POST /apiv1/v1/images/generations``: validate, bill, reply with the pending task;
- ``GET /apiv1/v1/tasks/{task_id}``: the task as it stands now.

Both need ``Authorization: Bearer <key>`` with a configured key. A task belongs to the
key that created it: read with another key, it answers the same 404 as an unknown task.
The create call honours an ``Idempotency-Key`` header, per API key, unless the emulator
ignores it (see ``_idempotency``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aiohttp import web

from ._callbacks import CallbackDispatcher
from ._clock import Clock
from ._envelopes import ApiError, method_not_allowed, route_not_found, unauthorized
from ._factory import TaskFactory
from ._faults import AFTER_CREATE_FAULTS, BILLED_CREATE_FAULTS, REPLACING_FAULTS, FaultRule
from ._http import abort_connection, error_response, error_then_close
from ._idempotency import (
    IDEMPOTENCY_HEADER,
    REPLAYED_HEADER,
    IdempotencyLedger,
    IdempotencyMode,
    body_fingerprint,
    check_key,
    key_conflict,
)
from ._injection import FaultInjector, altered_body, error_reply, task_reply
from ._ledger import Ledger, LedgerEntry
from ._tasks import CREDITS_PER_TASK, ID_PREFIX, TaskRecord, TaskStore, task_body
from ._validation import CreateRequest, body_too_large, body_unreadable, validate_create

__all__ = ["API_PREFIX", "ApiHandlers", "api_error_renderer"]

API_PREFIX = "/apiv1"
_INVALID_TASK_ID = ApiError(
    status=400,
    code="invalid_task_id",
    message="Invalid task ID format, must start with 'task-unified-'",
    type="invalid_request_error",
    param="task_id",
)


def _task_not_found(task_id: str) -> ApiError:
    return ApiError(
        status=404,
        message=f"Task {task_id!r} was not found; check the id (tasks are not shared between "
        "API keys or emulators).",
        type="not_found_error",
        param="task_id",
    )


def api_error_renderer(request: web.Request, status: int, reason: str) -> web.Response:
    """Render router-level errors (404, 405, 413, 500) as JSON envelopes."""
    if status == 404:
        return error_response(route_not_found(request.path))
    if status == 405:
        return error_response(method_not_allowed(request.method, request.path))
    if status == 413:
        return error_response(body_too_large())
    return error_response(ApiError(status=status, message=reason, type="internal_server_error"))


class ApiHandlers:
    """The two API endpoints, over the emulator's task store, ledger and fault plan."""

    def __init__(
        self,
        *,
        api_keys: Sequence[str],
        store: TaskStore,
        factory: TaskFactory,
        ledger: Ledger,
        faults: FaultInjector,
        clock: Clock,
        result_urls: Callable[[TaskRecord], Sequence[str]],
        callbacks: CallbackDispatcher,
        allow_loopback_callbacks: bool,
        idempotency: IdempotencyMode = "honour",
    ) -> None:
        self._keys = frozenset(api_keys)
        self._store = store
        self._factory = factory
        self._ledger = ledger
        self._faults = faults
        self._clock = clock
        self._result_urls = result_urls
        self._callbacks = callbacks
        self._allow_loopback = allow_loopback_callbacks
        self._honour_keys = idempotency == "honour"
        self.keys = IdempotencyLedger()

    def routes(self) -> list[web.RouteDef]:
        """Return the route table."""
        return [
            web.post(f"{API_PREFIX}/v1/images/generations", self.create, name="create"),
            web.get(
                f"{API_PREFIX}/v1/tasks/{{task_id}}", self.get_task, name="task", allow_head=False
            ),
        ]

    def _api_key(self, request: web.Request) -> str | None:
        """Return the configured key the request authenticates with, or None."""
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        key = key.strip()
        return key if scheme.lower() == "bearer" and key in self._keys else None

    def body(self, record: TaskRecord, *, as_created: bool = False) -> dict[str, object]:
        """Return the task JSON of *record* now (or as the create call answers it)."""
        return task_body(
            record, now=self._clock.now(), result_urls=self._result_urls, as_created=as_created
        )

    def callback_body(self, record: TaskRecord) -> dict[str, object]:
        """Return the body of a callback delivery, altered by a ``callback`` fault if drawn."""
        body = self.body(record)
        status = body["status"]
        rule = self._faults.draw("callback", status=status if isinstance(status, str) else None)
        return altered_body(body, rule)

    def _accept(
        self, record: TaskRecord, request: CreateRequest, idempotency_key: str | None
    ) -> None:
        assert record.api_key is not None, record.task_id
        self._store.add(record)
        self._ledger.bill(
            LedgerEntry(
                task_id=record.task_id,
                request_body=request.body,
                created_at=record.created_at,
                credits=CREDITS_PER_TASK,
                idempotency_key=idempotency_key,
                api_key=record.api_key,
            )
        )
        if idempotency_key is not None and self._honour_keys:
            self.keys.remember(
                idempotency_key,
                api_key=record.api_key,
                fingerprint=body_fingerprint(request.body),
                task_id=record.task_id,
                now=record.created_at,
            )
        if record.callback_url is not None:
            self._callbacks.schedule(
                task_id=record.task_id,
                url=record.callback_url,
                due_at=record.finished_at,
                body=lambda: self.callback_body(record),
            )

    def _replayed(
        self, key: str | None, api_key: str, request: CreateRequest
    ) -> TaskRecord | ApiError | None:
        """Return the task *key* already made for this body, a 409, or None for a new task."""
        if key is None or not self._honour_keys:
            return None
        use = self.keys.lookup(key, api_key=api_key, now=self._clock.now())
        if use is None:
            return None
        if use.fingerprint != body_fingerprint(request.body):
            return key_conflict(key, use.task_id)
        record = self._store.get(use.task_id)
        assert record is not None, use.task_id
        return record

    async def create(self, request: web.Request) -> web.StreamResponse:
        """Handle ``POST /v1/images/generations``."""
        api_key = self._api_key(request)
        if api_key is None:
            return error_response(unauthorized())
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is not None and self._honour_keys:
            refused = check_key(key)
            if refused is not None:
                return error_response(refused)
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return error_response(body_too_large())
        except web.RequestPayloadError:  # a broken content coding: the client's mistake
            return error_then_close(request, body_unreadable())
        except ConnectionError:  # the client hung up mid-body: no one to answer
            return abort_connection(request)
        accepted = validate_create(raw, allow_loopback_callbacks=self._allow_loopback)
        if isinstance(accepted, ApiError):
            return error_response(accepted)
        conflict = self._replayed(key, api_key, accepted)
        if isinstance(conflict, ApiError):
            return error_response(conflict)
        rule = self._faults.draw("create", status="pending")
        if rule is not None and rule.kind == "slow" and not await self._faults.wait(rule):
            return abort_connection(request)
        if rule is not None and rule.kind not in BILLED_CREATE_FAULTS:
            return self._fault_reply(request, rule)
        replayed = self._replayed(key, api_key, accepted)  # again: a slow fault may have waited
        if isinstance(replayed, ApiError):
            return error_response(replayed)
        if replayed is not None:
            body = self.body(replayed)
            headers: dict[str, str] | None = {REPLAYED_HEADER: "true"}
        else:
            record = self._factory.create(accepted, now=self._clock.now(), api_key=api_key)
            self._accept(record, accepted, key)
            body = self.body(record, as_created=True)
            headers = None
        if rule is not None and rule.kind in AFTER_CREATE_FAULTS:
            return self._fault_reply(request, rule)
        return task_reply(body, rule, headers=headers)

    def _fault_reply(self, request: web.Request, rule: FaultRule) -> web.StreamResponse:
        if rule.kind in ("reset", "reset_after_create"):
            return abort_connection(request)
        reply = error_reply(rule)
        assert reply is not None, rule.kind
        return reply

    async def get_task(self, request: web.Request) -> web.StreamResponse:
        """Handle ``GET /v1/tasks/{task_id}``."""
        api_key = self._api_key(request)
        if api_key is None:
            return error_response(unauthorized())
        task_id = request.match_info["task_id"]
        if not task_id.startswith(ID_PREFIX):
            return error_response(_INVALID_TASK_ID)
        record = self._store.get(task_id)
        if record is None or record.api_key not in (None, api_key):  # another key's task
            return error_response(_task_not_found(task_id))
        # The fault is judged on the body that goes out, read at one instant.
        body = self.body(record)
        status = body["status"]
        rule = self._faults.draw("task", status=status if isinstance(status, str) else None)
        if rule is not None and rule.kind == "slow":
            if not await self._faults.wait(rule):
                return abort_connection(request)
            return task_reply(self.body(record), None)  # the task as it stands after the delay
        if rule is not None and rule.kind in REPLACING_FAULTS:
            return self._fault_reply(request, rule)
        return task_reply(body, rule)
