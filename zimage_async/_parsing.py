"""Reading the API's answers: task JSON, error envelopes and retry hints. Pure, no I/O.

Answers are taken as ``(status, headers, body)``; the functions here return models or
raise the matching :mod:`zimage_async._exceptions` class. A private cattrs converter
(never the global one) structures the JSON: unknown fields are ignored, primitive types
are checked strictly (``"7"`` is not an int, ``1`` is not a bool), and a malformed
payload becomes :class:`~zimage_async.MalformedResponseError` naming the bad path.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from ._exceptions import APIError, MalformedResponseError, api_error_class
from ._models import Task, TaskErrorDetail, TaskInfo, TaskStatus, Usage

__all__ = [
    "parse_error",
    "parse_json",
    "parse_retry_after",
    "parse_task",
    "parse_task_reply",
    "salvage_task_id",
]


T = TypeVar("T")


def _strict_str(value: object, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _strict_int(value: object, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"expected an integer, got {value!r}")
        return int(value)
    return value


def _strict_float(value: object, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"expected a finite number, got {value!r}")
    return result


def _strict_bool(value: object, _: type) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected a boolean, got {type(value).__name__}")
    return value


def _error_code(value: object, _: type) -> str:
    # The protocol says string codes; some endpoints send ints. Keep either, as text.
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"expected a string or integer code, got {type(value).__name__}")
    return str(value)


def _string_list(value: object, _: type) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list of strings, got {type(value).__name__}")
    return tuple(_strict_str(item, str) for item in value)


def _progress(value: object, _: type) -> int:
    # Clamp rather than refuse: a progress of 101 is no reason to lose a task.
    return min(100, max(0, round(_strict_float(value, float))))


def _objects_only(structure: Callable[[Any, Any], T]) -> Callable[[Any, Any], T]:
    """Wrap a generated hook so that only JSON objects are accepted (not "free")."""

    def hook(value: Any, cls: Any) -> T:
        if not isinstance(value, dict):
            raise TypeError(f"expected an object, got {type(value).__name__}")
        return structure(value, cls)

    return hook


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=False)
    converter.register_structure_hook(str, _strict_str)
    converter.register_structure_hook(int, _strict_int)
    converter.register_structure_hook(float, _strict_float)
    converter.register_structure_hook(bool, _strict_bool)
    converter.register_structure_hook_func(lambda t: t == tuple[str, ...], _string_list)
    hooks: dict[type, Callable[[Any, Any], Any]] = {
        TaskErrorDetail: make_dict_structure_fn(
            TaskErrorDetail, converter, code=override(struct_hook=_error_code)
        ),
        Task: make_dict_structure_fn(
            Task,
            converter,
            raw_status=override(rename="status"),
            progress=override(struct_hook=_progress),
        ),
        TaskInfo: make_dict_structure_fn(TaskInfo, converter),
        Usage: make_dict_structure_fn(Usage, converter),
    }
    for cls, hook in hooks.items():
        converter.register_structure_hook(cls, _objects_only(hook))
    return converter


_CONVERTER = _make_converter()
#: Fields whose malformation is logged and ignored rather than failing the task.
_HINTS = frozenset({"task_info", "usage", "created", "model"})
logger = logging.getLogger("zimage_async")
_PATH_LINE = re.compile(r"@ (\$\S*)")


def _first_path(exc: Exception) -> str:
    for line in cattrs.transform_error(exc, path="$"):
        match = _PATH_LINE.search(line)
        if match:
            return match.group(1)
    return "$"


def parse_json(body: bytes, *, status: int | None = None) -> Any:
    """Decode a JSON body, raising :class:`MalformedResponseError` if it is not JSON.

    >>> parse_json(b'{"a": 1}')
    {'a': 1}
    """
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise MalformedResponseError(
            f"the body is not valid JSON ({type(exc).__name__}; {len(body)} bytes)",
            status=status,
        ) from None


def parse_task(payload: object, *, status: int | None = None) -> Task:
    """Structure a decoded task object into a :class:`Task`.

    >>> parse_task({"id": "task-unified-1-abc", "status": "queued", "extra": 1}).raw_status
    'queued'
    """
    if not isinstance(payload, dict):
        raise MalformedResponseError(
            f"expected a task object, got {type(payload).__name__}", status=status
        )
    try:
        task = _CONVERTER.structure(payload, Task)
    except Exception as exc:  # cattrs reports every fault as an exception group
        # Hints are not worth losing a (billed) task over: try again without them.
        essentials = {k: v for k, v in payload.items() if k not in _HINTS}
        try:
            task = _CONVERTER.structure(essentials, Task)
        except Exception:
            lines = cattrs.transform_error(exc, path="$")
            raise MalformedResponseError(
                "; ".join(lines[:3]) or str(exc), path=_first_path(exc), status=status
            ) from None
        logger.warning("ignored malformed hint fields in task %s: %s", task.id, _first_path(exc))
    if task.status is TaskStatus.COMPLETED and not task.results:
        raise MalformedResponseError(
            "a completed task must carry at least one result URL", path="$.results", status=status
        )
    if task.status is TaskStatus.FAILED and task.error is None:
        task = attrs.evolve(
            task, error=TaskErrorDetail(code="unknown_error", message="no error was given")
        )
    return task


_TASK_ID = re.compile(rb'"id"\s*:\s*"(task-unified-[0-9]+-[a-z0-9]{8})"')


def salvage_task_id(body: bytes) -> str | None:
    """Find a complete task id in a create answer too garbled to parse, if there is one.

    >>> salvage_task_id(b'{"created":1,"id":"task-unified-17-abcd1234","sta')
    'task-unified-17-abcd1234'
    >>> salvage_task_id(b'{"created":1,"id":"task-unified-17-ab') is None
    True
    """
    match = _TASK_ID.search(body)
    return match.group(1).decode() if match else None


_SUGGESTION_WAIT = re.compile(
    r"retry\s+after\s+(\d+(?:\.\d+)?)\s*(ms|milliseconds?|s|secs?|seconds?|m|mins?|minutes?)?",
    re.IGNORECASE,
)


def parse_retry_after(
    header: str | None, suggestion: str | None, *, now: float | None = None
) -> float | None:
    """Return the seconds to wait that the server advised, or ``None`` if it gave no hint.

    Reads the ``Retry-After`` header (seconds, or an HTTP date compared with *now*, a Unix
    time) and the envelope's ``fallback_suggestion`` (``"retry after 60 seconds"``); when
    both are present the longer wait wins.

    >>> parse_retry_after("5", "retry after 60 seconds")
    60.0
    >>> parse_retry_after(None, "try again later") is None
    True
    """
    waits: list[float] = []
    if header:
        text = header.strip()
        try:
            seconds = float(text)
        except ValueError:
            when = None
            try:
                when = email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                when = None
            if when is not None and now is not None:
                waits.append(max(0.0, when.timestamp() - now))
        else:
            if math.isfinite(seconds) and seconds >= 0:
                waits.append(seconds)
    if suggestion:
        match = _SUGGESTION_WAIT.search(suggestion)
        if match:
            amount = float(match.group(1))
            unit = (match.group(2) or "s").lower()
            if unit.startswith("m") and not unit.startswith("ms") and unit != "milliseconds":
                amount *= 60
            elif unit in ("ms", "millisecond", "milliseconds"):
                amount /= 1000
            waits.append(amount)
    return max(waits) if waits else None


def parse_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str = "",
    path: str = "",
    now: float | None = None,
) -> APIError:
    """Build the :class:`APIError` subclass for an error answer.

    Reads the documented envelope ``{"error": {"code", "message", "type", "param",
    "fallback_suggestion"}}``; a body that is not the envelope (an HTML page from a
    proxy, say) still gives the right class, with a generic message and ``type=None``.
    """
    envelope: Mapping[str, Any] = {}
    try:
        decoded = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        decoded = None
    if isinstance(decoded, dict) and isinstance(decoded.get("error"), dict):
        envelope = decoded["error"]

    def text(key: str) -> str | None:
        value = envelope.get(key)
        return value if isinstance(value, str) else None

    code = envelope.get("code")
    if isinstance(code, bool) or not isinstance(code, (int, str)):
        code = None
    suggestion = text("fallback_suggestion")
    cls = api_error_class(status)
    return cls(
        text("message") or f"HTTP {status} with no error envelope",
        status=status,
        code=code,
        type=text("type"),
        param=text("param"),
        fallback_suggestion=suggestion,
        retry_after=parse_retry_after(headers.get("Retry-After"), suggestion, now=now),
        method=method,
        path=path,
    )


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
