"""Concurrent batches: :class:`Batch`, what :meth:`Session.generate_many` returns.

A fixed number of workers (``concurrency``) take items in order; each item is
submitted, waited for and downloaded, and its :class:`BatchItem` is handed to the
consumer as soon as it is done (completion order). One item's failure is that item's
outcome, never the batch's. Submissions pass the session's rate gate, so a 429 pauses
every worker's next create call. With a manifest, every created task id is committed to
disk before the wait for it begins, so a rerun resumes instead of paying twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from ._batchitems import (
    NO_RESULTS,
    BatchItem,
    BatchProgress,
    BatchServices,
    ItemState,
    reported_error,
    stop_error,
)
from ._batchplan import Resume, plan_resume
from ._exceptions import (
    AuthenticationError,
    ManifestError,
    NoResultsError,
    PermissionDeniedError,
    SpendLimitError,
    SubmissionUncertainError,
    TaskFailedError,
    ZImageError,
)
from ._handle import TaskHandle
from ._idempotency import new_key
from ._manifest import Manifest, ManifestRow, RowState
from ._models import GenerationRequest, TaskStatus
from ._saving import remove_stale_parts

__all__ = ["Batch", "BatchItem", "BatchProgress", "ItemState"]

#: Seconds a create call already under way may still take after cancellation, so that
#: the task it made is recorded (and resumed later) rather than lost and paid again.
CREATE_GRACE = 10.0


class _NotSent(Exception):
    """The item's create was refused before sending (a spend limit)."""


class _Crash:
    """A worker's unexpected exception, handed to the consumer to re-raise."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Batch:
    """A running batch: iterate it for :class:`BatchItem` outcomes in completion order.

    Made by :meth:`Session.generate_many`; nothing is sent before the first
    ``async for`` step (or ``async with``). Use it as ``async with zs.generate_many(...)
    as batch:`` so that leaving the block early (``break``, an exception) cancels the
    work in flight at once; cancellation of the consuming task does the same. Stopped
    items keep their tasks at the service (billed): with a manifest, a rerun resumes
    them.
    """

    def __init__(
        self,
        services: BatchServices,
        requests: Sequence[GenerationRequest],
        *,
        concurrency: int,
        output_dir: Path | None,
        manifest: Path | None,
        batch_id: str,
        timeout: float | None,
        resubmit_uncertain: bool,
        resubmit_failed: bool,
        resubmit_expired: bool = False,
        name: str | None = None,
        numbers: Sequence[int] | None = None,
    ) -> None:
        self._services = services
        self._name = name
        self._numbers = numbers
        self._requests = requests
        self._concurrency = concurrency
        self._output_dir = output_dir
        self._manifest_path = manifest
        self._batch_id = batch_id
        self._timeout = timeout
        self._resubmit_uncertain = resubmit_uncertain
        self._resubmit_failed = resubmit_failed
        self._resubmit_expired = resubmit_expired
        self._fresh: set[int] = set()
        self._states = [ItemState.QUEUED] * len(requests)
        self._manifest: Manifest | None = None
        self._rows: dict[int, ManifestRow] = {}
        self._queue: deque[int] = deque(range(len(requests)))
        self._outcomes: asyncio.Queue[BatchItem | _Crash] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._yielded = 0
        self._finished = 0
        self._started: float | None = None
        self._closed = False
        self._stopped_by: ZImageError | None = None

    def __repr__(self) -> str:
        return f"<Batch {len(self._requests)} items, {self._finished} finished>"

    def __len__(self) -> int:
        return len(self._requests)

    @property
    def manifest_path(self) -> Path | None:
        """The manifest file, if any."""
        return self._manifest_path

    @property
    def stopped_by(self) -> ZImageError | None:
        """The refusal that stopped the batch from sending more creates, if any.

        The first :class:`AuthenticationError` or :class:`PermissionDeniedError` of a
        create, or a :class:`SpendLimitError` before one, stops the batch at once: no
        further create is sent, items already created finish, and the items not yet
        sent are reported with ``sent=False`` and that error (a refusal's says to check
        ``ZIMAGE_API_KEY``).
        """
        return self._stopped_by

    @property
    def progress(self) -> BatchProgress:
        """How many items are in each state now."""
        elapsed = 0.0 if self._started is None else time.monotonic() - self._started
        return BatchProgress(
            total=len(self._requests),
            counts=dict(Counter(self._states)),
            finished=self._finished,
            elapsed=elapsed,
        )

    # -- lifecycle -----------------------------------------------------------------------

    def _start(self) -> None:
        if self._closed:
            raise RuntimeError("this batch was closed; call generate_many() again to rerun it")
        if self._started is not None:
            return
        if self._manifest_path is not None:
            manifest = Manifest.open(self._manifest_path, batch_id=self._batch_id)
            try:
                manifest.check(self._requests, base_url=self._services.base_url)
            except BaseException:
                manifest.close()
                raise
            self._manifest = manifest
            self._rows = manifest.rows()
        if self._output_dir is not None:
            self._output_dir.mkdir(parents=True, exist_ok=True)
            remove_stale_parts(self._output_dir)
        self._started = time.monotonic()
        self._workers = [
            asyncio.ensure_future(self._work())
            for _ in range(min(self._concurrency, len(self._requests)))
        ]

    async def aclose(self) -> None:
        """Cancel the work in flight, wait until it has stopped, close the manifest.

        Idempotent. Tasks already created keep running at the service (and are billed);
        the manifest records them for a rerun.
        """
        self._closed = True
        for worker in self._workers:
            worker.cancel()
        if self._workers:
            await asyncio.gather(*self._workers, return_exceptions=True)
        if self._manifest is not None:
            self._manifest.close()

    async def __aenter__(self) -> Batch:
        self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> Batch:
        return self

    async def __anext__(self) -> BatchItem:
        if self._yielded == len(self._requests):
            await self.aclose()
            raise StopAsyncIteration
        self._start()
        try:
            outcome = await self._outcomes.get()
        except BaseException:
            await self.aclose()
            raise
        if isinstance(outcome, _Crash):
            await self.aclose()
            raise outcome.exc
        self._yielded += 1
        return outcome

    # -- work ------------------------------------------------------------------------------

    async def _work(self) -> None:
        while self._queue:
            index = self._queue.popleft()
            try:
                item = await self._run(index)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # a bug or a full disk: the consumer must see it
                self._outcomes.put_nowait(_Crash(exc))
                return
            self._states[index] = ItemState.DONE if item.ok else ItemState.FAILED
            self._finished += 1
            self._outcomes.put_nowait(item)

    def _record(self, index: int, state: RowState, **fields: object) -> None:
        if self._manifest is None:
            return
        try:
            self._manifest.record(
                index,
                self._requests[index],
                state,
                base_url=self._services.base_url,
                **fields,  # type: ignore[arg-type]
            )
        except ManifestError as exc:
            task_id = fields.get("task_id")
            if task_id is None:
                raise
            # The billed task must not live only in a log line: say it, and how to get it.
            raise ManifestError(
                f"{exc}; task {task_id} (item {index}) was created and is billed but could "
                f"not be recorded - collect it with `zimage task {task_id} -o DIR` or "
                f"session.task({task_id!r}), do not submit the item again"
            ) from exc

    async def _run(self, index: int) -> BatchItem:
        request = self._requests[index]
        row = self._rows.get(index)
        task_id: str | None = row.task_id if row is not None else None
        resumed = row is not None and row.state.has_task
        try:
            handle = self._resume(index, row)
            if isinstance(handle, BatchItem):
                return handle
            if handle is None:
                resumed = False
                if self._stopped_by is not None:
                    return self._not_sent(index)
                try:
                    handle = await self._submit(index)
                except _NotSent:
                    return self._not_sent(index)
            task_id = handle.id
            return await self._finish(index, handle, row if resumed else None, resumed=resumed)
        except ManifestError:
            raise  # the manifest cannot be used: the whole batch stops, and says why
        except ZImageError as exc:
            return BatchItem(
                index=index, request=request, task_id=task_id, error=exc, resumed=resumed
            )

    def _not_sent(self, index: int) -> BatchItem:
        """Return the outcome of an item left unsent because the batch was stopped."""
        assert self._stopped_by is not None
        return BatchItem(
            index=index, request=self._requests[index], error=self._stopped_by, sent=False
        )

    def _resume(self, index: int, row: ManifestRow | None) -> TaskHandle | BatchItem | None:
        """Return the earlier run's task handle, a final outcome, or None to submit."""
        request = self._requests[index]
        plan = plan_resume(
            row,
            files_present=row is not None and all(p.exists() for p in row.paths),
            now=time.time(),
            link_ttl=self._services.link_ttl,
            resubmit_uncertain=self._resubmit_uncertain,
            resubmit_failed=self._resubmit_failed,
            resubmit_expired=self._resubmit_expired,
        )
        if plan is Resume.SUBMIT_NEW:
            self._fresh.add(index)
        if plan in (Resume.SUBMIT, Resume.SUBMIT_NEW):
            return None
        assert row is not None
        if plan is Resume.RESUME:
            assert row.task_id is not None
            return self._services.task(row.task_id, request=request)
        if plan is Resume.REPORT_SAVED:
            return BatchItem(
                index=index, request=request, task_id=row.task_id, paths=row.paths, resumed=True
            )
        return BatchItem(
            index=index,
            request=request,
            task_id=row.task_id,
            error=reported_error(plan, row, link_ttl=self._services.link_ttl),
            resumed=True,
        )

    async def _submit(self, index: int) -> TaskHandle:
        request = self._requests[index]
        # Wait out a 429 pause before marking the item as submitting, so a cancellation
        # during the pause does not leave it looking possibly billed.
        await self._services.gate_wait()
        self._states[index] = ItemState.SUBMITTING
        # An item sent before (refused, or uncertain and resubmitted on request) keeps
        # its key, so a gateway that honours keys returns a task the first try made.
        # A failed or expired item resubmitted on request gets a new key: the old one
        # would only bring back the old task.
        row = None if index in self._fresh else self._rows.get(index)
        key = row.idempotency_key if row is not None and row.idempotency_key else new_key()
        self._record(index, RowState.SUBMITTING, idempotency_key=key)
        creating = asyncio.ensure_future(self._services.submit(request, key, index))
        try:
            handle = await asyncio.shield(creating)
        except asyncio.CancelledError:
            # The POST may already be at the service: learn the task's id so that a rerun
            # resumes it instead of paying again.
            with contextlib.suppress(BaseException):
                handle = await asyncio.wait_for(creating, CREATE_GRACE)
                self._record(index, RowState.CREATED, task_id=handle.id)
            if not creating.done():
                creating.cancel()
            elif not creating.cancelled() and creating.exception() is not None:
                exc = creating.exception()
                if isinstance(exc, ZImageError):
                    self._record_create_error(index, exc)
            raise
        except SubmissionUncertainError as exc:
            if exc.task_id is None:
                self._record_create_error(index, exc)
                raise
            self._record(index, RowState.CREATED, task_id=exc.task_id)
            return self._services.task(exc.task_id, request=request)
        except (AuthenticationError, PermissionDeniedError) as exc:
            self._record_create_error(index, exc)
            if self._stopped_by is None:
                self._stopped_by = stop_error(exc)
            raise self._stopped_by from exc
        except SpendLimitError as exc:  # nothing was sent: the item is not sent
            self._record_create_error(index, exc)
            if self._stopped_by is None:
                self._stopped_by = exc
            raise _NotSent from exc
        except ZImageError as exc:
            self._record_create_error(index, exc)
            raise
        self._record(index, RowState.CREATED, task_id=handle.id)
        return handle

    def _record_create_error(self, index: int, exc: ZImageError) -> None:
        if isinstance(exc, SubmissionUncertainError):
            if exc.task_id is not None:
                self._record(index, RowState.CREATED, task_id=exc.task_id)
            else:
                self._record(index, RowState.UNCERTAIN, error_message=str(exc))
        else:  # the service certainly made no task: a rerun may submit it again
            self._record(
                index, RowState.REJECTED, error_code=type(exc).__name__, error_message=str(exc)
            )

    async def _finish(
        self, index: int, handle: TaskHandle, row: ManifestRow | None, *, resumed: bool
    ) -> BatchItem:
        request = self._requests[index]
        self._states[index] = ItemState.PENDING
        async with contextlib.aclosing(handle.updates(timeout=self._timeout)) as updates:
            async for snapshot in updates:
                if snapshot.status is TaskStatus.PROCESSING:
                    self._states[index] = ItemState.PROCESSING
        try:
            await handle.wait(timeout=self._timeout)
        except TaskFailedError as exc:
            self._record(
                index,
                RowState.FAILED,
                task_id=handle.id,
                error_code=exc.code,
                error_message=exc.message,
            )
            raise
        except NoResultsError:
            self._record(index, RowState.FAILED, task_id=handle.id, error_code=NO_RESULTS)
            raise
        completed_at = row.completed_at if row is not None else None
        if completed_at is None:
            completed_at = time.time()
            self._record(index, RowState.COMPLETED, task_id=handle.id, completed_at=completed_at)
        self._states[index] = ItemState.DOWNLOADING
        if self._output_dir is None:
            result = await handle.result(timeout=self._timeout)
            return BatchItem(
                index=index, request=request, task_id=handle.id, result=result, resumed=resumed
            )
        number = self._numbers[index] if self._numbers is not None else index + 1
        paths = await handle.save(
            self._output_dir, name=self._name, number=number, timeout=self._timeout
        )
        self._record(
            index, RowState.SAVED, task_id=handle.id, completed_at=completed_at, paths=paths
        )
        return BatchItem(
            index=index, request=request, task_id=handle.id, paths=tuple(paths), resumed=resumed
        )
