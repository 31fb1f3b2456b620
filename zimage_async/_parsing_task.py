"""Reading a task object of the API into a :class:`~zimage_async.Task`. Pure, no I/O.

A private cattrs converter (never the global one) structures the JSON: unknown fields are
ignored, primitive types are checked strictly (``"7"`` is not an int, ``1`` is not a
bool), and a malformed payload becomes :class:`~zimage_async.MalformedResponseError`
naming the bad path.

Task replies are read the way the gateway family's own clients read them: ``null`` is
absent for every optional field (``results ?? []``, ``progress ?? 0``); only ``id``,
``status``, ``progress`` and ``results`` can make a reply malformed. The hints
(``created``, ``model``, ``task_info``, ``usage`` and each of their fields) are read one
value at a time: a malformed one is logged and dropped alone. A failed task's ``error``
is read leniently (``error.code ?? "unknown_error"``) and kept raw beside.
"""

from __future__ import annotations

import logging
import math
import re
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import cattrs
from cattrs.gen import make_dict_structure_fn, override

from ._exceptions import InvalidRequestError, MalformedResponseError
from ._models import Task, TaskErrorDetail, TaskInfo, TaskStatus, Usage
from ._parsing_hints import report_dropped
from ._parsing_quick import QUIET, quick_task
from ._validation import TASK_ID_MAX_CHARS, TASK_ID_PREFIX, validate_task_id

__all__ = ["parse_task", "salvage_task_id"]


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


#: ``created``: an integer that is a time (read by :func:`_unix_time`).
_Created = typing.NewType("_Created", int)


def _unix_time(value: object, _: type) -> int:
    """Read ``created``: an integer, which a float must hold to be a time at all.

    An integer beyond a float's range raises :class:`OverflowError` (as a float read of
    it does): :func:`_hint` drops it like an infinite estimate.
    """
    result = _strict_int(value, int)
    float(result)
    return result


#: A plain decimal number written as a string (``"0.026"``, ``"40"``, ``"1e-2"``).
_NUMERIC = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
#: ``progress``: a number from 0 to 100, a hint read by :func:`_progress`.
_Progress = typing.NewType("_Progress", int)


def _strict_float(value: object, _: type) -> float:
    if isinstance(value, str) and len(value) <= 64 and _NUMERIC.fullmatch(value):
        value = float(value)  # a number the service wrote as a string, as some do
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


def _string_list(value: object, _: type) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list of strings, got {type(value).__name__}")
    return tuple(_strict_str(item, str) for item in value)


def _progress(value: object, _: type) -> int:
    # Clamp rather than refuse: a progress of 101 is no reason to lose a task (nor is a
    # malformed one: parse_task reads it as a hint, dropped when unusable).
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
    # The generated hook reads the essentials only; parse_task reads the rest leniently.
    task_hook = make_dict_structure_fn(
        Task,
        converter,
        raw_status=override(rename="status"),
        progress=override(struct_hook=_progress),
        created=override(omit=True),
        model=override(omit=True),
        task_info=override(omit=True),
        usage=override(omit=True),
        error=override(omit=True),
        raw_error=override(omit=True),
    )
    converter.register_structure_hook(Task, _objects_only(task_hook))
    return converter


#: Fields whose malformation is logged and ignored rather than failing the task; each
#: is read on its own, and a block's fields one by one.
_HINTS: Mapping[str, Any] = {
    "created": _Created,
    "model": str,
    "task_info": TaskInfo,
    "usage": Usage,
}
#: The field types of the hint blocks, for reading them one field at a time.
_BLOCK_FIELDS: Mapping[type, Mapping[str, Any]] = {
    cls: typing.get_type_hints(cls) for cls in (TaskInfo, Usage)
}
#: The strict hooks of the scalar types, called directly for a hint of that type (or
#: of that type or ``None``: nulls are gone by then) instead of through the converter.
_SCALARS: Mapping[Any, Callable[[object, type], Any]] = {
    int: _strict_int,
    str: _strict_str,
    float: _strict_float,
    bool: _strict_bool,
}
_SCALARS = {
    **_SCALARS,
    **{kind | None: hook for kind, hook in _SCALARS.items()},
    _Created: _unix_time,
    _Progress: _progress,
}
_CONVERTER = _make_converter()
logger = logging.getLogger("zimage_async")
_PATH_LINE = re.compile(r"@ (\$\S*)")


def _fault_lines(exc: Exception) -> list[str]:
    # cattrs names a missing renamed field by its attribute; the wire calls it "status".
    return [
        line.replace("@ $.raw_status", "@ $.status")
        for line in cattrs.transform_error(exc, path="$")
    ]


def _first_path(lines: list[str]) -> str:
    for line in lines:
        match = _PATH_LINE.search(line)
        if match:
            return match.group(1)
    return "$"


def _present(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Keep the fields of a JSON object that are not ``null``: null reads as absent."""
    return {key: value for key, value in payload.items() if value is not None}


def _hint(value: object, kind: Any, path: str, dropped: list[str], unusable: list[str]) -> Any:
    """Read one hint value as *kind*, or drop it (noting *path*) when it is malformed.

    A hint block (``task_info``, ``usage``) is read field by field, so one bad field
    loses only itself. A NaN or infinite number is not malformed but means nothing (an
    estimate of "infinity" is no estimate): it is dropped too, noted in *unusable*
    (logged at DEBUG only, since such a service sends it on every poll). So is an
    integer beyond a float's range where a float is read, or as ``created``: as a float,
    it is infinite (and no time).
    """
    fields = _BLOCK_FIELDS.get(kind)
    if isinstance(value, float) and not math.isfinite(value):
        unusable.append(f"{path} ({value!r})")
        return None
    if fields is None:
        scalar = _SCALARS.get(kind)
        try:
            if scalar is not None:
                return scalar(value, kind)
            return _CONVERTER.structure(value, kind)
        except OverflowError:  # float() of an integer beyond a float's range
            unusable.append(f"{path} (an integer beyond a float's range)")
            return None
        except Exception:  # cattrs reports every fault as an exception (group)
            dropped.append(path)
            return None
    if not isinstance(value, dict):
        dropped.append(path)
        return None
    kept = {
        name: _hint(item, fields[name], f"{path}.{name}", dropped, unusable)
        for name, item in _present(value).items()
        if name in fields
    }
    return kind(**{name: item for name, item in kept.items() if item is not None})


_NO_ERROR = "no error was given"
_NO_CODE = "the service gave no error code"


def _task_error(raw: object, status: TaskStatus, raw_status: str) -> TaskErrorDetail | None:
    """Read a task's ``error`` the way the gateway's clients do: ``code ?? "unknown_error"``.

    A documented ``{code, message}`` (a string or integer code; ``null`` message reads
    as ``""``) is kept as sent, whatever the status. For a failed or cancelled task an
    unusable value still gives a detail: ``unknown_error`` (``request_cancelled`` when
    cancelled, ``resource_not_found`` when the raw status is ``expired``), with a bare
    string as the message; other statuses ignore it.
    """
    message = ""
    if isinstance(raw, dict):
        code = raw.get("code")
        text = raw.get("message")
        message = text if isinstance(text, str) else ""
        if (isinstance(code, str) and code) or (
            isinstance(code, int) and not isinstance(code, bool)
        ):
            return TaskErrorDetail(code=str(code), message=message)
    elif isinstance(raw, str):
        message = raw
    if status is TaskStatus.CANCELLED:
        return None if raw is None else TaskErrorDetail(code="request_cancelled", message=message)
    if status is not TaskStatus.FAILED:
        return None
    if raw_status.strip().lower() == "expired":
        return TaskErrorDetail(code="resource_not_found", message=message or "the task expired")
    if raw is None:
        return TaskErrorDetail(code="unknown_error", message=_NO_ERROR)
    return TaskErrorDetail(code="unknown_error", message=message or _NO_CODE)


def parse_task(payload: object, *, status: int | None = None) -> Task:
    """Structure a decoded task object into a :class:`Task`.

    ``null`` reads as absent everywhere. Only ``id`` and ``status`` are required, and
    only they and ``results`` can make the task malformed; a malformed hint (``progress``,
    read as 0 then, ``created``, ``model``, a field of ``task_info`` or ``usage``) is
    logged and dropped alone. A number sent as a plain decimal string (``"40"``,
    ``"0.026"``) is read as that number. A failed task always gets an
    :attr:`~Task.error` (``unknown_error`` when the service sent none usable), and the
    ``error`` value as sent is kept in :attr:`~Task.raw_error`. A ``completed`` task
    without results is returned as it is: deciding what that means is the caller's
    business.

    >>> parse_task({"id": "task-unified-1-abc", "status": "queued", "extra": 1}).raw_status
    'queued'
    >>> parse_task({"id": "task-unified-1-abc", "status": "pending", "progress": None}).progress
    0
    >>> parse_task({"id": "task-unified-1-abc", "status": "failed", "error": "boom"}).error
    TaskErrorDetail(code='unknown_error', message='boom')
    """
    if not isinstance(payload, dict):
        raise MalformedResponseError(
            f"expected a task object, got {type(payload).__name__}", status=status
        )
    quick = quick_task(payload)
    if quick is not None:  # the common answer, plainly well formed throughout
        return quick
    present = _present(payload)
    sent_progress = present.pop("progress", None)  # a hint: read below, never fatal
    essentials = _well_formed(present)
    if essentials is None:
        essentials = _essentials(present, status)
    dropped: list[str] = []
    unusable: list[str] = []
    progress = 0
    if sent_progress is not None:
        progress = _hint(sent_progress, _Progress, "$.progress", dropped, unusable) or 0
    hints = {
        name: _hint(present[name], kind, f"$.{name}", dropped, unusable)
        for name, kind in _HINTS.items()
        if name in present
    }
    task_id, raw_status, _, results = essentials
    if dropped:
        report_dropped(task_id, dropped)
    if unusable:
        # Sent on every poll by a service that has no estimate: not worth a warning.
        logger.debug("ignored non-finite hint values in task %s: %s", task_id, ", ".join(unusable))
    raw_error = present.get("error")
    error = None
    if raw_error is not None or raw_status not in QUIET:
        error = _task_error(raw_error, TaskStatus.from_raw(raw_status), raw_status)
    return Task(
        id=task_id,
        raw_status=raw_status,
        progress=progress,
        results=results,
        error=error,
        raw_error=raw_error,
        **hints,
    )


_Essentials = tuple[str, str, int, tuple[str, ...]]


def _well_formed(present: dict[str, Any]) -> _Essentials | None:
    """Read ``id``, ``status``, ``progress`` and ``results`` of the common answer quickly.

    ``None`` when any of them is not plainly well formed (a float progress, a tuple...):
    :func:`_essentials` then reads them through the converter, which has the last word.
    """
    task_id = present.get("id")
    raw_status = present.get("status")
    progress = present.get("progress", 0)
    links = present.get("results", ())
    if (
        type(task_id) is not str
        or type(raw_status) is not str
        or type(progress) is not int
        or not 0 <= progress <= 100
    ):
        return None
    if links == ():
        return task_id, raw_status, progress, ()
    if type(links) is not list or not all(type(link) is str for link in links):
        return None
    return task_id, raw_status, progress, tuple(links)


def _essentials(present: dict[str, Any], status: int | None) -> _Essentials:
    """Read the essentials through the strict converter, naming the first bad path."""
    try:
        task = _CONVERTER.structure(present, Task)
    except Exception as exc:  # cattrs reports every fault as an exception group
        lines = _fault_lines(exc)
        raise MalformedResponseError(
            "; ".join(lines[:3]) or str(exc), path=_first_path(lines), status=status
        ) from None
    return task.id, task.raw_status, task.progress, task.results


#: A complete task id named ``id`` in a body: the ids validate_task_id accepts, quoted.
_TASK_ID = re.compile(
    rb'"id"\s*:\s*"(%s[A-Za-z0-9_-]{1,%d})"'
    % (re.escape(TASK_ID_PREFIX.encode()), TASK_ID_MAX_CHARS - len(TASK_ID_PREFIX))
)


def salvage_task_id(body: bytes, payload: object = None) -> str | None:
    """Find the task id in a create answer that is unreadable as a task, if there is one.

    *payload* is the body decoded, when it decodes: its ``$.id`` is the id when
    :func:`~zimage_async._validation.validate_task_id` accepts it. Otherwise *body* is
    searched for a complete ``"id": "task-unified-..."`` the validator accepts (an answer
    cut short, or one holding the task deeper down).

    >>> salvage_task_id(b'{"id":"task-unified-17-Ab_cd1234","progress":"0%"}',
    ...                 {"id": "task-unified-17-Ab_cd1234", "progress": "0%"})
    'task-unified-17-Ab_cd1234'
    >>> salvage_task_id(b'{"created":1,"id":"task-unified-17-abcd1234","sta')
    'task-unified-17-abcd1234'
    >>> salvage_task_id(b'{"created":1,"id":"task-unified-17-ab') is None
    True
    """
    if isinstance(payload, dict):
        try:
            return validate_task_id(payload.get("id"))
        except InvalidRequestError:
            pass
    match = _TASK_ID.search(body)
    return match.group(1).decode("ascii") if match else None
