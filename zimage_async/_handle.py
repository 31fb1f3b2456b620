"""The awaitable :class:`TaskHandle`: poll a task to its end, then fetch its images."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from ._delivery import Delivery, check_image_index
from ._exceptions import WaitTimeoutError, ZImageError
from ._handlepolls import HandlePolls, note_read_failure, note_retrying
from ._imagelimits import DownloadInfo
from ._models import GenerationRequest, GenerationResult, Task, TaskStatus
from ._polling import DeadlineReached, bounded, deadline_after
from ._quoting import log_text
from ._runtime import DEFAULT, Runtime, wait_limit
from ._saving import plan_save, prepare_folder
from ._schedule import PollState
from ._telemetry import handle_span
from ._verdict import note_unknown_status, task_failure

__all__ = ["TaskHandle"]

logger = logging.getLogger("zimage_async")

T = TypeVar("T")


# What a wait hands the completed task to: module functions, so that no wait makes a
# closure (a waiting handle holds as few objects as it can).
async def _completed(handle: TaskHandle, task: Task) -> Task:
    return task


async def _fetch_all(handle: TaskHandle, task: Task) -> GenerationResult:
    return await handle._delivery.fetch_all(task)


class TaskHandle(HandlePolls):
    """One task at the service: await it for the result, or poll, stream and save.

    Made by :meth:`Session.submit` (with the create call's snapshot) or
    :meth:`Session.task` (from a stored id). ``await handle`` polls until the task is
    completed or failed, then downloads every image: it returns a
    :class:`GenerationResult` or raises :class:`TaskFailedError`. A handle can be
    awaited any number of times and by many coroutines at once; they share one poll
    loop, and the result is cached. When the session has a :class:`CallbackReceiver`, a
    callback for the task wakes the wait at once (the task is then fetched, never taken
    from the callback), and polling slows down while a callback is expected.

    Stopping a wait (timeout or cancellation) stops local polling only: the task goes
    on at the service and is billed. Await the handle again to resume.
    """

    def __init__(
        self,
        runtime: Runtime,
        task_id: str,
        snapshot: Task | None,
        request: GenerationRequest | None = None,
        *,
        expects_callback: bool = False,
    ) -> None:
        self._rt = runtime
        self._request = request
        self._expects_callback = expects_callback and runtime.hints is not None
        self._id = task_id
        self._task = snapshot
        self._fresh = snapshot is not None  # the snapshot was just returned by create
        self._fresh_at = runtime.clock()  # when it arrived: the schedule counts from then
        self._seen_at: float | None = None  # when an answer last showed the task (_observe)
        self._lock = asyncio.Lock()
        self._completed_seen: float | None = None
        self._state: PollState | None = None  # the running wait's schedule
        self._stall_told = False
        started = runtime.api.task_spans.pop(task_id, None)  # the create's, if it made it
        self._span = handle_span(started, task_id, self, runtime.open_spans)
        self._waiters = 0  # the waits under way (see _waiting)
        self._skipped: BaseException | None = None  # a failure of a wait that was not last
        self._deliverer: Delivery | None = None  # made when the images are first wanted
        if snapshot is not None:
            self._observe(snapshot)

    def __reduce__(self) -> NoReturn:
        """Refuse pickling and copying: a handle belongs to its open Session."""
        raise TypeError(
            f"a TaskHandle cannot be pickled or copied (it belongs to its open Session): "
            f"keep its id, {self._id!r}, and resume with session.task(id)"
        )

    def __repr__(self) -> str:
        status = self._task.raw_status if self._task is not None else "unknown"
        progress = self._task.progress if self._task is not None else None
        return f"<TaskHandle {self._id} status={status} progress={progress}>"

    @property
    def id(self) -> str:
        """The task id (``task-unified-...``); store it to resume later."""
        return self._id

    @property
    def task(self) -> Task | None:
        """The last snapshot seen (once the task has ended, the first ended one), or ``None``.

        ``None`` for a resumed handle not yet polled.
        """
        return self._task

    @property
    def status(self) -> TaskStatus | None:
        """The last known status, or ``None`` if not known yet."""
        return self._task.status if self._task is not None else None

    @property
    def progress(self) -> int | None:
        """The last known progress (0-100), or ``None`` if not known yet."""
        return self._task.progress if self._task is not None else None

    @property
    def expires_at(self) -> float | None:
        """Unix time after which the image links stop working, once completed.

        24 hours (the session's ``link_ttl``) after completion was first seen, or
        earlier if a link states its own expiry and that is believable (see
        :meth:`Task.believed_expiry`). Downloads are still tried until the 24 hours
        are up: the image host's answer decides.
        """
        if self._completed_seen is None or self._task is None:
            return None
        ttl = self._rt.link_ttl
        return self._task.links_expire_at(self._completed_seen + ttl, lifetime=ttl)

    @property
    def eta(self) -> float | None:
        """Unix time at which the task is predicted to finish, or ``None`` when unknown.

        The poll schedule's own prediction, from the service's estimate and then from
        the rate of progress between looks; ``None`` before the first look, while the
        task is overdue (it has outlived its prediction), and once it has ended.
        """
        state = self._state
        if state is None or state.predicted_finish is None or self.is_done:
            return None
        return self._rt.now() + (state.predicted_finish - self._rt.clock())

    @property
    def _delivery(self) -> Delivery:
        if self._deliverer is None:
            # Made once the task has completed: when that was first seen is known, and
            # the Delivery holds no reference back to the handle (no reference cycle).
            self._deliverer = Delivery(
                self._rt,
                self._id,
                self._request,
                completed_at=self._completed_seen,
                span=self._span,
            )
        return self._deliverer

    def _observe(self, task: Task) -> None:
        self._seen_at = self._rt.clock()  # it exists: a 404 for a while is a lagging read
        kept = self._task
        if kept is not None and kept.is_terminal and task is not kept:
            # What was seen ended stays ended: a later read that says otherwise (another
            # status, other links) comes from a replica or cache that lags behind.
            if (task.raw_status, task.results) != (kept.raw_status, kept.results):
                logger.info(
                    "task %s: a read answered %s after the task was seen %s; the earlier"
                    " answer stands (a lagging replica or cache)",
                    self._id,
                    log_text(task.raw_status),
                    log_text(kept.raw_status),
                )
            return
        self._task = task
        if task.status is TaskStatus.COMPLETED and self._completed_seen is None:
            self._completed_seen = self._rt.now()
        if self._span.recording:
            self._span.observe(task, self._rt.clock())
        if task.status is TaskStatus.UNKNOWN:
            note_unknown_status(self._id, task.raw_status, self._rt.warned_statuses)

    async def refresh(self) -> Task:
        """Fetch the task once (``GET /v1/tasks/{id}``) and return the handle's snapshot.

        That is the new one, unless the task was already seen ended: that snapshot stays
        (a later read that disagrees, another status or other links, comes from a replica
        or cache of the gateway that lags behind; it is logged at ``INFO``). A failure names
        the task and says how to collect it later; a 404 only names it, unless an answer showed it.
        """
        self._rt.check_open()
        try:
            task = await self._rt.api.get_task(self._id, span=self._span)
        except ZImageError as exc:  # the read failed, not the task: it goes on
            note_read_failure(exc, self._id, self._seen_at, self._rt.clock())
            raise
        self._span.polls += 1
        self._fresh = False
        self._observe(task)
        assert self._task is not None
        return self._task

    def _timed_out(self, timeout: float | None, *, stage: str = "wait") -> WaitTimeoutError:
        last = self._task.raw_status if self._task is not None else None
        error = WaitTimeoutError(
            task_id=self._id, timeout=timeout or 0.0, last_status=last, stage=stage
        )
        return note_retrying(error)

    async def _finish(
        self,
        limit: float | None,
        deadline: float | None,
        deliver: Callable[[TaskHandle, Task], Awaitable[T]],
    ) -> T:
        """Wait for completion, then *deliver* the completed task, both by *deadline*.

        One deadline scope for both, entered once: nothing but the poll loop and the
        delivery runs in it. Its expiry raises :class:`WaitTimeoutError` naming the stage.
        """
        stage = "wait"
        try:
            with bounded(deadline, self._rt.deadlines):
                task = await self._until_terminal(deadline)
                failure = task_failure(task, self._id)
                if failure is not None:
                    self._span.fail(task, failure)
                    raise failure
                stage = "download"
                return await deliver(self, task)
        except DeadlineReached:
            raise self._timed_out(limit, stage=stage) from None

    async def wait(self, *, timeout: float | None = DEFAULT) -> Task:
        """Poll until the task finishes; return the completed :class:`Task`.

        The returned task always has at least one result link. Raises
        :class:`TaskFailedError` if it failed or was cancelled (with the ``error`` as
        sent in ``raw_error``), :class:`NoResultsError` at once if it completed without
        any link (the answer will not change, so it is neither retried nor polled
        again), and :class:`WaitTimeoutError` if it is still running after *timeout*
        seconds (default: the session's poll schedule; ``None`` waits without limit).
        ``result()``, ``save()``, ``iter_bytes()`` and ``await handle`` raise the same.
        """
        limit = wait_limit(timeout, self._rt.poll)
        with self._waiting():
            return await self._finish(limit, deadline_after(limit), _completed)

    async def updates(self, *, timeout: float | None = DEFAULT) -> AsyncGenerator[Task, None]:
        """Yield a snapshot each time the status or progress changes, ending when it ends.

        The latest snapshot known (the create call's, at first) comes first, and two
        loops at once each see every change. Polling happens only while you iterate, in
        the same loop as :meth:`wait` (callback hints included). A failed task ends the
        iteration without raising (look at the last snapshot's status); failures of the
        calls themselves, and :class:`WaitTimeoutError`, are raised. Close it early with
        ``contextlib.aclosing`` (or let ``async for`` run to the end). A task that ends
        without a result ends the task span as :meth:`wait` would, before its last
        snapshot is yielded.
        """
        limit = wait_limit(timeout, self._rt.poll)
        last: tuple[str, int] | None = None
        with self._waiting():
            try:
                async with contextlib.aclosing(self._snapshots(deadline_after(limit))) as polls:
                    async for task in polls:
                        if task.is_terminal and (failure := task_failure(task, self._id)):
                            self._span.fail(task, failure)  # not raised: the status says it
                        if (task.raw_status, task.progress) != last:
                            last = (task.raw_status, task.progress)
                            yield task
            except DeadlineReached:
                raise self._timed_out(limit) from None

    @property
    def is_done(self) -> bool:
        """``True`` once the last snapshot is terminal (completed, failed or cancelled)."""
        return self._task is not None and self._task.is_terminal

    async def iter_bytes(
        self, index: int = 0, *, timeout: float | None = DEFAULT
    ) -> AsyncGenerator[bytes, None]:
        """Wait for completion, then stream image *index* in chunks, verified.

        The whole image is never held in memory. A body cut short is fetched again from
        where it stopped, so the chunks always add up to the complete image. *timeout*
        bounds the wait and the download together, and ``image_timeout`` the download (neither
        counts your code's time with a chunk).
        Stopping early, close it (``contextlib.aclosing``, or run ``async for`` to its end):
        a stream kept open, unread, holds its connection (one of ``max_connections``).
        Once the handle holds its images (``await handle`` delivered them), they come from
        memory, in chunks of the same size, with no request: even after the links expired.
        """
        check_image_index(index)
        limit = wait_limit(timeout, self._rt.poll)  # checked, whether it is needed or not
        held = self._deliverer.held(index) if self._deliverer is not None else None
        if held is not None:  # delivered already: from memory
            for chunk in held:
                yield chunk
            return
        deadline = deadline_after(limit)
        loop = asyncio.get_running_loop()
        with self._waiting():
            task = await self._finish(limit, deadline, _completed)
            chunks = self._delivery.stream(task, index, DownloadInfo())
            try:  # contextlib.aclosing, without its object per stream
                while True:
                    try:
                        with bounded(deadline, self._rt.deadlines):
                            chunk = await chunks.__anext__()
                    except StopAsyncIteration:  # the image is in hand: as result() does
                        self._span.end("delivered")
                        return
                    except DeadlineReached:
                        raise self._timed_out(limit, stage="download") from None
                    paused = loop.time()
                    yield chunk
                    if deadline is not None:  # the caller's time with the chunk is not counted
                        deadline += loop.time() - paused
            finally:
                await chunks.aclose()

    async def result(self, *, timeout: float | None = DEFAULT) -> GenerationResult:
        """Wait for completion and download every image into memory (cached).

        This is what ``await handle`` does. *timeout* bounds the wait and the downloads
        together; if one image fails, the downloads of the others are stopped.
        """
        limit = wait_limit(timeout, self._rt.poll)  # checked, whether it is needed or not
        if self._deliverer is not None and self._deliverer.result is not None:
            return self._deliverer.result
        with self._waiting():
            result = await self._finish(limit, deadline_after(limit), _fetch_all)
        self._span.end("delivered")
        return result

    def __await__(self) -> Generator[Any, None, GenerationResult]:
        return self.result().__await__()

    async def save(
        self,
        dest: str | os.PathLike[str] = ".",
        *,
        name: str | None = None,
        number: int | None = None,
        metadata: bool = False,
        timeout: float | None = DEFAULT,
        durable: bool = False,
        overwrite: bool = True,
    ) -> list[Path]:
        """Wait for completion and write every image to disk; return the paths.

        *dest* is a file path if it ends in an image extension (``.png``, ``.jpg``,
        ``.jpeg``, ``.webp``) and is not an existing directory; the name is used as given
        (a task with several images gets ``<stem>-<n><suffix>``), except that a suffix
        naming another format than the one received is replaced by the right one
        (``fox.jpg`` receiving PNG becomes ``fox.png``, with a warning in the log, which
        says whether it replaces a file of that name): use the returned paths.
        Anything else is a directory, created if needed, which receives
        ``<task id>-<n>.<ext>`` with the extension of the format actually received, or
        the *name* template's name (fields ``{task_id}``, ``{index}``,
        ``{seed}``, ``{slug}`` and ``{number}``, the latter being *number*, an integer); a
        bad template or *number*, or a *dest* holding NUL, raises
        :class:`InvalidRequestError` before anything is awaited.

        With *metadata*, the prompt, seed, size, model and task id are embedded in each
        file (PNG text chunks, XMP in JPEG and WebP; ``zimage info`` reads them);
        without it the files hold exactly the bytes the service sent. Each file is
        streamed to a temporary file beside it and renamed into place, so no partial
        file is left, whatever goes wrong; it gets the mode the umask gives new files.
        Existing files are replaced, unless *overwrite* is false: then a file already at
        a final path is kept, and counts as saved if it holds the same bytes; any other
        raises :class:`FileExistsError` naming it. *timeout* bounds the wait and the downloads
        together. Concurrent calls for the same *dest* share one download. With
        *durable*, each file and then its folder are flushed to the disk (``fsync``)
        before this returns, so that a record written afterwards (a batch's journal
        does so) never outlives the files it names across a power cut.
        """
        plan = plan_save(
            dest,
            name=name,
            number=number,
            metadata=metadata,
            durable=durable,
            overwrite=overwrite,
        )

        async def write(handle: TaskHandle, task: Task) -> list[Path]:
            await prepare_folder(plan)
            return await handle._delivery.save(task, plan)

        limit = wait_limit(timeout, self._rt.poll)
        with self._waiting():
            paths = await self._finish(limit, deadline_after(limit), write)
        self._span.end("saved")
        return paths
