"""When an image link stops working. Pure.

Links are valid for 24 hours after the task completes: that lifetime is the only thing
the protocol says. A link's query string may seem to say more (an ``expires`` /
``Expires`` / ``exp`` value, or the ``X-Amz-Date`` + ``X-Amz-Expires`` pair of presigned
URLs), but hosts write other things there: a flag (``exp=1``), the seconds of validity
(``Expires=86400``), milliseconds. :func:`link_expiry` reads the value as a Unix time;
:func:`believed_expiry` keeps it only when it is a plausible one for the task. Even a
believed expiry that has passed never stops a download before the 24 hours are over:
the host is asked, and its answer decides.

A host that refuses a link (403) may mean it expired, or may be blocking this client:
:func:`block_evidence` tells the two apart.
"""

from __future__ import annotations

import bisect
import calendar
import math
import re
import time
from collections.abc import Sequence
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "LINK_TTL",
    "REFUSAL_SAMPLE_BYTES",
    "STATED_EXPIRY_HORIZON",
    "believed_expiry",
    "block_evidence",
    "link_expiry",
    "redact_url",
    "utc",
]

#: How long the service keeps image links valid after completion, in seconds.
LINK_TTL = 24 * 60 * 60.0
#: How far after completion a link's stated expiry may lie and still be believed, in
#: seconds: seven days, the longest a presigned S3 link can live.
STATED_EXPIRY_HORIZON = 7 * 24 * 60 * 60.0


def redact_url(url: str) -> str:
    """Return *url* without user info, query string or fragment (signed links are credentials).

    For every message, log line and repr that names a link.

    >>> redact_url("https://user:pw@cdn.example/x/0.png?sig=secret#frag")
    'https://cdn.example/x/0.png'
    """
    common = _COMMON_URL.fullmatch(url)
    if common:  # the common image link, signed or not: urlsplit would keep the first group
        return common[1]
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


#: A link in lower-case scheme with no user info, space or control character, then
#: perhaps a query string or fragment (without spaces or control characters either).
_COMMON_URL = re.compile(r"(https?://[^@?#\x00-\x20\x7f]*)(?:[?#][^\x00-\x20\x7f]*)?")


def _number(values: list[str] | None) -> float | None:
    if not values:
        return None
    try:
        value = float(values[0])
    except ValueError:
        return None
    return value if math.isfinite(value) else None  # "nan", "inf", "1e999": no time


def _query(url: str) -> dict[str, list[str]]:
    """Return ``parse_qs(urlsplit(url).query)``, without either for a plain query string.

    A plain one has nothing to unquote (no ``%`` or ``+``) and a URL that urlsplit reads
    as it is (printable, no brackets): its query is what lies between the first ``?``
    and the first ``#``.
    """
    if not url.isprintable() or _NOT_PLAIN.search(url):
        return parse_qs(urlsplit(url).query)
    fields: dict[str, list[str]] = {}
    for pair in url.partition("#")[0].partition("?")[2].split("&"):
        name, _, value = pair.partition("=")
        if value:  # parse_qs drops blank values, and pairs without "="
            fields.setdefault(name, []).append(value)
    return fields


_NOT_PLAIN = re.compile(r"[%+\[\]]")  # a regular expression: faster than set lookups


def link_expiry(url: str) -> float | None:
    """Return the Unix time at which *url* seems to say it expires, or ``None``.

    The value as written, unchecked (``exp=1`` gives ``1.0``): :func:`believed_expiry`
    decides whether it is an expiry at all.

    >>> link_expiry("https://cdn.example/a.png?expires=1700000000&sig=ab")
    1700000000.0
    >>> link_expiry("https://cdn.example/a.png?X-Amz-Date=20240101T000000Z&X-Amz-Expires=60")
    1704067260.0
    >>> link_expiry("https://cdn.example/a.png") is None
    True
    """
    if "?" not in url:  # no query string, nothing it could state
        return None
    query = _query(url)
    for key in ("expires", "Expires", "exp"):
        value = _number(query.get(key))
        if value is not None:
            return value
    signed = query.get("X-Amz-Date")
    lifetime = _number(query.get("X-Amz-Expires"))
    if signed and lifetime is not None:
        try:
            start = calendar.timegm(time.strptime(signed[0], "%Y%m%dT%H%M%SZ"))
        except ValueError:
            return None
        return start + lifetime
    return None


def believed_expiry(
    stated: Sequence[float], *, completed_at: float, lifetime: float, created: float | None
) -> float | None:
    """Return the earliest of the *stated* expiries that is believable, or ``None``.

    *stated* holds what the links say (:func:`link_expiry`), in ascending order;
    *completed_at* is when the task was first seen completed (Unix time), *lifetime* the
    links' lifetime from then (:data:`LINK_TTL`), *created* the task's ``created`` as the
    service states it, if it does. A stated expiry is believed when it is later than the
    task's creation and than one lifetime before completion (a link expiring earlier was
    dead before it was handed out: the value is not a time, or not this task's), and no
    later than :data:`STATED_EXPIRY_HORIZON` after completion (milliseconds, or a time
    the protocol's 24 hours contradict). Anything else is ignored.

    >>> believed_expiry([1.0, 86400.0], completed_at=1.7e9, lifetime=LINK_TTL, created=None)
    >>> believed_expiry([1.7e9 + 3600], completed_at=1.7e9, lifetime=LINK_TTL, created=None)
    1700003600.0
    """
    earliest = completed_at - lifetime
    if created is not None and created > earliest:
        earliest = created
    first = bisect.bisect_right(stated, earliest)  # the first one later than that
    if first < len(stated) and stated[first] <= completed_at + STATED_EXPIRY_HORIZON:
        return stated[first]
    return None


#: How much of a refusal's body :func:`block_evidence` looks at.
REFUSAL_SAMPLE_BYTES = 4096
_BLOCK_SIGNS = re.compile(
    rb"cloudflare|\b(?:error|code)\W{0,16}10[0-2]\d\b|browser.{0,3}s signature|bot protection",
    re.IGNORECASE,
)
_EXPIRY_SIGNS = re.compile(rb"expired", re.IGNORECASE)


def block_evidence(body: bytes, stated_expiry: float | None, *, now: float) -> str | None:
    """Say why a 403 from the image host looks like a block of this client, else ``None``.

    A block when the answer is a Cloudflare page (error 1010 bans a client by its
    browser signature, that is its ``User-Agent``; other codes are other access rules),
    whatever the link's age. Otherwise a block when the link states its own expiry
    (*stated_expiry*, as :func:`believed_expiry` gives it) and that is still ahead of *now*, unless
    the host itself says the link expired (then the clocks disagree). ``None`` (expiry)
    for a plain refusal of a link that states no expiry: its 24 hours may well be over.

    >>> block_evidence(b"error code: 1010", None, now=0.0)
    'the answer is a Cloudflare access-denied page'
    >>> block_evidence(b"<Code>AccessDenied</Code>", None, now=0.0) is None
    True
    >>> block_evidence(b"<Code>AccessDenied</Code>", 86400.0, now=0.0)
    'the link states it is valid until 1970-01-02 00:00:00 UTC'
    """
    sample = body[:REFUSAL_SAMPLE_BYTES]
    if _BLOCK_SIGNS.search(sample):
        return "the answer is a Cloudflare access-denied page"
    if stated_expiry is None or now >= stated_expiry or _EXPIRY_SIGNS.search(sample):
        return None
    return f"the link states it is valid until {utc(stated_expiry)} UTC"


def utc(moment: float) -> str:
    """Return the Unix time *moment* as ``YYYY-MM-DD HH:MM:SS`` in UTC, for messages."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(moment))
