"""Image replies written byte by byte, for framings aiohttp does not produce by itself.

The origin normally answers with ``Content-Length``. Seen behind CDNs: bodies without it,
either ``Transfer-Encoding: chunked`` or delimited by the connection's close (HTTP/1.1
allows a response without either; the body ends where the connection does). A body cut
short in ``close`` framing looks complete to the HTTP layer: only the image decoder can
tell. In ``chunked`` framing the missing last chunk is visible to the client.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Literal

__all__ = ["BodyFraming", "framed_reply"]

BodyFraming = Literal["close", "chunked"]


def framed_reply(
    *,
    status: int,
    headers: Mapping[str, str],
    payload: bytes,
    framing: BodyFraming,
    cut_at: int | None = None,
) -> bytes:
    r"""Return the bytes of an HTTP/1.1 reply in *framing*, its body cut at *cut_at* if set.

    The reply always says ``Connection: close``; the caller closes the connection after
    writing it. A cut chunked body lacks the rest of its chunk and the final empty chunk.

    >>> framed_reply(status=200, headers={}, payload=b"abcd", framing="close", cut_at=2)
    b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nab'
    """
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if framing == "chunked":
        lines.append("Transfer-Encoding: chunked")
    lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    sent = payload if cut_at is None else payload[:cut_at]
    if framing == "close":
        return head + sent
    if not payload:
        return head + (b"" if cut_at is not None else b"0\r\n\r\n")
    chunk = f"{len(payload):x}\r\n".encode() + sent
    return head + chunk + (b"" if cut_at is not None else b"\r\n0\r\n\r\n")
