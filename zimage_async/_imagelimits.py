"""Bounds on image downloads, the budget of one task's images, what a download learns.

:class:`ImageLimits` holds the bounds, :class:`ByteBudget` the bytes one task's images
may still hold, :class:`DownloadInfo` the verified type, size and start of an image.
"""

from __future__ import annotations

import attrs

from ._imageinfo import image_dimensions

__all__ = ["FRESH_LINK_RETRIES", "ByteBudget", "DownloadInfo", "ImageLimits"]


#: How many times a 403 or 404 right after completion is asked again.
FRESH_LINK_RETRIES = 2


@attrs.frozen(kw_only=True)
class ImageLimits:
    """Bounds on downloads, and the chunk size streamed.

    * ``max_bytes``: the largest image accepted.
    * ``chunk_size``: the most bytes handed on at once (a chunk is what has arrived,
      up to this size; a socket read brings at most 256 KiB).
    * ``max_task_bytes``: the most bytes the images of one task may hold in memory
      together (checked through the :class:`ByteBudget` the caller shares between
      them); ``None`` for no bound beyond ``max_bytes`` per image.
    * ``total_timeout``: seconds one image's download may take in all, redirects,
      retries and waits included (a host trickling a byte at a time cannot hold it
      longer).
    * ``fresh_link_grace``: seconds after completion during which a 403 or 404 from
      the image host is taken for a CDN that has not got the file yet, and asked again
      (:data:`FRESH_LINK_RETRIES` times at most) before it counts as expiry.
    """

    max_bytes: int = 64 * 1024 * 1024
    chunk_size: int = 256 * 1024
    max_task_bytes: int | None = None
    total_timeout: float = 600.0
    fresh_link_grace: float = 10.0

    def budget(self) -> ByteBudget | None:
        """Return a new :class:`ByteBudget` for one task's images (``None`` if unbounded)."""
        return None if self.max_task_bytes is None else ByteBudget(self.max_task_bytes)


class ByteBudget:
    """Bytes that the images of one task may still hold in memory; share one per task.

    >>> budget = ByteBudget(10)
    >>> budget.charge(4); budget.remaining
    6
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.remaining = limit

    def charge(self, size: int) -> None:
        """Take *size* bytes from the budget; raise :class:`OverflowError` past the limit."""
        self.remaining -= size
        if self.remaining < 0:
            raise OverflowError(f"the task's images exceed the {self.limit}-byte limit")


@attrs.define
class DownloadInfo:
    """Filled in while an image streams: its verified type, size and dimensions."""

    content_type: str | None = None
    size: int = 0
    head: bytes = b""

    @property
    def dimensions(self) -> tuple[int, int] | None:
        """``(width, height)`` read from the image header, if readable."""
        return image_dimensions(self.head) if self.head else None
