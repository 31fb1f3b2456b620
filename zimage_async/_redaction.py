"""Request headers that never show the API key: :class:`RedactedHeaders`.

Part of the thin aiohttp layer (:mod:`zimage_async._transport`): the plain header dict
aiohttp needs is built from a :class:`RedactedHeaders` inside the request call only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NoReturn

from ._secret import MASK, Secret

__all__ = ["SECRET_HEADERS", "RedactedHeaders", "mask_echoes"]

#: Headers whose values are secrets: masked in every printed form, never sent to images.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


class RedactedHeaders:
    """Request headers whose every printed form hides the ``Authorization`` value.

    Deliberately *not* a mapping (nor a sequence): error reporters serialise mappings
    item by item (Sentry's SDK does so with the local variables of every frame), and
    would send the key; for anything else they fall back to the repr, which is masked.
    The values of ``Authorization``, ``Proxy-Authorization`` and ``Cookie`` are kept as
    :class:`~zimage_async._secret.Secret` objects, so not even ``vars()`` shows them.
    Only the transport turns it into the header dict aiohttp needs, inside the call.
    Build one per kind of request and reuse it: :meth:`with_header` makes a copy with
    one more header (an ``Idempotency-Key``) without touching the original.

    >>> headers = RedactedHeaders({"Authorization": "Bearer sk-1", "Accept": "text/plain"})
    >>> headers["Idempotency-Key"] = "abc"
    >>> headers
    RedactedHeaders({'Authorization': '***', 'Accept': 'text/plain', 'Idempotency-Key': 'abc'})
    """

    __slots__ = ("_masks", "_values")

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        self._values: dict[str, str | Secret] = {}
        # What an answer must not echo, found once, when a secret header is set.
        self._masks: tuple[Secret, ...] = ()
        for name, value in (headers or {}).items():
            self[name] = value

    def __setitem__(self, name: str, value: str) -> None:
        if name.lower() not in SECRET_HEADERS:
            self._values[name] = value
            return
        self._values[name] = Secret(value)
        token = value.partition(" ")[2] or value  # the token of "Bearer <token>"
        if len(token) >= 4:
            self._masks += tuple(Secret(t) for t in {token, token.replace("/", "\\/")})

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in {k.lower() for k in self._values}

    def __repr__(self) -> str:
        shown = {k: (MASK if isinstance(v, Secret) else v) for k, v in self._values.items()}
        return f"RedactedHeaders({shown!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("RedactedHeaders cannot be pickled")

    def with_header(self, name: str, value: str) -> RedactedHeaders:
        """Return a copy with *name* set to *value*; this one is left as it is.

        >>> base = RedactedHeaders({"Accept": "text/plain"})
        >>> base.with_header("Idempotency-Key", "k1")
        RedactedHeaders({'Accept': 'text/plain', 'Idempotency-Key': 'k1'})
        >>> base
        RedactedHeaders({'Accept': 'text/plain'})
        """
        copy = RedactedHeaders()
        copy._values = dict(self._values)
        copy._masks = self._masks
        copy[name] = value
        return copy

    def _wire(self, user_agent: str | None) -> dict[str, str]:
        """Return the plain header dict for aiohttp; call it only inside the request call.

        *user_agent* is added unless these headers set one (``None``: the session that
        sends them already has it among its default headers).
        """
        wire = {} if user_agent is None else {"User-Agent": user_agent}
        for name, value in self._values.items():
            if user_agent is not None and name.lower() == "user-agent":
                del wire["User-Agent"]
            wire[name] = value.reveal() if isinstance(value, Secret) else value
        return wire

    def _tokens(self) -> list[bytes]:
        """Return the secret values (and the token of ``Bearer <token>``), to mask echoes."""
        return [mask.reveal().encode() for mask in self._masks]


def mask_echoes(body: bytes, headers: RedactedHeaders) -> bytes:
    """Replace every echo of a request secret of *headers* in an answer's *body* with ``***``."""
    for mask in headers._masks:
        token = mask.reveal().encode()
        if token in body:
            body = body.replace(token, MASK.encode())
    return body
