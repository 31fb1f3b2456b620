"""The ``GET image`` span of one download: its retries, and a stream inside it.

:class:`ImageRetries` is what :func:`~zimage_async._download.stream_image` tells each
retry to: it counts it in the task span's ``retries`` and adds a ``retry`` event to the
image's span. One image download can resume a cut-short body across tries as one
stream, so its tries share one span, where the create's tries and the task reads each
have their own.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._imagelimits import DownloadInfo
    from ._telemetry import TaskSpan

__all__ = ["ImageRetries", "in_span"]


class ImageRetries:
    """Tells the retries of one image download: the task span's count, its span's events.

    Called by the download with the *reason* of each failed try (``status 503``, an
    error type such as ``APIConnectionError``, ``body cut short``) and the *delay* in
    seconds before the next; each is counted in the task span's ``retries``, and is a
    ``retry`` event on the ``GET image`` span once that span is set in :attr:`span`.
    """

    __slots__ = ("span", "task")

    def __init__(self, task: TaskSpan) -> None:
        self.task = task
        self.span: Any = None

    def __call__(self, reason: str, delay: float) -> None:
        self.task.retries += 1
        if self.span is not None:
            self.span.add_event("retry", {"zimage.reason": reason, "zimage.delay_s": delay})

    @staticmethod
    def of(task: TaskSpan) -> ImageRetries | None:
        """Return the teller for a download of *task*'s, or None while it records nothing."""
        return ImageRetries(task) if task.recording else None


async def in_span(
    chunks: AsyncGenerator[bytes, None],
    scope: contextlib.AbstractContextManager[Any],
    info: DownloadInfo,
    retries: ImageRetries | None,
) -> AsyncGenerator[bytes, None]:
    """Yield *chunks* inside the span *scope*, and note the bytes received on it.

    The bytes are noted however the stream ends: a stream closed early shows how much
    of the image was read.
    """
    with scope as span:
        if retries is not None:
            retries.span = span
        try:
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    yield chunk
        finally:
            span.set_attribute("zimage.image_bytes", info.size)
