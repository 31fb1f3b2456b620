"""Signed, expiring image links like a CDN's.

A link looks like ``{origin}/files/{task_id}/{index}.{ext}?expires={unix}&sig={hex}``,
where ``expires`` is the task's completion time plus the link lifetime (whole seconds,
rounded down) and ``sig`` is an HMAC-SHA256 over the path and ``expires`` with the
emulator's secret. The image origin answers 403 for a wrong signature or an expired link.
"""

from __future__ import annotations

import hashlib
import hmac
import math

import attrs

__all__ = ["FILE_EXTENSIONS", "LinkSigner", "file_path"]

FILE_EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}
"""File name extension for each image format."""


def file_path(task_id: str, index: int, extension: str) -> str:
    """Return the origin path of one image, e.g. ``/files/task-unified-1-abc/0.png``."""
    return f"/files/{task_id}/{index}.{extension}"


@attrs.frozen(kw_only=True)
class LinkSigner:
    """Makes and checks signed, expiring image links."""

    secret: bytes = attrs.field(repr=False)
    ttl_seconds: float

    def expires(self, finished_at: float) -> int:
        """Return the ``expires`` value for a task that finished at *finished_at*."""
        return math.floor(finished_at + self.ttl_seconds)

    def signature(self, path: str, expires: int) -> str:
        """Return the hex signature of *path* valid until *expires*."""
        message = f"{path}\n{expires}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def link(self, origin: str, path: str, expires: int) -> str:
        """Return the full signed URL of *path* on *origin*."""
        return f"{origin}{path}?expires={expires}&sig={self.signature(path, expires)}"

    def is_valid(self, path: str, expires: int, signature: str) -> bool:
        """Tell whether *signature* was made by this signer for *path* and *expires*."""
        return hmac.compare_digest(self.signature(path, expires), signature)
