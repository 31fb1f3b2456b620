"""A complete HTTP answer of the API, as :class:`~zimage_async._transport.Transport` reads it."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp
import attrs

from ._exceptions import MalformedResponseError, ZImageError

__all__ = ["Reply", "read_body"]


@attrs.frozen
class Reply:
    """An HTTP answer: status, headers and the whole (size-capped) body.

    ``cut`` is set only for a caller that asked to keep an answer whose body did not
    come whole (a create's: the task id may be in what came): the error the answer would
    otherwise have raised, ``body`` then being what came, up to the cap.
    """

    status: int
    headers: Mapping[str, str]
    body: bytes
    cut: ZImageError | None = None


async def read_body(
    content: aiohttp.StreamReader, max_body: int, *, status: int, keep_cut: bool
) -> tuple[bytes, Exception | None]:
    """Read a body of at most *max_body* bytes; return it, and why it is not whole.

    A body over *max_body* raises :class:`MalformedResponseError`, and one cut short or
    stalled raises aiohttp's ``ClientPayloadError`` or ``ServerTimeoutError``, unless
    *keep_cut*: then what was read (up to *max_body* bytes) is returned with the error
    it would have raised. The body is read as it comes, so what came before the
    connection ended is in hand when it ends (save bytes that came in the very turn it
    ended: aiohttp gives none once its error is set). The exchange's total limit still
    raises (a cancellation): what came by then is not kept.
    """
    parts: list[bytes] = []
    size = 0
    try:
        while size <= max_body:
            more = await content.read(max_body + 1 - size)  # usually the whole answer
            if not more:
                break
            parts.append(more)
            size += len(more)
            if content.at_eof():
                break
    except (aiohttp.ClientPayloadError, aiohttp.ServerTimeoutError) as cut_short:
        if not keep_cut:  # cut short, or stalled past the read timeout
            raise
        return b"".join(parts)[:max_body], cut_short.with_traceback(None)
    data = parts[0] if len(parts) == 1 else b"".join(parts)
    if size <= max_body:
        return data, None
    too_large = MalformedResponseError(f"the answer is larger than {max_body} bytes", status=status)
    if not keep_cut:
        raise too_large
    return data[:max_body], too_large
