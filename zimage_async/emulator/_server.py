"""The :class:`Emulator`: the API and the image origin on two loopback listeners."""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence
from typing import TypeVar

from ._api import API_PREFIX, ApiHandlers, api_error_renderer
from ._callbacks import CallbackAttempt, CallbackDispatcher
from ._clock import Clock, check_clock
from ._factory import DurationSource, TaskFactory
from ._faults import FaultPlan, FaultRecord
from ._idempotency import IdempotencyMode
from ._images import ImageCache, ImageFormat, Renderer, check_renderer
from ._injection import FaultInjector
from ._ledger import Ledger, LedgerEntry, LedgerGrouping
from ._links import FILE_EXTENSIONS, LinkSigner, file_path
from ._listeners import Listener, check_host, listener_app, url_host
from ._options import CallbackMode, check_options, check_seed
from ._origin import ImageFraming, OriginHandlers, origin_error_renderer
from ._records import RequestLog, RequestRecord
from ._tasks import TaskRecord, TaskStore

__all__ = ["DEFAULT_API_KEY", "Emulator"]

#: The API key an :class:`Emulator` accepts unless given ``api_keys``.
DEFAULT_API_KEY = "zimage-emulator-key"
_Self = TypeVar("_Self", bound="Emulator")


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


class Emulator:
    """An offline stand-in for the Z-Image Turbo task API, for tests, demos and benchmarks.

    It runs two real HTTP listeners on loopback: the **API** (``base_url``, the same
    routes as production under ``/apiv1``) and an **image origin** (``image_base_url``)
    serving the result images by signed, expiring links, like the provider's file host.
    Use it as an async context manager, or call :meth:`start` and :meth:`close`::

        async with Emulator(task_duration=0.05) as emulator:
            headers = {"Authorization": f"Bearer {emulator.api_key}"}
            ...  # POST f"{emulator.base_url}/v1/images/generations"

    All options are keyword-only; a wrong type or a value out of range is a ``ValueError``:

    - ``api_keys``: a sequence of accepted bearer keys (default ``("zimage-emulator-key",)``;
      a lone string is refused, not split into characters); the first is :attr:`api_key`.
      Each key sees only its own tasks and ``Idempotency-Key`` values.
    - ``host``: the loopback address to bind (127.0.0.0/8 or ``::1``; anything else is a
      ``ValueError``). ``port`` / ``image_port``: the API's and the origin's ports, ints
      from 0 to 65535; 0 (the default) picks free ones.
    - ``clock``: a :class:`Clock` for everything time-related (default
      :class:`SystemClock`); :class:`ManualClock` makes tests deterministic.
    - ``task_duration``: clock seconds from create to terminal state (default 3.0), or a
      callable given the request body. The prompt directive ``[[duration:S]]`` overrides it.
    - ``queue_delay``: clock seconds a task stays ``pending`` before ``processing``
      (default None: 10% of its duration).
    - ``link_ttl``: seconds an image link stays valid after the task completes, a finite
      number above 0 (default 86400.0, the documented 24 hours).
    - ``image_format``: ``"png"`` (default), ``"jpeg"`` or ``"webp"``; the latter two need
      Pillow. ``image_renderer``: ``"auto"`` (Pillow if installed), ``"pillow"`` or
      ``"plain"`` (standard-library PNG). ``images_per_task``: results per task, an int
      from 1 to 16 (default 1). ``image_padding_bytes``: extra bytes in every image file.
    - ``faults``: a :class:`FaultPlan` (replaceable later through :attr:`faults`).
    - ``callback_mode``: ``"strict"`` (default) applies the documented https-only,
      no-internal-address rules to ``callback_url``; ``"permissive"`` also accepts
      ``http``/``https`` URLs to loopback addresses so tests can run a receiver. Callbacks
      are sent to loopback hosts only; one to another host is recorded, never sent.
      ``callback_retry_delays``: a sequence of clock seconds (each 0 or more) between
      delivery attempts (default ``(1.0, 2.0, 4.0)``); ``callback_timeout``: real seconds
      per attempt, a finite number above 0 (default 10.0).
    - ``seed``: an int seeding the emulator's own randomness (task ids, chosen image seeds,
      estimate noise, fault draws, link secret); None (the default) draws a fresh one.
    - ``idempotency``: ``"honour"`` (default) answers a create carrying an
      ``Idempotency-Key`` it has seen within 24 clock hours with the same body with that
      key's task (header ``idempotency-replayed: true``, not billed again), refuses the
      same key with another body (409 ``idempotency_error``) and keys not 16 to 96
      characters long (400); ``"ignore"`` bills every create, like the provider's page.
    - ``image_framing``: ``"length"`` (default, ``Content-Length``), ``"chunked"`` or
      ``"close"`` (no length: the body ends when the origin closes the connection).
    - ``block_script_user_agents``: the origin answers a Cloudflare-style 403 (error 1010)
      to a missing ``User-Agent`` or one mentioning python, aiohttp, requests or curl,
      unless it starts with ``zimage-async/<version>`` (default False).

    Prompt directives: ``[[fail:CODE]]`` makes the task fail with ``CODE``;
    ``[[duration:S]]`` sets its duration; ``[[cancel]]`` ends it ``cancelled``;
    ``[[results:empty]]`` / ``[[results:missing]]`` / ``[[results:null]]`` complete it
    without links. See also :meth:`fail_next`.

    For assertions: :attr:`ledger` (billed tasks), :meth:`billed_tasks` and
    :meth:`billed_counts` (per prompt or idempotency key), :attr:`requests` and
    :attr:`request_counts` (what both listeners received), :attr:`faults_injected` and
    :attr:`fault_log`, :attr:`callback_attempts` and :meth:`wait_for_callbacks`,
    :meth:`task` (a task's JSON now), :meth:`image_bytes` (what the origin serves) and
    :attr:`internal_errors` (should stay empty).
    """

    def __init__(
        self,
        *,
        api_keys: Sequence[str] = (DEFAULT_API_KEY,),
        host: str = "127.0.0.1",
        port: int = 0,
        image_port: int = 0,
        clock: Clock | None = None,
        task_duration: DurationSource = 3.0,
        queue_delay: float | None = None,
        link_ttl: float = 86_400.0,
        image_format: ImageFormat = "png",
        image_renderer: Renderer = "auto",
        images_per_task: int = 1,
        image_padding_bytes: int = 0,
        faults: FaultPlan | None = None,
        callback_mode: CallbackMode = "strict",
        callback_retry_delays: Sequence[float] = (1.0, 2.0, 4.0),
        callback_timeout: float = 10.0,
        seed: int | None = None,
        idempotency: IdempotencyMode = "honour",
        image_framing: ImageFraming = "length",
        block_script_user_agents: bool = False,
    ) -> None:
        self._keys = check_options(
            api_keys=api_keys,
            ports=(port, image_port),
            callback_mode=callback_mode,
            idempotency=idempotency,
            image_framing=image_framing,
            images_per_task=images_per_task,
            link_ttl=link_ttl,
            callback_retry_delays=callback_retry_delays,
            callback_timeout=callback_timeout,
            block_script_user_agents=block_script_user_agents,
        )
        renderer = check_renderer(image_format, image_renderer, image_padding_bytes)
        self._host = check_host(host)
        self._ports = (port, image_port)
        self._clock = check_clock(clock)
        self._rng = random.Random(check_seed(seed))
        self._signer = LinkSigner(secret=self._rng.randbytes(32), ttl_seconds=link_ttl)
        self._image_format = image_format
        self._store = TaskStore()
        self._ledger = Ledger()
        self._requests = RequestLog()
        self._crashes: list[BaseException] = []
        self._faults = FaultInjector(plan=faults, rng=self._rng, clock=self._clock)
        self._factory = TaskFactory(
            store=self._store,
            rng=self._rng,
            task_duration=task_duration,
            queue_delay=queue_delay,
            image_format=image_format,
            images_per_task=images_per_task,
        )
        self._attempts: list[CallbackAttempt] = []
        self._callbacks = CallbackDispatcher(
            clock=self._clock,
            retry_delays_seconds=callback_retry_delays,
            timeout_seconds=callback_timeout,
            on_attempt=self._record_attempt,
        )
        self._api = ApiHandlers(
            api_keys=self._keys,
            store=self._store,
            factory=self._factory,
            ledger=self._ledger,
            faults=self._faults,
            clock=self._clock,
            result_urls=self._result_urls,
            callbacks=self._callbacks,
            allow_loopback_callbacks=callback_mode == "permissive",
            idempotency=idempotency,
        )
        self._origin = OriginHandlers(
            store=self._store,
            signer=self._signer,
            images=ImageCache(),
            faults=self._faults,
            clock=self._clock,
            renderer=renderer,
            padding_bytes=image_padding_bytes,
            framing=image_framing,
            block_script_user_agents=block_script_user_agents,
        )
        self._listeners: list[Listener] = []
        self._state = _State.UNOPENED

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start both listeners (idempotent); raise RuntimeError after :meth:`close`."""
        if self._state is _State.OPEN:
            return
        if self._state is _State.CLOSED:
            raise RuntimeError("This emulator was closed; create a new one.")
        self._state = _State.OPEN
        try:
            self._callbacks.open()
            for routes, renderer, port in (
                (self._api.routes(), api_error_renderer, self._ports[0]),
                (self._origin.routes(), origin_error_renderer, self._ports[1]),
            ):
                app = listener_app(
                    routes, renderer, log=self._requests, on_crash=self._crashes.append
                )
                listener = Listener(app)
                self._listeners.append(listener)
                await listener.start(self._host, port)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop the listeners, cancel pending callbacks and close the HTTP session (idempotent)."""
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        self._faults.close()
        await self._callbacks.close()
        for listener in self._listeners:
            await listener.close()
        await self._origin.drain()

    async def __aenter__(self: _Self) -> _Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- addresses -------------------------------------------------------------------------

    def _port(self, number: int) -> int:
        if self._state is not _State.OPEN or len(self._listeners) <= number:
            raise RuntimeError("The emulator is not running; use 'async with' or start().")
        port = self._listeners[number].port
        assert port is not None
        return port

    @property
    def base_url(self) -> str:
        """The API base URL, e.g. ``http://127.0.0.1:8000/apiv1``."""
        return f"http://{url_host(self._host)}:{self._port(0)}{API_PREFIX}"

    @property
    def image_base_url(self) -> str:
        """The image origin's URL, e.g. ``http://127.0.0.1:8001``."""
        return f"http://{url_host(self._host)}:{self._port(1)}"

    @property
    def api_key(self) -> str:
        """The first configured API key."""
        return self._keys[0]

    @property
    def api_keys(self) -> tuple[str, ...]:
        """All configured API keys."""
        return self._keys

    @property
    def clock(self) -> Clock:
        """The clock the emulator runs on."""
        return self._clock

    def _result_urls(self, record: TaskRecord) -> list[str]:
        origin = self.image_base_url
        expires = self._signer.expires(record.finished_at)
        extension = FILE_EXTENSIONS[record.image_format]
        return [
            self._signer.link(origin, file_path(record.task_id, index, extension), expires)
            for index in range(record.image_count)
        ]

    # -- faults and outcomes ---------------------------------------------------------------

    @property
    def faults(self) -> FaultPlan:
        """The fault plan in use; assign a new plan (or None) to replace it and its scripts."""
        return self._faults.plan

    @faults.setter
    def faults(self, plan: FaultPlan | None) -> None:
        self._faults.plan = plan

    def fail_next(self, code: str, message: str | None = None, *, count: int = 1) -> None:
        """Make the next *count* accepted tasks fail with the error *code* (and *message*).

        A ``[[fail:CODE]]`` directive in a prompt takes precedence and does not use one up.
        *code* is written as in that directive; a wrong type or value is a ValueError.
        """
        self._factory.fail_next(code, message, count)

    # -- inspection ------------------------------------------------------------------------

    @property
    def ledger(self) -> tuple[LedgerEntry, ...]:
        """Billed tasks (one per accepted create call), oldest first."""
        return self._ledger.entries

    def billed_tasks(
        self,
        *,
        prompt: str | None = None,
        idempotency_key: str | None = None,
        api_key: str | None = None,
    ) -> tuple[LedgerEntry, ...]:
        """Return the billed tasks with this *prompt*, *idempotency_key* and *api_key*.

        Oldest first; a criterion left out (None) matches any. ``len(emulator.billed_tasks(
        idempotency_key=key))`` is how often a key was billed: 1 however many times it was
        replayed (0 if never billed). Idempotency keys are kept per API key, so with
        several ``api_keys`` each may bill a key once: pass *api_key* to count one's.
        """
        return self._ledger.select(prompt=prompt, idempotency_key=idempotency_key, api_key=api_key)

    def billed_counts(self, *, by: LedgerGrouping = "prompt") -> dict[str | None, int]:
        """Return the number of billed tasks per prompt (``by="prompt"``) or per key.

        With ``by="idempotency_key"``, creates sent without a key are counted under None.
        """
        return self._ledger.counts(by)

    @property
    def replayed_requests(self) -> tuple[RequestRecord, ...]:
        """The create calls in :attr:`requests` answered with an idempotent replay."""
        return tuple(record for record in self._requests.records if record.replayed)

    @property
    def request_counts(self) -> dict[str, int]:
        """Requests received per endpoint (create, task, image, other) and callback attempts."""
        return self._requests.counts()

    @property
    def requests(self) -> tuple[RequestRecord, ...]:
        """The newest 5,000 requests both listeners received, oldest first (key redacted)."""
        return self._requests.records

    @property
    def faults_injected(self) -> dict[str, int]:
        """Injected faults counted by kind."""
        return self._faults.log.counts()

    @property
    def fault_log(self) -> tuple[FaultRecord, ...]:
        """Every injected fault (kind, endpoint, clock time), oldest first."""
        return self._faults.log.records

    @property
    def callback_attempts(self) -> tuple[CallbackAttempt, ...]:
        """Every callback delivery attempt, oldest first."""
        return tuple(self._attempts)

    @property
    def internal_errors(self) -> tuple[BaseException, ...]:
        """Unexpected exceptions a handler raised (answered with a 500); should stay empty."""
        return tuple(self._crashes)

    async def wait_for_callbacks(self) -> None:
        """Wait until every scheduled callback delivery is delivered or given up.

        Deliveries wait on the emulator's clock: on a :class:`ManualClock` this only
        returns once the clock has been advanced past the tasks' ends and retry delays, so
        wrap it in ``asyncio.wait_for`` in tests.
        """
        await self._callbacks.wait()

    def _record_attempt(self, attempt: CallbackAttempt) -> None:
        self._attempts.append(attempt)
        self._requests.count("callback")

    def _record(self, task_id: str) -> TaskRecord:
        record = self._store.get(task_id)
        if record is None:
            raise KeyError(f"No task {task_id!r} in this emulator.")
        return record

    def task(self, task_id: str) -> dict[str, object]:
        """Return the task JSON as ``GET /v1/tasks/{task_id}`` would now (no faults)."""
        return self._api.body(self._record(task_id))

    async def image_bytes(self, task_id: str, index: int = 0) -> bytes:
        """Return the bytes the origin serves for image *index* of a task.

        Works before the task completes; raises KeyError for an unknown task, a task that
        fails (it has no images) or an index out of range.
        """
        record = self._record(task_id)
        if record.failure_code is not None or not 0 <= index < record.image_count:
            raise KeyError(f"Task {task_id!r} has no image {index}.")
        return await self._origin.image_bytes(record, index)

    def __repr__(self) -> str:
        return f"<Emulator {self._state.value} tasks={len(self._store)}>"
