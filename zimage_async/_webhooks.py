"""The :class:`CallbackReceiver`: an aiohttp endpoint for the provider's task callbacks.

The provider POSTs the finished task to ``callback_url``, unsigned. The receiver reads
only the task id from the body (bounded in size), answers at once, and wakes the handles
waiting on that id; they fetch ``GET /v1/tasks/{id}`` themselves and believe only that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.http import HttpProcessingError

from ._config import check_seconds
from ._deadlines import within
from ._exceptions import InvalidRequestError
from ._hints import HintBoard, HintWatch, read_hint
from ._quoting import number_or_type
from ._secret import without_queries

__all__ = ["CallbackReceiver"]

logger = logging.getLogger("zimage_async")

#: The largest ``max_body_bytes``: a callback is a few hundred bytes, read into memory whole.
MAX_BODY_BYTES = 16 * 1024 * 1024
#: The largest ``max_hints``: the table of kept hints takes about 128 bytes an id.
MAX_HINTS = 1_000_000
#: Seconds in which one refusal of each kind is logged at INFO (see :class:`_RefusalLog`).
REFUSAL_LOG_PERIOD = 60.0
#: Seconds that leaving :meth:`CallbackReceiver.serve` waits for requests under way.
SERVE_GRACE = 1.0


def _check_count(name: str, value: object, *, most: int, what: str) -> int:
    """Return *value* if it is a whole number from 1 to *most* (a bool is no number)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise InvalidRequestError(
            name, f"a whole number of {what} from 1 to {most:,}", f"got {number_or_type(value)}"
        )
    return value


class _RefusalLog:
    """Logs refused callbacks so that a sender refused over and over cannot flood the log.

    In each period of :data:`REFUSAL_LOG_PERIOD` seconds (from a refusal), the first
    refusal of each kind is logged at INFO with its reason, the others at DEBUG. The
    first refusal after a period in which some went to DEBUG logs first, at INFO, how
    many did. So a flood costs a few INFO lines a minute; ``refused`` counts them all.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._since: float | None = None
        self._kinds: set[str] = set()
        self._quiet = 0

    def log(self, kind: str, level: int, total: int, message: str, *args: object) -> None:
        """Log refusal number *total*, of *kind*, at *level*: DEBUG if its kind was at INFO."""
        now = self.clock()
        if self._since is None or now - self._since >= REFUSAL_LOG_PERIOD:
            if self._quiet and self._since is not None:
                logger.info(
                    "refused %d more task callbacks in the last %.0f s, logged at DEBUG "
                    "(%d in all so far)",
                    self._quiet,
                    now - self._since,
                    total,
                )
            self._since, self._kinds, self._quiet = now, set(), 0
        if level >= logging.INFO and kind in self._kinds:
            self._quiet += 1
            level = logging.DEBUG
        elif level >= logging.INFO:
            self._kinds.add(kind)
        logger.log(level, message, *args)


if TYPE_CHECKING:
    _LoggerAdapter = logging.LoggerAdapter[logging.Logger]
else:  # not subscriptable at run time before Python 3.11
    _LoggerAdapter = logging.LoggerAdapter


class _ServerLog(_LoggerAdapter):
    """The ``aiohttp.server`` logger of :meth:`CallbackReceiver.serve`'s listener.

    aiohttp refuses some requests itself, while parsing them and before any handler runs:
    a body in a Content-Encoding it cannot decode (``br``, ``zstd`` without their
    decoders), a malformed request line or header, or a malformed chunk sent with them.
    It answers 400 and logs each as an ERROR with a traceback. This logger hands them to
    *refused* (the receiver counts and logs them like its own refusals) and passes
    everything else, such as a handler's crash, on to ``aiohttp.server`` unchanged.
    """

    def __init__(self, refused: Callable[[HttpProcessingError, int], None]) -> None:
        super().__init__(logging.getLogger("aiohttp.server"), {})
        self._refused = refused

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        error = kwargs.get("exc_info")
        if isinstance(error, HttpProcessingError):
            self._refused(error, level)
        else:
            super().log(level, msg, *args, **kwargs)


class CallbackReceiver:
    """Receives the provider's task callbacks and wakes the handles waiting for them.

    Give it to a :class:`Session` together with the public URL it is reachable at::

        receiver = CallbackReceiver()
        app.router.add_post("/hooks/zimage", receiver.receive)   # in your aiohttp app
        async with Session(callback_url="https://example.com/hooks/zimage",
                           callbacks=receiver) as zs:
            result = await zs.generate("a cat")   # done as soon as the callback lands

    Mount it as a route (:meth:`receive`), as a sub-application (:meth:`app`), or run it
    on its own (:meth:`serve`).

    **Zero trust.** A callback is unsigned, so its body is only a hint of *which* task
    changed: the receiver takes the ``id`` and nothing else, and the handle waiting on
    that id fetches the task from the API with your key and acts on what the API says. A
    forged "completed" body with other result URLs therefore changes nothing.

    **Replies.** The reply never depends on what the fetch will show, because the fetch
    happens after the reply (so it is fast, well within the provider's 10 s timeout):

    * ``202`` for any body naming a well-formed task id, known or not. An id nobody waits
      on yet is kept for ``hint_ttl`` seconds (a fast task's callback may arrive before
      the create call's answer); answering the same for known and unknown ids tells a
      prober nothing about which tasks exist. Duplicates are harmless: a handle fetches
      at most once per hint, and not more often than its poll schedule's ``wait_min``.
    * ``400`` for a body that is not a JSON object with a valid task id, and ``413`` for
      one over ``max_body_bytes`` (its connection closed: the rest is not read, nor
      decompressed; a sender still sending may see it reset). The provider never sends
      either, so a 4xx can only reach a misconfigured or hostile sender, and it tells
      them nothing new.
    * A body that does not arrive whole is refused too: ``400`` if its compression is
      broken, ``408`` if it is not all in within ``body_timeout`` (a sender trickling
      it, a chunked body that never ends), each answered with ``Connection: close`` and
      the connection closed; a sender that hangs up midway gets no answer. Each is
      counted in :attr:`refused` and logged like the other refusals, without a
      traceback, never as an error of your application.
    * A malformed chunk in a chunked body: sent together with the head, aiohttp refuses
      the request itself with ``400`` (see below); sent after it, the body stalls in
      aiohttp's C parser and gets ``408`` at ``body_timeout``, like any body that never
      ends (aiohttp's pure-Python parser, as on PyPy, hands the error on: ``400`` at
      once, counted and logged like the other refusals).
    * Some requests aiohttp refuses itself, with ``400``, before any handler runs: a body
      in a Content-Encoding it cannot decode (``br`` or ``zstd`` without their
      decoders), a malformed request line or header, a malformed chunk that arrives
      with the head. Under :meth:`serve` these are counted in :attr:`refused` and logged
      like the other refusals too. Mounted in your app (:meth:`receive`,
      :meth:`app`), the receiver never sees them: your server answers and logs them as
      for any route (aiohttp logs them on ``aiohttp.server`` as errors with a
      traceback, unless you give your ``AppRunner`` a ``logger``).

    **Logs.** Refusals are logged on the ``zimage_async`` logger without a traceback,
    and a flood of them cannot flood the log: in each minute, the first refusal of each
    kind at INFO with its reason and the others at DEBUG, then one INFO line saying how
    many went to DEBUG (:attr:`refused` counts them all).

    Options, keyword-only: ``max_body_bytes`` (default 64 KiB; a task is a few hundred
    bytes), ``body_timeout`` (seconds to read a body, from when its headers are in;
    default 5), ``hint_ttl`` (seconds a hint for an id nobody waits on is kept, default
    60) and ``max_hints`` (how many such ids the table of kept hints is sized for, about
    128 bytes each: no hint is dropped early, but past that many ids within
    ``hint_ttl``, ids nobody posted start to look hinted, each costing its handle one
    early task read, never more often than the poll schedule's ``wait_min``). The
    counts are whole numbers, ``max_body_bytes`` from 1 to 16 MiB (16,777,216) and
    ``max_hints`` from 1 to 1,000,000 (a table of 128 MB); the seconds are finite
    numbers above 0. Anything else, a bool included, raises
    :class:`InvalidRequestError` naming the option.

    One receiver may serve sessions running on other event loops, in other threads (a
    receiver in your web server's loop, sessions in worker threads): a callback wakes
    each handle through its own loop.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        *,
        max_body_bytes: int = 64 * 1024,
        body_timeout: float = 5.0,
        hint_ttl: float = 60.0,
        max_hints: int = 4096,
    ) -> None:
        self._max_body = _check_count(
            "max_body_bytes", max_body_bytes, most=MAX_BODY_BYTES, what="bytes"
        )
        self._body_timeout = check_seconds("body_timeout", body_timeout)
        self._board = HintBoard(
            hint_ttl=check_seconds("hint_ttl", hint_ttl),
            max_hints=_check_count("max_hints", max_hints, most=MAX_HINTS, what="task ids"),
        )
        self._accepted = 0
        self._refused = 0
        self._refusals = _RefusalLog()

    def __repr__(self) -> str:
        return f"<CallbackReceiver accepted={self._accepted} refused={self._refused}>"

    @property
    def accepted(self) -> int:
        """Callbacks answered 202 so far (each a hint, verified by a fetch later)."""
        return self._accepted

    @property
    def refused(self) -> int:
        """Callbacks refused so far: malformed, without a valid id, too large, or cut off.

        Cut off: the body did not arrive whole within ``body_timeout``, was broken, or its
        sender hung up (which gets no answer, but is counted here). Under :meth:`serve`,
        also the requests aiohttp refused before the receiver saw them (a malformed head,
        a malformed chunk sent with it, an undecodable Content-Encoding).
        """
        return self._refused

    @property
    def watched(self) -> int:
        """How many task ids handles are waiting on through this receiver now."""
        return self._board.watched

    def watch(self, task_id: str) -> contextlib.AbstractContextManager[HintWatch]:
        """Watch *task_id* for callbacks while a ``with`` block runs (used by handles).

        The watch's ``wait(seconds)`` returns ``True`` as soon as a callback for the id
        arrives (or one arrived in the last ``hint_ttl`` seconds), else ``False`` after
        *seconds*.
        """
        return self._board.watch(task_id)

    async def _read(self, request: web.Request) -> bytes | None:
        """Read the body; return ``None`` if it is larger than ``max_body_bytes``.

        A middleware may have read it already (``await request.read()``, as audit and
        body-logging ones do): its stream is drained then, and aiohttp keeps the bytes
        for ``request.read()``, which returns them (held to ``max_body_bytes`` as well).
        """
        if request.content_length is not None and request.content_length > self._max_body:
            return None
        if request.body_exists and not request.can_read_body:  # read before the receiver
            kept = await request.read()
            return kept if len(kept) <= self._max_body else None
        body = await request.content.read(self._max_body + 1)
        while len(body) <= self._max_body:
            more = await request.content.read(self._max_body + 1 - len(body))
            if not more:
                return body
            body += more
        return None

    def _refuse(self, status: int, reason: str) -> web.Response:
        self._refused += 1
        self._refusals.log(
            reason, logging.INFO, self._refused, "refused a task callback: %s", reason
        )
        return web.Response(status=status, text=f"{reason}\n")

    def _refused_by_aiohttp(self, error: HttpProcessingError, level: int) -> None:
        """Count and log a request aiohttp refused (answered 400) before :meth:`receive`.

        Logged as the receiver's own refusals are, without a traceback, or at aiohttp's
        own lower level (it logs a first request that is not HTTP at all, such as TLS, at
        DEBUG).
        """
        self._refused += 1
        # On one line (aiohttp's can have a caret line under the offending bytes), shown
        # escaped where not printable, and cut short: it may quote the sender's bytes.
        details = without_queries(
            "".join(
                c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                for c in " ".join(str(error.message).split())
            )
        )[:200]
        self._refusals.log(
            "aiohttp",
            min(level, logging.INFO),
            self._refused,
            "refused a task callback: aiohttp could not read the request (%s)",
            details,
        )

    async def _refuse_and_close(
        self, request: web.Request, status: int, reason: str
    ) -> web.Response:
        """Refuse a body that did not arrive whole (or is too large), then close its connection.

        The rest of such a body is never read: the answer is sent at once, and the
        connection closed without aiohttp's lingering read of what is left (which would
        wait on the same slow sender, or raise the same broken chunks again).
        """
        reply = self._refuse(status, reason)
        reply.force_close()
        with contextlib.suppress(ConnectionError):  # the sender may be gone already
            await reply.prepare(request)
            await reply.write_eof()
        request.protocol.force_close()
        return reply

    async def receive(self, request: web.Request) -> web.Response:
        """Handle one callback POST: an aiohttp handler for ``router.add_post``.

        Reads at most ``max_body_bytes`` for at most ``body_timeout`` seconds, takes the
        task id, wakes the handles waiting on it and answers, without any request of its
        own.
        """
        try:
            # A cancellation of the handler (its sender gone, the server stopping) stays
            # one, also in the turn the read ends (within(), not asyncio.wait_for).
            body = await within(self._read(request), self._body_timeout)
        except asyncio.TimeoutError:
            return await self._refuse_and_close(
                request, 408, f"the body was not all in within {self._body_timeout:g} s"
            )
        except ConnectionError:
            return await self._refuse_and_close(
                request, 400, "the sender hung up before the whole body was in"
            )
        except (web.RequestPayloadError, HttpProcessingError):
            # Broken compression; or broken chunks, which aiohttp's pure-Python parser
            # (PyPy, AIOHTTP_NO_EXTENSIONS) hands on here, and its C parser does not.
            return await self._refuse_and_close(
                request, 400, "the body's chunks or compression are broken"
            )
        if body is None:
            return await self._refuse_and_close(
                request, 413, f"the body is larger than {self._max_body} bytes"
            )
        task_id = read_hint(body)
        if task_id is None:
            return self._refuse(400, "the body is not a JSON task object with a valid id")
        self._accepted += 1
        waiting = self._board.post(task_id)
        # The body is not logged: its result links are capabilities, and it is untrusted.
        logger.debug(
            "callback hint for task %s (%s)",
            task_id,
            "a handle will fetch it" if waiting else "no handle waits on it yet; kept",
        )
        return web.Response(status=202, text="accepted\n")

    def app(self) -> web.Application:
        """Return an aiohttp application serving ``POST /`` with :meth:`receive`.

        Mount it in yours with ``app.add_subapp("/hooks/zimage", receiver.app())``; the
        callback URL is then ``https://<your host>/hooks/zimage/``.
        """
        app = web.Application(client_max_size=self._max_body)
        app.router.add_post("/", self.receive)
        return app

    @contextlib.asynccontextmanager
    async def serve(self, *, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Run the receiver on its own listener; yield the URL it listens on.

        ``async with receiver.serve(host="0.0.0.0", port=8080) as url:`` serves
        ``POST /`` until the block ends (port 0 picks a free port). The yielded URL is the
        local address; the provider needs your public HTTPS address (behind a TLS proxy)
        unless you test against the emulator. Requests aiohttp refuses before the receiver
        sees them (an undecodable Content-Encoding, a malformed head, or a malformed chunk
        sent with it) are counted in :attr:`refused` and logged like the receiver's own
        refusals. aiohttp bounds no request head in time: serve it behind
        a proxy with a header timeout.
        """
        # Requests aiohttp refuses are counted and logged as refusals, not as errors.
        server_log = _ServerLog(self._refused_by_aiohttp)
        # Its exit waits this long, not aiohttp's 60 s, for a sender still trickling or
        # not reading its answers: a callback is answered in milliseconds.
        runner = web.AppRunner(
            self.app(), access_log=None, logger=server_log, shutdown_timeout=SERVE_GRACE
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            bound_host, bound_port = runner.addresses[0][:2]
            shown = f"[{bound_host}]" if ":" in bound_host else bound_host
            yield f"http://{shown}:{bound_port}/"
        finally:
            await runner.cleanup()
