"""The :class:`Session`: configuration, connection pool and lifecycle; makes handles."""

from __future__ import annotations

import enum
import os
import random
from collections.abc import Mapping
from typing import TYPE_CHECKING

import aiohttp

from ._api import APIClient
from ._batchitems import build_request
from ._batchoptions import check_cost, check_spend_type
from ._callback_url import building_for
from ._closing import CLOSED, NOT_OPEN, OpenGuard, Unshared
from ._config import (
    DEFAULT_BASE_URL,
    check_environment,
    check_kind,
    check_kinds,
    check_receiver,
    check_settings,
    read_base_url,
    read_key,
)
from ._download import ImageLimits
from ._exceptions import SessionClosedError
from ._handle import TaskHandle
from ._idempotency import validate_own_key
from ._journal import Journal, check_journal_target
from ._journaling import Bookkeeper, check_max_credits
from ._links import LINK_TTL
from ._models import GenerationRequest, GenerationResult, Task
from ._polling import Sleeper, checked
from ._runtime import DEFAULT, Runtime, check_wait_timeout
from ._schedule import PollSchedule, RetryPolicy
from ._secret import Secret, frameless_refusals
from ._session_batch import BatchMethods
from ._session_journal import JournalMethods
from ._telemetry import end_open_spans
from ._transport import DEFAULT_USER_AGENT, Transport
from ._validation import validate_task_id

if TYPE_CHECKING:
    from ._webhooks import CallbackReceiver

__all__ = ["DEFAULT_BASE_URL", "Session", "SessionState"]


class SessionState(enum.Enum):
    """Where a :class:`Session` is in its life: it is opened once and closed once."""

    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


class Session(JournalMethods, BatchMethods, Unshared):
    """A connection to the Z-Image Turbo API; use it as ``async with Session() as zs:``.

    Configuration, all keyword-only:

    * ``api_key``: the bearer key; default ``$ZIMAGE_API_KEY``. Kept out of every repr, log line
      and exception, and sent only to ``base_url``'s origin.
    * ``base_url``: default (None) ``$ZIMAGE_BASE_URL``, else :data:`DEFAULT_BASE_URL`; an empty
      one is refused. Plain ``http`` is accepted only for loopback hosts (the emulator).
    * ``timeout``: seconds an API answer may keep us waiting (for its first byte, or between two
      reads); time spent queued for a free connection does not count. ``connect_timeout``: seconds
      to open a connection, a proxy's tunnel included (shorter than ``total_timeout``).
      ``read_timeout``: seconds a download may stall between chunks.
    * ``poll``: a :class:`PollSchedule` (when to poll, the wait limit); ``retry``: a
      :class:`RetryPolicy`. ``max_connections``: requests at a time to the API and to image hosts
      (beyond it they queue). ``http_session``: an ``aiohttp.ClientSession`` of yours to use
      instead of our own; it is never closed by us.
    * ``link_ttl``: seconds image links live after completion (24 h); ``max_image_bytes``: the
      largest image accepted; ``seed``: seeds the jitter, for reproducible schedules;
      ``total_timeout``: seconds one API exchange may take in all (a reply trickling in cannot hold
      a call longer); ``image_timeout``: the same for one image download, retries included;
      ``max_task_bytes``: the most bytes one task's images may hold in memory together (default:
      only ``max_image_bytes`` per image).
    * ``trust_env``: honour ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` (loopback is never proxied,
      ``.netrc`` never read) and ``SSL_CERT_FILE``; ``ca_bundle``: a CA file to trust, e.g. for a
      TLS-inspecting proxy. ``environ``: where the variables are read (default ``os.environ``; with
      another, or without ``trust_env``, the process's ``SSL_CERT_FILE``/``SSL_CERT_DIR`` do not
      count). See :doc:`configuration`.
    * ``user_agent``: the ``User-Agent`` sent with every request (default
      ``zimage-async/<version>``); CDNs block script-like ones (:class:`ImageBlockedError`).
    * ``callbacks``: a :class:`CallbackReceiver` that your server runs, and ``callback_url``: the
      public HTTPS URL it is reachable at. :meth:`submit` then sends ``callback_url`` with every
      task, and awaiting a handle finishes as soon as the callback arrives (and the task, fetched
      from the API, confirms it). Until then the handle still polls, with every delay
      ``callback_poll_factor`` times longer (default 10), so a lost callback delays the result but
      never loses it. A loopback ``callback_url`` needs a loopback ``base_url`` (the emulator). See
      :doc:`webhooks`.
    * ``journal``: a file path (SQLite) or a ``postgresql://`` URL: every create is recorded there
      before it is sent and after each change of state, for :meth:`unfinished`, :meth:`recover` and
      :meth:`spent`; ``max_credits``: refuse (:class:`SpendLimitError`, nothing sent) a create that
      would take what the journal counts as reserved over this many credits. See :doc:`journal`.

    A session is opened once and closed once, by its opener; using it before opening or
    after closing raises :class:`RuntimeError`, and so does opening (or ``async with``) a
    session already open: pass it to the code using it, which must not close it. It
    cannot be pickled or copied (``TypeError``).

    >>> Session(api_key="sk-secret", base_url="https://api.example")
    <Session https://api.example unopened>
    """

    @frameless_refusals
    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        poll: PollSchedule | None = None,
        retry: RetryPolicy | None = None,
        max_connections: int = 100,
        http_session: aiohttp.ClientSession | None = None,
        link_ttl: float = LINK_TTL,
        max_image_bytes: int = 64 * 1024 * 1024,
        seed: int | None = None,
        environ: Mapping[str, str] | None = None,
        callbacks: CallbackReceiver | None = None,
        callback_url: str | None = None,
        callback_poll_factor: float = 10.0,
        user_agent: str = DEFAULT_USER_AGENT,
        total_timeout: float = 120.0,
        image_timeout: float = 600.0,
        max_task_bytes: int | None = None,
        trust_env: bool = True,
        ca_bundle: str | os.PathLike[str] | None = None,
        journal: str | os.PathLike[str] | None = None,
        max_credits: float | None = None,
    ) -> None:
        check_kinds(
            poll=poll,
            retry=retry,
            http_session=http_session,
            seed=seed,
            trust_env=trust_env,
        )
        ca_bundle = check_environment(environ=environ, ca_bundle=ca_bundle)
        key, env = read_key(api_key, os.environ if environ is None else environ)
        from_process = environ is None  # then OpenSSL may read SSL_CERT_DIR from it too
        self._api_key = Secret(key)
        del api_key, environ, key  # no plain key stays in this frame (a traceback's locals)
        check_settings(
            seconds={
                "timeout": timeout,
                "connect_timeout": connect_timeout,
                "read_timeout": read_timeout,
                "link_ttl": link_ttl,
                "total_timeout": total_timeout,
                "image_timeout": image_timeout,
            },
            max_image_bytes=max_image_bytes,
            max_task_bytes=max_task_bytes,
            user_agent=user_agent,
            max_connections=max_connections,
            callback_poll_factor=callback_poll_factor,
        )
        self._base_url = read_base_url(base_url, env)
        self._callback_url = check_receiver(callbacks, callback_url, base_url=self._base_url)
        self._poll = poll or PollSchedule()
        self._retry = retry or RetryPolicy()
        self._transport = Transport(
            http_session=http_session,
            max_connections=max_connections,
            timeout=timeout,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            user_agent=user_agent,
            total_timeout=total_timeout,
            api_base_url=self._base_url,
            trust_env=trust_env,
            environ=None if from_process else env,
            ca_bundle=ca_bundle,
        )
        self._rng = random.Random(seed)
        if journal is not None and not isinstance(journal, Journal):
            check_journal_target("journal", journal)
        max_credits = check_spend_type(max_credits)
        limit = check_max_credits(max_credits, journal=journal, name="max_credits")
        self._book = (
            None
            if journal is None
            else Bookkeeper(journal, max_credits=limit, base_url=self._base_url)
        )
        self._state = SessionState.UNOPENED
        self._guard = OpenGuard()  # opened once: a second open or `async with` is refused
        self._sleeper = Sleeper()  # the naps of its waits, cut short when it closes
        self._runtime = Runtime(
            api=APIClient(
                self._transport,
                base_url=self._base_url,
                api_key=self._api_key,
                retry=self._retry,
                rng=self._rng,
                sleep=checked(self._sleeper, self._check_open),
            ),
            transport=self._transport,
            poll=self._poll,
            retry=self._retry,
            limits=ImageLimits(
                max_bytes=max_image_bytes,
                max_task_bytes=max_task_bytes,
                total_timeout=image_timeout,
            ),
            link_ttl=link_ttl,
            rng=self._rng,
            check_open=self._check_open,
            hints=callbacks,
            callback_poll_factor=callback_poll_factor,
            sleep=self._sleeper,
            secrets=(self._api_key,),
        )

    def __repr__(self) -> str:
        # Also for a Session refused half-way through __init__ (a traceback's locals).
        state = getattr(self, "_state", SessionState.UNOPENED)
        return f"<Session {getattr(self, '_base_url', '?')} {state.value}>"

    @property
    def base_url(self) -> str:
        """The API base URL requests go to."""
        return self._base_url

    @property
    def state(self) -> SessionState:
        """Whether the session is unopened, open or closed."""
        return self._state

    @property
    def poll(self) -> PollSchedule:
        """The poll schedule handles use by default."""
        return self._poll

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy for requests."""
        return self._retry

    def _check_open(self) -> None:
        if self._state is SessionState.UNOPENED:
            raise RuntimeError(NOT_OPEN)
        if self._state is SessionState.CLOSED:
            raise SessionClosedError(CLOSED)

    async def open(self) -> Session:
        """Open the connection pool, once (RuntimeError if open). ``async with`` does this."""
        if self._state is SessionState.CLOSED:
            raise RuntimeError("a closed Session cannot be reopened; create a new one")
        with self._guard.opening(is_open=self._state is SessionState.OPEN):
            if self._book is not None:
                await self._book.open()
                if self.state is SessionState.CLOSED:  # closed meanwhile: it stays closed
                    await self._book.close()
                    raise RuntimeError("the Session was closed while it opened")
            try:
                self._transport.open()
            except BaseException:
                if self._book is not None:
                    await self._book.close()  # nothing left open by an open that failed
                raise
            self._state = SessionState.OPEN
        self._guard.opened()  # `async with await zs.open()`: that `async with` closes it
        return self

    async def close(self) -> None:
        """Close the connection pool (not a caller-owned ``http_session``). Idempotent.

        Cancelled part-way, it still closes every pool, then raises the cancellation (a
        second close finishes what is left). Raises RuntimeError, changing nothing, from
        another event loop while the one that opened the session still runs (close it
        there); once that loop has ended, its connections are closed at once from here.
        """
        if self._state is not SessionState.CLOSED:
            self._transport.check_loop(closing=True)
        self._state = SessionState.CLOSED
        self._sleeper.wake_all()  # a wait napping now looks, and fails as closed, at once
        self._runtime.deadlines.close()
        end_open_spans(self._runtime.open_spans)
        try:
            await self._transport.close()
        finally:
            if self._book is not None:
                await self._book.close()

    async def __aenter__(self) -> Session:
        if not (self._guard.take() and self._state is SessionState.OPEN):
            await self.open()  # RuntimeError if already open: entered once, closed once
            self._guard.take()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def submit(
        self,
        prompt: str | GenerationRequest,
        *,
        size: str | None = None,
        seed: int | None = None,
        nsfw_check: bool | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        cost: float | None = None,
    ) -> TaskHandle:
        """Create a generation task (billed) and return its :class:`TaskHandle`.

        *prompt* is the prompt text or a ready :class:`GenerationRequest`. Every field is
        validated first (:class:`InvalidRequestError`, nothing sent). The create call is
        retried only when the service certainly made no task; when that is unknown,
        :class:`SubmissionUncertainError` is raised instead of paying twice.

        Each call sends an ``Idempotency-Key`` header, the same on every retry; pass
        *idempotency_key* (16-96 letters, digits and ``. _ : -``) to choose it, e.g. an id
        from your own database, so that a repeated submission of the same work returns
        the task the key already made wherever the gateway honours keys.

        With a ``journal``, the create is recorded before it is sent (checked against
        ``max_credits`` with *cost*, its expected credits, else the last price seen) and
        the handle records the task's outcome. *callback_url* follows the rule of the
        session's own: on a loopback ``base_url`` (the emulator), loopback URLs too.
        """
        try:
            with building_for(self._base_url):
                request = build_request(
                    prompt, size=size, seed=seed, nsfw_check=nsfw_check, callback_url=callback_url
                )
        finally:  # its query may be a token (the request's repr leaves it out): no local
            del callback_url
        if idempotency_key is not None:
            idempotency_key = validate_own_key(idempotency_key)
        self._check_open()
        return await self._send(request, idempotency_key, cost=check_cost(cost))

    async def generate(
        self,
        prompt: str | GenerationRequest,
        *,
        size: str | None = None,
        seed: int | None = None,
        nsfw_check: bool | None = None,
        callback_url: str | None = None,
        timeout: float | None = DEFAULT,
        idempotency_key: str | None = None,
    ) -> GenerationResult:
        """Submit, wait and download in one call: ``await zs.generate("a cat")``.

        Equivalent to ``await (await zs.submit(...)).result(timeout=timeout)``, except
        that a *timeout* the wait would refuse is refused before the create is sent.
        """
        timeout = check_wait_timeout(timeout)
        try:
            with building_for(self._base_url):  # as submit() builds it
                request = build_request(
                    prompt, size=size, seed=seed, nsfw_check=nsfw_check, callback_url=callback_url
                )
        finally:  # its query may be a token (the request's repr leaves it out): no local
            del callback_url
        handle = await self.submit(request, idempotency_key=idempotency_key)
        return await handle.result(timeout=timeout)

    def task(self, task_id: str, *, request: GenerationRequest | None = None) -> TaskHandle:
        """Return a handle for an existing task, from its stored id (no request yet).

        *request*, the request the task was made from, if you kept it, lets the handle
        check image sizes, name files by its prompt and embed it as metadata. When the
        session's journal holds the task unfinished (made at this base URL), the handle
        records its outcome there, as the handles of :meth:`submit` and :meth:`recover`
        do. It polls at the normal pace: whether a callback will come is not known.
        """
        task_id = validate_task_id(task_id)
        rule = "the GenerationRequest the task was made from, or None"
        check_kind("request", request, (GenerationRequest, type(None)), rule)
        self._check_open()
        if self._book is None:
            return TaskHandle(self._runtime, task_id, None, request)
        # Normal pace, as without a journal: its callback may go to an earlier receiver.
        return self._book.handle(
            self._runtime, task_id, None, request, key=None, expects_callback=False
        )

    def _task(self, task_id: str, *, request: GenerationRequest | None = None) -> TaskHandle:
        """Return a handle for *task_id* that records nothing (its owner records its outcome)."""
        return TaskHandle(self._runtime, task_id, None, request)

    async def get_task(self, task_id: str) -> Task:
        """Fetch a task's current snapshot once (``GET /v1/tasks/{id}``)."""
        task_id = validate_task_id(task_id)
        self._check_open()
        return await self._runtime.api.get_task(task_id)
