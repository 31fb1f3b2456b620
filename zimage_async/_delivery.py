"""Delivering a finished task's images: into memory, to disk, or as a stream.

A :class:`Delivery` belongs to one :class:`~zimage_async.TaskHandle` and is used once the
task has completed: it downloads each image once however many coroutines ask (the result
is cached), shares one save per destination among concurrent ``save()`` calls, and stops
the other downloads of a task as soon as one of its images fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._download import stream_image
from ._durable import sync_file, sync_folder
from ._exceptions import ImageDownloadError, ImageSizeWarning, InvalidRequestError
from ._exceptions_base import note_collectable
from ._imageinfo import size_mismatch
from ._imagelimits import ByteBudget, DownloadInfo
from ._imagespan import ImageRetries, in_span
from ._links import redact_url
from ._metadata import embed_metadata
from ._models import GenerationRequest, GenerationResult, Image, Task
from ._quoting import int_text, wrong_type
from ._saving import SavePlan, place, write_atomically
from ._sharedsave import SharedSave, file_stamp, written_paths
from ._telemetry import NO_CHILD, NO_SPAN, TaskSpan, child_span
from ._warning_site import Site, caller_site, warn, warn_at

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = ["Delivery", "check_image_index"]

logger = logging.getLogger("zimage_async")

#: Seconds a save() that gives up waits for its cancelled download to stop.
_STOP_GRACE = 5.0
#: The longest ``model`` a task may state and have written into an image's metadata.
_MODEL_FIELD_MAX = 256
_INDEX_RULE = "an int, 0 for the first image"


def check_image_index(index: object) -> None:
    """Refuse an image *index* that is not an int of 0 or more (:class:`InvalidRequestError`)."""
    if isinstance(index, bool) or not isinstance(index, int):
        raise InvalidRequestError("index", _INDEX_RULE, wrong_type(index))
    if index < 0:
        raise InvalidRequestError("index", _INDEX_RULE, f"got {int_text(index)}")


class Delivery:
    """Fetches the images of one task (see the module docstring)."""

    def __init__(
        self,
        runtime: Runtime,
        task_id: str,
        request: GenerationRequest | None,
        *,
        completed_at: float | None,
        span: TaskSpan = NO_SPAN,
    ) -> None:
        self._rt = runtime
        self._id = task_id
        self._request = request
        self._completed_at = completed_at
        self._span = span
        self._lock = asyncio.Lock()
        self.result: GenerationResult | None = None
        self._saves: dict[SavePlan, SharedSave] = {}
        self._stamps: dict[SavePlan, list[tuple[int, ...] | None]] = {}
        #: The last snapshot streamed from, the link lifetime, and its believed expiry.
        self._believed: tuple[Task, float, float | None] | None = None

    def stream(
        self, task: Task, index: int, info: DownloadInfo, budget: ByteBudget | None = None
    ) -> AsyncGenerator[bytes, None]:
        """Return the verified bytes of image *index* as chunks, filling *info* as they come.

        *budget* is shared by the images of one task fetched together (the per-task cap).
        While telemetry is off this is the download's own generator, with no layer on top.
        """
        retries = ImageRetries.of(self._span)
        chunks = self._chunks(task, index, info, budget, retries)
        scope = child_span("GET image", parent=self._span, key="zimage.image_index", value=index)
        if scope is NO_CHILD:
            return chunks
        return in_span(chunks, scope, info, retries)

    def _chunks(
        self,
        task: Task,
        index: int,
        info: DownloadInfo,
        budget: ByteBudget | None,
        retries: ImageRetries | None = None,
    ) -> AsyncGenerator[bytes, None]:
        """Start the download of image *index*: the one place its stream is opened.

        *retries*, while telemetry is on, is told each retry of the download.
        """
        self._check_index(index, len(task.results))
        self._rt.check_open()
        completed = self._completed_at
        lifetime = self._rt.link_ttl
        stated = None
        if completed is not None:  # read once per snapshot (pure: the same task, the same answer)
            kept = self._believed
            if kept is not None and kept[0] is task and kept[1] == lifetime:
                stated = kept[2]
            else:
                stated = task.believed_expiry(completed, lifetime=lifetime)
                self._believed = (task, lifetime, stated)
        return stream_image(
            self._rt.transport,
            task.results[index],
            task_id=self._id,
            index=index,
            expires_at=None if completed is None else completed + lifetime,
            stated_expiry=stated,
            lifetime=lifetime,
            retry=self._rt.retry,
            rng=self._rt.rng,
            limits=self._rt.limits,
            info=info,
            budget=budget,
            completed_at=completed,
            sleep=self._rt.sleep,
            retried=retries,
            secrets=self._rt.secrets,
        )

    def _check_index(self, index: int, count: int) -> None:
        if not 0 <= index < count:
            raise IndexError(f"task {self._id} has {count} image(s); no index {int_text(index)}")

    def held(self, index: int) -> Iterator[bytes] | None:
        """Return image *index* of the delivered result in chunks, or None before delivery.

        Chunks of :attr:`ImageLimits.chunk_size` bytes, as a download hands them, from
        memory: nothing is requested (the links may have expired since).
        """
        if self.result is None:
            return None
        self._check_index(index, len(self.result.images))
        data, size = self.result.images[index].data, self._rt.limits.chunk_size
        return (data[start : start + size] for start in range(0, len(data), size))

    def _size_warning(
        self, dimensions: tuple[int, int] | None, index: int
    ) -> ImageSizeWarning | None:
        """Return the warning for image *index* of other *dimensions* than asked, if so.

        It is issued at the caller's line (:mod:`._warning_site`), not at a task the
        downloads run in, before the image is kept or its file placed.
        """
        if self._request is None or dimensions is None:
            return None
        problem = size_mismatch(self._request.size, dimensions)
        if problem is None:
            return None
        return ImageSizeWarning(f"image {index} of task {self._id}: {problem}")

    async def _download(self, task: Task, index: int, budget: ByteBudget | None) -> Image:
        info = DownloadInfo()
        retries = ImageRetries.of(self._span)
        chunks = self._chunks(task, index, info, budget, retries)  # no generator on top
        with child_span(
            "GET image", parent=self._span, key="zimage.image_index", value=index
        ) as span:
            if retries is not None:
                retries.span = span
            try:  # contextlib.aclosing, without its object per image
                parts = [chunk async for chunk in chunks]
            finally:
                await chunks.aclose()
                if span is not None:
                    span.set_attribute("zimage.image_bytes", info.size)
        assert info.content_type is not None
        dimensions = info.dimensions
        return Image(
            index=index,
            url=task.results[index],
            data=b"".join(parts),
            content_type=info.content_type,
            width=dimensions[0] if dimensions else None,
            height=dimensions[1] if dimensions else None,
        )

    async def fetch_all(self, task: Task) -> GenerationResult:
        """Download every image into memory, once (concurrent callers share it)."""
        await self._lock.acquire()  # not `async with`: two coroutines fewer per task
        try:
            if self.result is None:
                budget = self._rt.limits.budget()
                if len(task.results) == 1:  # the common case: no jobs to run together
                    images = [await self._download(task, 0, budget)]
                else:
                    images = await self._download_each(task, budget)
                for image in images:  # in the caller's task (its line), before it is kept
                    if image.width is not None and image.height is not None:
                        warning = self._size_warning((image.width, image.height), image.index)
                        if warning is not None:
                            warn(warning)  # turned into an error: the images are not kept
                self.result = GenerationResult(task=task, images=tuple(images))
        finally:
            self._lock.release()
        return self.result

    async def _download_each(self, task: Task, budget: ByteBudget | None) -> list[Image]:
        return await _all_or_none(
            [self._download(task, i, budget) for i in range(len(task.results))]
        )

    async def save(self, task: Task, plan: SavePlan) -> list[Path]:
        """Write every image as *plan* says; concurrent calls for one plan share the work.

        The save goes on while any caller still waits for it, and is cancelled when the
        last one leaves. A later call for the same plan whose files are all still there
        gets them without a download (a file replaced or changed since is written again);
        a failed or cancelled save is not remembered.
        """
        shared = self._saves.get(plan)
        if shared is not None and shared.future.done():
            written = written_paths(shared.future)
            if written is not None and [file_stamp(path) for path in written] == self._stamps[plan]:
                return list(written)  # each file still the one this save wrote
            shared = None
        if shared is None:
            site = caller_site()  # a size warning points at this caller's line
            shared = SharedSave(asyncio.ensure_future(self._save_all(task, plan, site)))
            self._saves[plan] = shared
        shared.waiters += 1
        try:
            return list(await asyncio.shield(shared.future))
        finally:
            shared.waiters -= 1
            if shared.waiters == 0 and not shared.future.done():
                shared.future.cancel()  # the last caller left: nobody wants these files
                # ... and it stops before the caller goes on: its slot and files released
                # (bounded, should a step of it be slow to take the cancellation).
                await asyncio.wait((shared.future,), timeout=_STOP_GRACE)

    async def _save_all(self, task: Task, plan: SavePlan, site: Site | None) -> list[Path]:
        """Save every image; a size warning is issued at *site* before its file is placed."""
        budget = self._rt.limits.budget()
        paths: list[Path] = await _all_or_none(
            [self._save_one(task, index, plan, budget, site) for index in range(len(task.results))]
        )
        self._stamps[plan] = [file_stamp(path) for path in paths]  # what this save wrote
        return paths

    def metadata_fields(self, task: Task) -> dict[str, str]:
        """Return what is known of how *task*'s images were made, as metadata fields.

        A ``model`` the service states that is too long to be a model name is left out,
        with a warning, as if not stated: it would not fit every format (a JPEG segment
        holds 64 KiB), and the image matters more than the field.
        """
        request = self._request
        fields = {"task_id": self._id}
        model = task.model
        if model is not None and len(model) > _MODEL_FIELD_MAX:
            logger.warning(
                "task %s states a model name of %d characters; the metadata leaves it out",
                self._id,
                len(model),
            )
            model = None
        model = model or (request.model if request is not None else None)
        if model:
            fields["model"] = model
        if request is not None:
            fields["prompt"] = request.prompt
            if request.seed is not None:
                fields["seed"] = str(request.seed)
            if request.size is not None:
                fields["size"] = str(request.size)
        return fields

    async def _save_one(
        self,
        task: Task,
        index: int,
        plan: SavePlan,
        budget: ByteBudget | None,
        site: Site | None,
    ) -> Path:
        cached = self.result.images[index] if self.result is not None else None
        info = DownloadInfo()
        chunks: AsyncGenerator[bytes, None]
        if cached is not None:
            chunks = _one_chunk(cached.data)
            info.content_type = cached.content_type
        else:
            chunks = self.stream(task, index, info, budget)
        if plan.metadata:
            chunks = self._with_metadata(task, index, chunks, info)
        async with contextlib.aclosing(chunks):
            temp = await write_atomically(
                plan.folder, chunks, durable=plan.durable, shown=plan.target
            )
        try:
            if info.content_type is None:
                error = ImageDownloadError(
                    "no bytes were received", url="", task_id=self._id, index=index
                )
                raise note_collectable(error, self._id)
            warning = None if cached is not None else self._size_warning(info.dimensions, index)
            if warning is not None:
                warn_at(warning, site)  # turned into an error: the file is not placed
            request = self._request
            final = plan.path(
                task_id=self._id,
                index=index,
                count=len(task.results),
                content_type=info.content_type,
                prompt=None if request is None else request.prompt,
                seed=None if request is None else request.seed,
            )
            if plan.target is not None and final.suffix != plan.target.suffix:
                logger.warning(
                    "task %s sent a %s image; saving it as %s instead of %s%s",
                    self._id,
                    info.content_type,
                    final.name,
                    plan.target.name,
                    ", replacing the file there" if plan.overwrite and final.exists() else "",
                )
            kept = place(temp, final, overwrite=plan.overwrite)
            if plan.durable:
                if kept:
                    await sync_file(final)
                await sync_folder(plan.folder)
            return final
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    async def _with_metadata(
        self, task: Task, index: int, chunks: AsyncGenerator[bytes, None], info: DownloadInfo
    ) -> AsyncGenerator[bytes, None]:
        """Yield the whole image at once, with the generation metadata embedded in it.

        An image the metadata cannot be embedded in (its framing is one the embedder
        cannot handle) is an :class:`ImageDownloadError` naming the task and the image.
        """
        async with contextlib.aclosing(chunks):
            data = b"".join([chunk async for chunk in chunks])
        if info.content_type is None or not data:
            return
        try:
            tagged = embed_metadata(data, info.content_type, self.metadata_fields(task))
        except Exception as exc:  # the embedder's ValueError, or a fault it missed
            error = ImageDownloadError(
                f"the metadata could not be embedded ({exc}); saving without metadata "
                "writes the image as it was sent",
                url=redact_url(task.results[index]),
                task_id=self._id,
                index=index,
            )
            raise note_collectable(error, self._id) from exc
        yield tagged


async def _one_chunk(data: bytes) -> AsyncGenerator[bytes, None]:
    yield data


async def _all_or_none(jobs: list[Awaitable[Any]]) -> list[Any]:
    """Run *jobs* together; if one fails, cancel the others and raise its error.

    The error raised is a failed job's own (the first of those that had failed when
    the others were stopped), never the cancellation of a job stopped for it.
    """
    if len(jobs) == 1:
        return [await jobs[0]]
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in sorted(tasks, key=lambda task: task not in done):  # the first failures first
        if not task.cancelled() and (error := task.exception()) is not None:
            raise error
    return [task.result() for task in tasks]
