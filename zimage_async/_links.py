"""When an image link stops working. Pure.

Links are valid for 24 hours after the task completes. A link may also say so itself:
an ``expires`` / ``Expires`` / ``exp`` query parameter holding a Unix time, or the
``X-Amz-Date`` + ``X-Amz-Expires`` pair of presigned URLs. The earlier of the two wins.
"""

from __future__ import annotations

import calendar
import time
from urllib.parse import parse_qs, urlsplit

__all__ = ["LINK_TTL", "link_expiry"]

#: How long the service keeps image links valid after completion, in seconds.
LINK_TTL = 24 * 60 * 60.0


def _number(values: list[str] | None) -> float | None:
    if not values:
        return None
    try:
        return float(values[0])
    except ValueError:
        return None


def link_expiry(url: str) -> float | None:
    """Return the Unix time at which *url* says it expires, or ``None`` if it does not say.

    >>> link_expiry("https://cdn.example/a.png?expires=1700000000&sig=ab")
    1700000000.0
    >>> link_expiry("https://cdn.example/a.png?X-Amz-Date=20240101T000000Z&X-Amz-Expires=60")
    1704067260.0
    >>> link_expiry("https://cdn.example/a.png") is None
    True
    """
    query = parse_qs(urlsplit(url).query)
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
