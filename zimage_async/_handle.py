"""The awaitable :class:`TaskHandle`: poll a task to its end, then fetch its images."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import tempfile
import time
import warnings
from collections.abc import AsyncGenerator, Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import backoff

from ._download import DownloadInfo, ImageLimits, stream_image
from ._exceptions import (
    ImageDownloadError,
    ImageSizeWarning,
    NoResultsError,
    TaskFailedError,
    WaitTimeoutError,
)
from ._imageinfo import EXTENSIONS, size_mismatch
from ._links import link_expiry
from ._models import GenerationRequest, GenerationResult, Image, Task, TaskStatus
from ._schedule import PollSchedule, RetryPolicy, poll_waits

if TYPE_CHECKING:
    from ._api import APIClient
    from ._hints import HintBoard
    from ._transport import Transport

__all__ = ["Runtime", "TaskHandle"]

logger = logging.getLogger("zimage_async")

_FILE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})


class _Default:
    """Marks "use the session's poll schedule timeout"."""

    def __repr__(self) -> str:
        return "<session default>"


#: Pass as ``timeout`` to use the session's :attr:`PollSchedule.timeout`.
DEFAULT: Any = _Default()


@attrs.frozen(kw_only=True)
class Runtime:
    """What every handle of one session shares: the API client and the policies."""

    api: APIClient
    transport: Transport
    poll: PollSchedule
    retry: RetryPolicy
    limits: ImageLimits
    link_ttl: float
    rng: random.Random
    check_open: Callable[[], None]
    #: The session's callback receiver's hints, if it has a receiver.
    hints: HintBoard | None = None
    #: How much longer poll delays are while a callback is expected.
    callback_poll_factor: float = 1.0


class TaskHandle:
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
        self._lock = asyncio.Lock()
        self._download_lock = asyncio.Lock()
        self._completed_seen: float | None = None
        self._result: GenerationResult | None = None
        self._warned_status: set[str] = set()
        if snapshot is not None:
            self._observe(snapshot)

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
        """The last snapshot seen, or ``None`` for a resumed handle not yet polled."""
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
        earlier if a link states its own expiry.
        """
        if self._completed_seen is None or self._task is None:
            return None
        expiry = self._completed_seen + self._rt.link_ttl
        for url in self._task.results:
            stated = link_expiry(url)
            if stated is not None:
                expiry = min(expiry, stated)
        return expiry

    def _observe(self, task: Task) -> None:
        self._task = task
        if task.status is TaskStatus.COMPLETED and self._completed_seen is None:
            self._completed_seen = time.time()
        if task.status is TaskStatus.UNKNOWN and task.raw_status not in self._warned_status:
            self._warned_status.add(task.raw_status)
            logger.warning(
                "task %s reported an unknown status %r; treating it as not finished",
                self._id,
                task.raw_status,
            )

    async def refresh(self) -> Task:
        """Fetch the task once (``GET /v1/tasks/{id}``) and return the new snapshot."""
        self._rt.check_open()
        task = await self._rt.api.get_task(self._id)
        self._fresh = False
        self._observe(task)
        return task

    def _timed_out(self, timeout: float) -> WaitTimeoutError:
        return WaitTimeoutError(
            task_id=self._id,
            timeout=timeout,
            last_status=self._task.raw_status if self._task is not None else None,
        )

    async def _until_terminal(self, timeout: float | None) -> Task:
        """Poll (one loop per handle, however many waiters) until the task ends."""
        if self._task is not None and self._task.is_terminal:
            return self._task
        self._rt.check_open()
        if timeout is None:
            return await self._poll_locked(None)
        try:
            # The deadline covers everything: waiting for another waiter's poll loop,
            # and retries inside a poll, not only the sleeps between polls.
            return await asyncio.wait_for(self._poll_locked(timeout), timeout)
        except WaitTimeoutError:
            raise
        except asyncio.TimeoutError:
            raise self._timed_out(timeout) from None

    async def _poll_locked(self, timeout: float | None) -> Task:
        if self._rt.hints is not None:
            return await self._watch_locked(self._rt.hints, timeout)
        async with self._lock:
            if self._task is not None and self._task.is_terminal:
                return self._task
            started = time.monotonic()

            async def look() -> Task:
                if self._fresh and self._task is not None:
                    self._fresh = False
                    return self._task
                return await self.refresh()

            def log_poll(details: Any) -> None:
                logger.debug(
                    "task %s is %s at %s%%; next poll in %.2f s",
                    self._id,
                    details["value"].raw_status,
                    details["value"].progress,
                    details["wait"],
                )

            # Bound with partial: backoff would call any callable keyword (the clock).
            waits = functools.partial(
                poll_waits,
                attrs.evolve(self._rt.poll, timeout=timeout),
                rng=self._rt.rng,
                clock=time.monotonic,
                started=started,
            )
            poll = backoff.on_predicate(
                waits,
                predicate=lambda task: not task.is_terminal,
                max_time=timeout,
                jitter=None,
                on_backoff=log_poll,
                logger=None,
            )(look)
            task: Task = await poll()
            if not task.is_terminal:
                raise self._timed_out(timeout if timeout is not None else 0.0)
            return task

    async def _watch_locked(self, hints: HintBoard, timeout: float | None) -> Task:
        """Poll like :meth:`_poll_locked`, but wake early when a callback hint arrives.

        A hint is only a reason to look: the task is fetched, and that answer alone
        decides. While a callback is expected, the poll delays are stretched by the
        session's ``callback_poll_factor``, so a lost callback costs time, not a hang.
        Hints are acted on at most once per ``wait_min`` seconds, however many arrive.
        (A loop of its own: the sleeps of ``backoff`` cannot be cut short by a hint.)
        """
        async with self._lock:
            if self._task is not None and self._task.is_terminal:
                return self._task
            schedule = attrs.evolve(self._rt.poll, timeout=timeout)
            factor = self._rt.callback_poll_factor if self._expects_callback else 1.0
            started = time.monotonic()
            waits = poll_waits(schedule, rng=self._rt.rng, clock=time.monotonic, started=started)
            waits.send(None)
            with hints.watch(self._id) as watch:
                if self._fresh and self._task is not None:
                    self._fresh = False
                    task = self._task
                else:
                    task = await self.refresh()
                last_look = time.monotonic()
                while not task.is_terminal:
                    delay = waits.send(task) * factor
                    if timeout is not None:
                        remaining = timeout - (time.monotonic() - started)
                        if remaining <= 0:
                            raise self._timed_out(timeout)
                        delay = min(delay, remaining)
                    if await watch.wait(delay):
                        # A flood of hints (forged or duplicated) must not become a
                        # flood of requests: keep at least wait_min between looks.
                        spacing = last_look + schedule.wait_min - time.monotonic()
                        await asyncio.sleep(max(0.0, spacing))
                        logger.debug("task %s: a callback hint arrived; fetching it", self._id)
                    task = await self.refresh()
                    last_look = time.monotonic()
                    logger.debug("task %s is %s at %s%%", self._id, task.raw_status, task.progress)
            return task

    def _timeout(self, timeout: float | None) -> float | None:
        if timeout is DEFAULT:
            return self._rt.poll.timeout
        if timeout is not None and not timeout > 0:
            raise ValueError(
                f"timeout must be a number of seconds above 0, or None; got {timeout!r}"
            )
        return timeout

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
        task = await self._until_terminal(self._timeout(timeout))
        if task.status is TaskStatus.COMPLETED:
            if not task.results:
                raise NoResultsError(task_id=self._id, task=task)
            return task
        error = task.error
        if error is not None:
            raise TaskFailedError(
                task_id=self._id, code=error.code, message=error.message, raw_error=task.raw_error
            )
        raise TaskFailedError(
            task_id=self._id,
            code="request_cancelled",
            message="the task was cancelled",
            raw_error=task.raw_error,
        )

    async def updates(self, *, timeout: float | None = DEFAULT) -> AsyncGenerator[Task, None]:
        """Yield a snapshot each time the status or progress changes, ending when it ends.

        The current snapshot, if any, comes first. Polling happens only while you
        iterate (nothing runs in the background), on the session's poll schedule. A
        failed task ends the iteration without raising (look at the last snapshot's
        status); failures of the calls themselves, and :class:`WaitTimeoutError`, are
        raised.
        """
        limit = self._timeout(timeout)
        started = time.monotonic()
        waits = poll_waits(
            attrs.evolve(self._rt.poll, timeout=limit),
            rng=self._rt.rng,
            clock=time.monotonic,
            started=started,
        )
        waits.send(None)
        last: tuple[str, int] | None = None
        task = self._task if self._fresh or self.is_done else None
        while True:
            if task is None:
                task = await self.refresh()
            if (task.raw_status, task.progress) != last:
                last = (task.raw_status, task.progress)
                yield task
            if task.is_terminal:
                return
            delay = waits.send(task)
            if limit is not None and time.monotonic() - started + delay > limit:
                raise self._timed_out(limit)
            await asyncio.sleep(delay)
            task = None

    @property
    def is_done(self) -> bool:
        """``True`` once the last snapshot is terminal (completed, failed or cancelled)."""
        return self._task is not None and self._task.is_terminal

    async def _stream(
        self, task: Task, index: int, info: DownloadInfo
    ) -> AsyncGenerator[bytes, None]:
        if not 0 <= index < len(task.results):
            raise IndexError(f"task {self._id} has {len(task.results)} image(s); no index {index}")
        self._rt.check_open()
        async for chunk in stream_image(
            self._rt.transport,
            task.results[index],
            task_id=self._id,
            index=index,
            expires_at=self.expires_at,
            retry=self._rt.retry,
            rng=self._rt.rng,
            limits=self._rt.limits,
            info=info,
        ):
            yield chunk

    async def iter_bytes(
        self, index: int = 0, *, timeout: float | None = DEFAULT
    ) -> AsyncGenerator[bytes, None]:
        """Wait for completion, then stream image *index* in chunks, verified.

        The whole image is never held in memory. A body cut short is fetched again
        from where it stopped, so the chunks always add up to the complete image.
        """
        task = await self.wait(timeout=timeout)
        async with contextlib.aclosing(self._stream(task, index, DownloadInfo())) as chunks:
            async for chunk in chunks:
                yield chunk

    def _check_size(self, dimensions: tuple[int, int] | None, index: int) -> None:
        if self._request is None or dimensions is None:
            return
        problem = size_mismatch(self._request.size, dimensions)
        if problem is not None:
            warnings.warn(
                ImageSizeWarning(f"image {index} of task {self._id}: {problem}"), stacklevel=4
            )

    async def _download(self, task: Task, index: int) -> Image:
        info = DownloadInfo()
        async with contextlib.aclosing(self._stream(task, index, info)) as chunks:
            parts = [chunk async for chunk in chunks]
        assert info.content_type is not None
        dimensions = info.dimensions
        self._check_size(dimensions, index)
        return Image(
            index=index,
            url=task.results[index],
            data=b"".join(parts),
            content_type=info.content_type,
            width=dimensions[0] if dimensions else None,
            height=dimensions[1] if dimensions else None,
        )

    async def result(self, *, timeout: float | None = DEFAULT) -> GenerationResult:
        """Wait for completion and download every image into memory (cached).

        This is what ``await handle`` does.
        """
        if self._result is not None:
            return self._result
        task = await self.wait(timeout=timeout)
        async with self._download_lock:  # concurrent awaiters download once
            if self._result is None:
                images = await asyncio.gather(
                    *(self._download(task, i) for i in range(len(task.results)))
                )
                self._result = GenerationResult(task=task, images=tuple(images))
        return self._result

    def __await__(self) -> Generator[Any, None, GenerationResult]:
        return self.result().__await__()

    async def save(
        self, dest: str | os.PathLike[str] = ".", *, timeout: float | None = DEFAULT
    ) -> list[Path]:
        """Wait for completion and write every image to disk; return the paths.

        *dest* is a file path if it ends in an image extension (``.png``, ``.jpg``,
        ``.jpeg``, ``.webp``) and is not an existing directory; the name is used as given
        (a task with several images gets ``<stem>-<n><suffix>``). Anything else is a
        directory, created if needed, which receives ``<task id>-<n>.<ext>`` with the
        extension of the format actually received. Each file is streamed to a
        temporary file beside it and renamed into place, so no partial file is left,
        whatever goes wrong. Existing files are replaced.
        """
        task = await self.wait(timeout=timeout)
        target = Path(dest)
        as_dir = (
            target.is_dir()
            or str(dest).endswith(("/", os.sep))
            or target.suffix.lower() not in _FILE_SUFFIXES
        )
        folder = target if as_dir else target.parent
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(f"cannot save into {folder}: it is a file, not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        return [
            await self._save_one(task, index, target, as_dir, folder)
            for index in range(len(task.results))
        ]

    async def _save_one(
        self, task: Task, index: int, target: Path, as_dir: bool, folder: Path
    ) -> Path:
        cached = self._result.images[index] if self._result is not None else None
        fd, temp_name = tempfile.mkstemp(dir=folder, prefix=".zimage-", suffix=".part")
        temp = Path(temp_name)
        try:
            info = DownloadInfo()
            with os.fdopen(fd, "wb") as file:
                if cached is not None:
                    file.write(cached.data)
                    info.content_type = cached.content_type
                else:
                    async with contextlib.aclosing(self._stream(task, index, info)) as chunks:
                        async for chunk in chunks:
                            file.write(chunk)
            if info.content_type is None:
                raise ImageDownloadError(
                    "no bytes were received", url="", task_id=self._id, index=index
                )
            if cached is None:
                self._check_size(info.dimensions, index)
            extension = EXTENSIONS[info.content_type]
            if as_dir:
                final = folder / f"{self._id}-{index}.{extension}"
            elif len(task.results) == 1:
                final = target
            else:
                final = target.with_name(f"{target.stem}-{index}{target.suffix}")
            os.replace(temp, final)
            return final
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
