"""What an image host's answer means, as a pure function of the answer and the link.

:func:`judge_image_reply` is asked once per response status by the download loop in
:mod:`zimage_async._download`, before any body byte is read (a 403's first bytes aside),
so tests check every row without a server.
"""

from __future__ import annotations

import enum

import attrs

from ._links import block_evidence
from ._schedule import transient_status

__all__ = ["ImageReply", "ImageVerdict", "judge_image_reply"]


class ImageVerdict(enum.Enum):
    """What the download loop does with one answer of the image host."""

    #: 200 or 206: read the body.
    READ = "read"
    #: A CDN blocking this client (a 403 before the link's expiry, or a 1010 page).
    BLOCKED = "blocked"
    #: A 403/404 right after completion: the CDN may not have the file yet; ask again.
    GRACE = "grace"
    #: The link has expired or the file is gone (403, 404, 410).
    EXPIRED = "expired"
    #: 429 or 5xx: transient; ask again after the advice.
    TRANSIENT = "transient"
    #: 416 after some bytes: the host's copy is shorter than the image.
    INCOMPLETE_COPY = "incomplete copy"
    #: 416 after an image whole by its framing and every length the host stated: done.
    COMPLETE = "complete"
    #: Anything else: a failure that asking again cannot fix.
    FAIL = "fail"


@attrs.frozen
class ImageReply:
    """The verdict, and for a block the evidence that it is one."""

    verdict: ImageVerdict
    evidence: str | None = None


_READ = ImageReply(ImageVerdict.READ)  # the common verdict, made once: it is frozen
_COMPLETE = ImageReply(ImageVerdict.COMPLETE)


def judge_image_reply(
    status: int,
    *,
    sample: bytes,
    stated_expiry: float | None,
    now: float,
    fresh: bool,
    resuming: bool,
    whole: bool = False,
) -> ImageReply:
    """Judge one answer of the image host.

    *sample* is the start of a 403's body (empty for other statuses); *stated_expiry*
    the expiry the link states, if believed (:func:`~zimage_async._links.believed_expiry`);
    *fresh* whether the task completed moments ago
    and the grace for a slow CDN is not used up; *resuming* whether bytes were already
    received (a 416 then means the host's copy ends early, unless *whole*: the bytes
    received are the whole image by its framing and by every length the host stated, and
    the connection only dropped at its very end).

    >>> judge_image_reply(200, sample=b"", stated_expiry=None, now=0, fresh=False,
    ...                   resuming=False).verdict
    <ImageVerdict.READ: 'read'>
    >>> judge_image_reply(403, sample=b"error code: 1010", stated_expiry=None, now=0,
    ...                   fresh=False, resuming=False).verdict
    <ImageVerdict.BLOCKED: 'blocked'>
    """
    if status in (200, 206):
        return _READ
    if status == 403:
        evidence = block_evidence(sample, stated_expiry, now=now)
        if evidence is not None:
            return ImageReply(ImageVerdict.BLOCKED, evidence)
    if status in (403, 404) and fresh:
        return ImageReply(ImageVerdict.GRACE)
    if status in (403, 404, 410):
        return ImageReply(ImageVerdict.EXPIRED)
    if transient_status(status):
        return ImageReply(ImageVerdict.TRANSIENT)
    if status == 416 and resuming:
        if whole:
            return _COMPLETE
        return ImageReply(ImageVerdict.INCOMPLETE_COPY)
    return ImageReply(ImageVerdict.FAIL)
