"""Reading the API's answers: task JSON, error envelopes and retry hints. Pure, no I/O.

Answers are taken as ``(status, headers, body)``; the functions here return models or
raise the matching :mod:`zimage_async._exceptions` class. :func:`parse_task_reply` reads
an answer of the create or task endpoint whole; the task object itself is read by
:mod:`zimage_async._parsing_task`, error answers and retry advice by
:mod:`zimage_async._parsing_errors`, and this module re-exports their functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._exceptions import MalformedResponseError
from ._models import Task
from ._parsing_errors import MAX_ADVISED_WAIT as MAX_ADVISED_WAIT
from ._parsing_errors import parse_error, parse_retry_after, read_json
from ._parsing_task import parse_task, salvage_task_id

__all__ = [
    "parse_error",
    "parse_json",
    "parse_retry_after",
    "parse_task",
    "parse_task_reply",
    "salvage_task_id",
]


def parse_json(body: bytes, *, status: int | None = None) -> Any:
    """Decode a JSON body, raising :class:`MalformedResponseError` if it is not JSON.

    Read by :func:`~zimage_async._parsing_errors.read_json`: an integer too long for
    ``int()`` reads as an infinite float, as ``1e5000`` does.

    >>> parse_json(b'{"a": 1}')
    {'a': 1}
    """
    try:
        return read_json(body)
    except (ValueError, RecursionError) as exc:
        raise MalformedResponseError(
            f"the body is not valid JSON ({type(exc).__name__}; {len(body)} bytes)",
            status=status,
        ) from None


def parse_task_reply(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str = "",
    path: str = "",
    now: float | None = None,
) -> Task:
    """Turn an answer of the create or task endpoint into a :class:`Task`, or raise.

    2xx answers are parsed as a task; anything else raises :func:`parse_error`'s error.
    """
    if not 200 <= status < 300:
        raise parse_error(status, headers, body, method=method, path=path, now=now)
    return parse_task(parse_json(body, status=status), status=status)
