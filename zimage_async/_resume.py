"""Resuming an image download: what a resume asks for, and whether it got the same image.

Pure (headers in, headers or a reason out). A resume asks for the bytes from an offset
on with ``Range``, and carries ``If-Range`` with the first answer's strong validator
(RFC 9110): an answer that states another validator is another image, never joined to
the bytes already delivered.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Mapping

__all__ = ["image_changed", "resume_headers", "resume_plan", "shown", "unsatisfied_total"]

# At most 18 digits a number: every length of a real image, and always a safe int().
_CONTENT_RANGE = re.compile(r"bytes\s+(\d{1,18})-(\d{1,18})/(\d{1,18}|\*)")
_UNSATISFIED = re.compile(r"bytes\s+\*/(\d{1,18})")  # a 416's Content-Range: the length
_STRONG_ETAG = re.compile(r'"[\x21\x23-\x7e]*"')  # W/"..." is weak: never an If-Range
_IMF_FIXDATE = re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT")
_DATE_MARGIN = 60.0  # how much older than Date a Last-Modified must be to be strong


def shown(value: str | None) -> str:
    """Quote a header value for a message, cut to its first 60 characters."""
    if value is None or len(value) <= 60:
        return repr(value)
    return f"{value[:60]!r}... ({len(value)} characters)"


def resume_headers(offset: int, first: Mapping[str, str] | None) -> dict[str, str]:
    """Ask for the bytes from *offset* on of the answer whose headers are *first*.

    ``If-Range`` (RFC 9110, 13.1.5) carries that answer's strong ETag; without an ETag,
    its Last-Modified if that is strong by RFC 9110, 8.8.2.2: at least
    :data:`_DATE_MARGIN` seconds before the answer's own Date (the margin browsers use,
    against clocks that differ). A weak or malformed ETag, or a Last-Modified without
    such a Date, gives no If-Range: ``Range`` alone, trusted on its length as before.
    """
    headers = {"Range": f"bytes={offset}-"}
    if first is None:
        return headers
    tag = first.get("ETag")
    if tag is not None:  # a date must not stand in for an entity tag, weak or not
        if _STRONG_ETAG.fullmatch(tag):
            headers["If-Range"] = tag
        return headers
    modified, date = first.get("Last-Modified"), first.get("Date")
    if modified is None or date is None:
        return headers
    modified_at, dated_at = _http_time(modified), _http_time(date)
    if modified_at is None or dated_at is None:
        return headers
    if dated_at - modified_at >= _DATE_MARGIN:
        headers["If-Range"] = modified
    return headers


def _http_time(value: str) -> float | None:
    """Return the Unix time of an HTTP date in the form senders must use, else ``None``."""
    if not _IMF_FIXDATE.fullmatch(value):
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def image_changed(first: Mapping[str, str], later: Mapping[str, str]) -> str | None:
    """Say why *later*, an answer to a resume, is another image than *first*, else None.

    It is when it states a validator other than *first*'s.
    ETags are compared weakly (``W/`` aside: two tags that differ so are two images);
    a validator that either answer does not state tells nothing. The bytes already
    delivered belong to the first image, so this is a failure, not a retry.
    """
    for name in ("ETag", "Last-Modified"):
        was, now = first.get(name), later.get(name)
        if was is None or now is None:
            continue
        if name == "ETag":
            same = was.strip().removeprefix("W/") == now.strip().removeprefix("W/")
        else:
            same = was.strip() == now.strip()
        if not same:
            return (
                f"the image changed between attempts (its {name} was {shown(was)}, "
                f"then {shown(now)}); the bytes already delivered are of the earlier one"
            )
    return None


def resume_plan(
    status: int, content_range: str | None, content_length: int | None, delivered: int
) -> tuple[int, int | None]:
    """Return (bytes to skip, total length) of a fresh or resumed answer, *delivered* bytes in.

    A 206 must resume exactly at *delivered* and, as asked (``bytes=N-``), run to the
    image's last byte, its ``Content-Length`` (if any) no longer than the range; a 200 is the
    whole image, whose first *delivered* bytes are skipped. Raises :class:`ValueError`
    with the reason otherwise.

    >>> resume_plan(206, "bytes 10-99/100", 90, 10)
    (0, 100)
    >>> resume_plan(206, "bytes 10-99/100", 190, 10)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: the image host's Content-Length (190) is longer than its Content-Range ...
    """
    if status != 206:
        return delivered, content_length
    match = _CONTENT_RANGE.fullmatch((content_range or "").strip())
    if not match:
        raise ValueError(f"the image host sent a malformed Content-Range ({shown(content_range)})")
    start, end, size = int(match.group(1)), int(match.group(2)), match.group(3)
    if start != delivered:
        raise ValueError(f"the image host resumed at the wrong place ({content_range!r})")
    total = None if size == "*" else int(size)
    if end < start or (total is not None and end != total - 1):
        raise ValueError(
            f"the image host answered another range than the rest of the image ({content_range!r})"
        )
    if content_length is not None and content_length > end - start + 1:  # shorter: cut short
        raise ValueError(
            f"the image host's Content-Length ({content_length}) is longer than its "
            f"Content-Range ({content_range!r}, {end - start + 1} bytes)"
        )
    return 0, total


def unsatisfied_total(content_range: str | None) -> int | None:
    """Return the image's length a 416 states (``Content-Range: bytes */N``), else None.

    >>> unsatisfied_total("bytes */77084"), unsatisfied_total(None)
    (77084, None)
    """
    match = _UNSATISFIED.fullmatch((content_range or "").strip())
    return None if match is None else int(match.group(1))
