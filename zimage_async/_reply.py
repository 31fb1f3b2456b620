"""A complete HTTP answer of the API, as :class:`~zimage_async._transport.Transport` reads it."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

__all__ = ["Reply"]


@attrs.frozen
class Reply:
    """A complete HTTP answer: status, headers and the whole (size-capped) body."""

    status: int
    headers: Mapping[str, str]
    body: bytes
