"""Streaming one image with verification, retries and resumption.

:func:`stream_image` yields the body chunk by chunk, never holding the whole image. It
checks, before the first byte reaches the caller, that the bytes are PNG, JPEG or WebP
and agree with the declared type; as they stream, that they follow the format's own
framing (:class:`~zimage_async._imageinfo.ImageFraming`), with no byte after the image's
end; and, at the end, that the image is complete by its framing and the length matches
what the server announced. A body cut short, even one that ends cleanly without any
announced length, is fetched again from where it stopped (``Range: bytes=N-``; if the
host ignores ranges, the bytes already delivered are skipped), so a truncated image is
never returned; nor is one joined to another image (:mod:`~zimage_async._resume`).
Without a length, a body that ends before its first byte, or within an image signature
(too short to be told, but the start of a PNG, JPEG or WebP one), was cut short too:
only a short body that no accepted format starts with is refused as not an image.

A 403 is told apart: expiry (:class:`ImageExpiredError`, as for 404 and 410) or a block
of this client (:class:`ImageBlockedError`), by :func:`~zimage_async._links.block_evidence`.
Right after completion a CDN may not have the file yet: a 403 or 404 within
:attr:`ImageLimits.fresh_link_grace` seconds of completion is asked again (twice at
most) before it counts as expiry.

Bounds: :attr:`ImageLimits.max_bytes` per image, a :class:`ByteBudget` shared by the
images of one task (:attr:`ImageLimits.max_task_bytes`), and
:attr:`ImageLimits.total_timeout` seconds per image, retries included. Failures that
asking again cannot change (a refused link or redirect, a malformed body, a limit) are
never retried.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping

from ._exceptions import (
    APIConnectionError,
    APITimeoutError,
    ImageDownloadError,
    ImageLinkRefusedError,
    MalformedResponseError,
)
from ._imagefailure import Grace, Retryable, Secrets, Where, earlier_expiry, malformed, over_time
from ._imageinfo import SNIFF_BYTES, ImageFraming, check_declared_type, sniff_content_type
from ._imagelimits import FRESH_LINK_RETRIES, ByteBudget, DownloadInfo, ImageLimits
from ._imagereply import ImageVerdict, judge_image_reply
from ._imagestream import ImageStream
from ._links import LINK_TTL, REFUSAL_SAMPLE_BYTES, utc
from ._parsing import parse_retry_after
from ._polling import wait_out
from ._quoting import log_text
from ._resume import image_changed, resume_headers, resume_plan, unsatisfied_total
from ._schedule import RetryPolicy
from ._transport import Transport

__all__ = ["FRESH_LINK_RETRIES", "ByteBudget", "DownloadInfo", "ImageLimits", "stream_image"]

logger = logging.getLogger("zimage_async")

_IDENTITY = frozenset({"", "identity"})  # Content-Encodings that leave the bytes as they are
_HEAD_KEEP = 64 * 1024  # enough of the start to read JPEG dimensions after EXIF
_PNG, _JPEG = b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"  # the signatures sniffing tells


async def stream_image(
    transport: Transport,
    url: str,
    *,
    task_id: str | None,
    index: int | None,
    expires_at: float | None,
    stated_expiry: float | None = None,
    lifetime: float = LINK_TTL,
    retry: RetryPolicy,
    rng: random.Random,
    limits: ImageLimits,
    info: DownloadInfo,
    budget: ByteBudget | None = None,
    completed_at: float | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    retried: Callable[[str, float], None] | None = None,
    secrets: Secrets = (),
) -> AsyncGenerator[bytes, None]:
    """Yield the verified bytes of the image at *url*, retrying transient faults.

    *budget*, shared by the images of one task, bounds the bytes they hold together;
    *completed_at* (a Unix time) is when the task was first seen completed, for the
    grace given to a CDN that answers 403 or 404 right after completion. *retried* is
    told each retry: why the try failed (:func:`_retry_reason`) and the delay before the next.
    *secrets* (the API key) are masked in the errors' text, should the host echo them.
    *expires_at* (Unix time) ends the links' *lifetime* (seconds) from completion; *stated_expiry*
    is the link's believed stated expiry (:meth:`Task.believed_expiry`): evidence for
    judging a refusal, never a reason to send no request (the host's answer decides).

    Raises :class:`ImageExpiredError` without a request when *expires_at* has passed,
    or when the host answers 404, 410 or a 403 that looks like expiry;
    :class:`ImageLinkRefusedError` for a link or redirect the link policy refuses;
    :class:`ImageBlockedError` for a 403 that looks like a block of this client;
    :class:`ImageDownloadError` for anything else that cannot be fixed by asking again,
    including an image that is not complete by its own framing or that has bytes after
    its end, and one whose answer to a resume states another ETag or Last-Modified than
    the first answer did (the image changed between attempts).
    """
    where = Where(url, task_id, index, secrets)
    if expires_at is not None and time.time() >= expires_at:
        raise where.lapsed(lifetime, earlier_expiry(expires_at, stated_expiry))
    total: int | None = None
    framing: ImageFraming | None = None
    first: Mapping[str, str] | None = None  # the headers of the answer being delivered
    coded = False  # the host compressed the body although asked for its own bytes
    attempt = 0
    graced = 0
    deadline = time.monotonic() + limits.total_timeout
    while True:
        attempt += 1
        status: int | None = None  # this try's answer, once it came
        try:
            offset = info.size
            # A compressed body has no range of the image's own bytes: fetch it all again.
            headers = resume_headers(offset, first) if offset and not coded else {}
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise where.fail(over_time(limits))
            async with transport.stream(url, headers=headers, total_timeout=remaining) as response:
                status = response.status
                if status != 200 and status != 206:  # not the image: say why, then raise
                    fresh = (
                        completed_at is not None
                        and time.time() - completed_at <= limits.fresh_link_grace
                        and graced < FRESH_LINK_RETRIES
                    )
                    failure = await _refusal(
                        response,
                        where,
                        user_agent=transport.user_agent,
                        expires_at=expires_at,
                        stated_expiry=stated_expiry,
                        fresh=fresh,
                        copy=None if framing is None else (framing, info.size, total),
                    )
                    if failure is None:  # a 416 after the whole image: it was delivered
                        return
                    if isinstance(failure, Grace):
                        graced += 1
                        attempt -= 1  # the grace does not use up the retry policy's attempts
                    raise failure
                if not offset:  # this answer's bytes are the ones a resume continues
                    first = response.headers
                elif first is not None:
                    changed = image_changed(first, response.headers)
                    if changed is not None:
                        raise where.fail(changed)
                try:
                    skip, announced = resume_plan(
                        status,
                        response.headers.get("Content-Range"),
                        response.content_length,
                        offset,
                    )
                except ValueError as exc:
                    raise where.fail(str(exc)) from None
                if response.headers.get("Content-Encoding", "").strip().lower() not in _IDENTITY:
                    coded, announced = True, None  # its Content-Length counts the coded bytes
                if total is None:
                    total = announced
                elif announced is not None and announced != total:
                    raise where.fail("the image changed between attempts (its length differs)")
                if total is not None and total > limits.max_bytes:
                    raise where.fail(
                        f"the image is {total} bytes, over the {limits.max_bytes}-byte limit"
                    )
                pending = b""
                read, size, declared = response.read, limits.chunk_size, None
                while chunk := await read(size):
                    if skip:
                        dropped = min(skip, len(chunk))
                        _same_start(chunk[:dropped], offset - skip, info.head, where)
                        chunk = chunk[dropped:]
                        skip -= dropped
                        if not chunk:
                            continue
                    if framing is None:
                        pending += chunk
                        if len(pending) < SNIFF_BYTES:
                            continue
                        chunk, pending = pending, b""
                        declared = response.headers.get("Content-Type")
                        framing = _verify_head(chunk, declared, info, where)
                    _take(chunk, info, framing, (limits, total), budget, where)
                    paused = time.monotonic()
                    yield chunk
                    # The consumer's time with the chunk is not the download's: no limit counts it.
                    spent = time.monotonic() - paused
                    deadline += spent
                    response.extend(spent)
                if pending:  # a body shorter than the sniffing window
                    if (total is None or len(pending) < total) and _signature_start(pending):
                        raise where.transient(
                            f"the body ended after {len(pending)} bytes, within the image's "
                            "signature"
                        )
                    declared = response.headers.get("Content-Type")
                    framing = _verify_head(pending, declared, info, where)
                    _take(pending, info, framing, (limits, total), budget, where)
                    yield pending
            if total is not None and info.size < total:
                raise where.transient(f"the body was cut short ({info.size} of {total} bytes)")
            if framing is None:
                if total is None:  # the connection closed before the first byte
                    raise where.transient("the body ended before its first byte")
                raise where.fail("the image host sent an empty body")
            if not framing.complete:
                if total is not None:
                    raise where.fail(
                        f"the image host's copy is incomplete: it sent the {total} bytes it "
                        f"announced, but {framing.missing()}"
                    )
                raise where.transient(f"the body ended early: {framing.missing()}")
            return
        except MalformedResponseError as exc:
            raise where.fail(f"the image host's answer is malformed: {exc.detail}") from exc
        except ImageLinkRefusedError as exc:
            raise where.refused(exc.reason) from None
        except (Retryable, APIConnectionError) as exc:
            if isinstance(exc, APITimeoutError) and time.monotonic() >= deadline:
                raise where.fail(over_time(limits)) from None
            floor = getattr(exc, "retry_after", None) or 0.0
            delay = retry.after(max(attempt, 1), floor, rng=rng)
            if delay is None:
                if attempt >= retry.max_attempts:
                    gave_up = f"gave up after {attempt} attempts: {where.said(exc)}"
                    raise where.fail(gave_up) from exc
                raise where.fail(f"the host asks to wait {floor:g} s") from exc
            left = deadline - time.monotonic()
            if delay >= left:
                raise where.fail(over_time(limits, asked=floor, wait=delay, left=left)) from exc
            logger.info(
                "retrying image download %s (attempt %d failed: %s) in %.2f s",
                log_text(where.url),
                attempt,
                log_text(where.said(exc)),
                delay,
            )
            if retried is not None:
                retried(_retry_reason(exc, status), delay)
            await wait_out(sleep, delay, f"the download's last try failed ({where.said(exc)})")


def _retry_reason(exc: Exception, status: int | None) -> str:
    """Say in a word why a try failed: its status, a body cut short, or the error's type.

    >>> cut = Retryable("", url="", task_id=None, index=None)
    >>> _retry_reason(cut, 503), _retry_reason(cut, 200), _retry_reason(TimeoutError(), None)
    ('status 503', 'body cut short', 'TimeoutError')
    """
    if not isinstance(exc, Retryable):
        return type(exc).__name__
    return "body cut short" if status in (None, 200, 206) else f"status {status}"


async def _refusal(
    response: ImageStream,
    where: Where,
    *,
    user_agent: str,
    expires_at: float | None,
    stated_expiry: float | None,
    fresh: bool,
    copy: tuple[ImageFraming, int, int | None] | None,
) -> ImageDownloadError | None:
    """Return the error an answer other than 200 and 206 means (see judge_image_reply).

    *stated_expiry* is the link's believed stated expiry (tells a block from expiry,
    and dates an expiry); *fresh* whether the grace for a slow CDN right after
    completion applies; *copy*, when bytes were already received, their framing and number.
    """
    status = response.status
    now = time.time()
    stated = unsatisfied_total(response.headers.get("Content-Range")) if status == 416 else None
    reply = judge_image_reply(
        status,
        sample=await response.sample(REFUSAL_SAMPLE_BYTES) if status == 403 else b"",
        stated_expiry=stated_expiry,
        now=now,
        fresh=fresh,
        resuming=copy is not None,
        whole=copy is not None and copy[0].complete and {copy[2], stated} <= {None, copy[1]},
    )
    if reply.verdict is ImageVerdict.COMPLETE:
        return None
    verdict = reply.verdict
    if verdict is ImageVerdict.BLOCKED:
        assert reply.evidence is not None
        return where.blocked(reply.evidence, user_agent, stated_expiry)
    if verdict is ImageVerdict.GRACE:
        return Grace(
            f"the image host answered {status} right after completion (the file may not "
            "have reached it yet)",
            url=where.url,
            task_id=where.task_id,
            index=where.image,
        )
    if verdict is ImageVerdict.EXPIRED:
        reason = f"the image host answered {status}: the link has expired or is gone"
        if stated_expiry is not None and stated_expiry <= now:
            reason += f" (the link states it expired at {utc(stated_expiry)} UTC)"
        return where.expired(reason, earlier_expiry(expires_at, stated_expiry))
    if verdict is ImageVerdict.TRANSIENT:
        headers = response.headers
        retry_after = parse_retry_after(
            headers.get("Retry-After"), None, now=now, date=headers.get("Date")
        )
        return where.transient(f"the image host answered {status}", retry_after)
    if verdict is ImageVerdict.INCOMPLETE_COPY:
        assert copy is not None
        framing, sent, total = copy
        if framing.complete:  # the image's framing ends there: the host's lengths disagree
            return where.fail(
                f"the image host's lengths disagree: it announced {total or stated} bytes, then "
                f"answered 416 (no bytes after the {sent} sent, where the image's framing ends)"
            )
        return where.fail(
            f"the image host's copy is incomplete: it has no bytes after the {sent} sent "
            f"(it answered 416), but {framing.missing()}"
        )
    return where.fail(f"the image host answered {status}")


def _same_start(again: bytes, at: int, head: bytes, where: Where) -> None:
    """Check bytes a whole answer sent again (from *at*) against the start delivered.

    A resume answered 200 without a validator may be another image: the bytes it sends
    again, compared with the first 64 KiB kept, tell it before anything is joined.
    """
    kept = head[at : at + len(again)]
    if again[: len(kept)] != kept:
        raise where.fail(
            "the image changed between attempts (the whole answer to the resume starts "
            "with other bytes than those already delivered); they are of the earlier one"
        )


def _take(
    chunk: bytes,
    info: DownloadInfo,
    framing: ImageFraming,
    bounds: tuple[ImageLimits, int | None],
    budget: ByteBudget | None,
    where: Where,
) -> None:
    """Count *chunk* in, against every bound, and check it against the image's framing.

    *bounds* are the limits and the image's length as the host announced it, if it did.
    """
    limits, total = bounds
    info.size += len(chunk)
    if info.size > limits.max_bytes:
        raise where.fail(f"the image exceeds the {limits.max_bytes}-byte limit")
    if total is not None and info.size > total:
        raise where.fail(f"the body goes on past the {total} bytes the image host announced")
    if budget is not None:
        try:
            budget.charge(len(chunk))
        except OverflowError as exc:
            raise where.fail(f"{exc} (ImageLimits.max_task_bytes)") from None
    if len(info.head) < _HEAD_KEEP:
        info.head += chunk[: _HEAD_KEEP - len(info.head)]
    framing.feed(chunk)
    if framing.problem is not None or framing.excess:
        raise malformed(framing, where)


def _signature_start(head: bytes) -> bool:
    r"""Whether *head* is too short to tell, but the start of a PNG, JPEG or WebP signature.

    >>> _signature_start(b"\x89PN"), _signature_start(b"RIFF\x10\x00"), _signature_start(b"GIF8")
    (True, True, False)
    """
    if len(head) < len(_PNG) and _PNG.startswith(head):
        return True
    if len(head) < len(_JPEG) and _JPEG.startswith(head):
        return True
    return len(head) < 12 and b"RIFF".startswith(head[:4]) and b"WEBP".startswith(head[8:])


def _verify_head(
    head: bytes, declared: str | None, info: DownloadInfo, where: Where
) -> ImageFraming:
    sniffed = sniff_content_type(head)
    if sniffed is None:
        looks = "an HTML page" if head.lstrip()[:1] == b"<" else "not an image"
        raise where.fail(
            f"the body is {looks}, not PNG, JPEG or WebP (declared {declared or 'no type'})"
        )
    problem = check_declared_type(declared, sniffed)
    if problem is not None:
        raise where.fail(problem)
    info.content_type = sniffed
    return ImageFraming(sniffed)
