"""Null shapes: task bodies whose optional fields are ``null`` rather than absent.

The gateway family's clients read ``results ?? []``, ``progress ?? 0`` and
``error.code ?? "unknown_error"``: optional fields may arrive as ``null``. Each shape
below changes one thing, so a client test can pick exactly the one it is about:

=======================  ==================  ===================================================
shape                    applies to          effect
=======================  ==================  ===================================================
``absent``               every status        each optional field the body leaves out
                                             (``results``, ``error``, ``task_info``,
                                             ``usage``) is sent as ``null``
``results``              not ``completed``   ``"results": null``
``progress``             every status        ``"progress": null``
``task_info``            every status        ``"task_info": null``
``usage``                every status        ``"usage": null``
``error``                not failed or       ``"error": null``
                         cancelled
``error_message``        failed, cancelled   ``"error": {"code": ..., "message": null}``
``error_code``           failed, cancelled   ``"error": {"code": null, "message": ...}``
``error_without_code``   failed, cancelled   ``"error": {"message": ...}``
``error_string``         failed, cancelled   ``"error": "<the message>"`` (a bare string)
=======================  ==================  ===================================================
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["NULL_SHAPES", "NullShape", "null_shape_applies", "with_nulls"]

NullShape = Literal[
    "absent",
    "results",
    "progress",
    "task_info",
    "usage",
    "error",
    "error_message",
    "error_code",
    "error_without_code",
    "error_string",
]
NULL_SHAPES: frozenset[str] = frozenset(get_args(NullShape))
"""Every null shape's name."""

_OPTIONAL_FIELDS = ("results", "error", "task_info", "usage")
_ENDED_BADLY = frozenset({"failed", "cancelled"})


def null_shape_applies(shape: str, status: str | None) -> bool:
    """Tell whether *shape* changes a task body whose status is *status*.

    >>> null_shape_applies("results", "completed"), null_shape_applies("results", "pending")
    (False, True)
    """
    if status is None:
        return True
    if shape == "results":
        return status != "completed"
    if shape == "error":
        return status not in _ENDED_BADLY
    if shape.startswith("error_"):
        return status in _ENDED_BADLY
    return True


def with_nulls(body: dict[str, object], shape: str) -> dict[str, object]:
    """Return *body* changed by the null *shape* (unchanged where the shape does not apply).

    >>> with_nulls({"status": "pending", "progress": 0}, "progress")
    {'status': 'pending', 'progress': None}
    """
    changed = dict(body)
    status = body.get("status")
    if not null_shape_applies(shape, status if isinstance(status, str) else None):
        return changed
    if shape == "absent":
        for name in _OPTIONAL_FIELDS:
            changed.setdefault(name, None)
    elif shape in ("results", "progress", "task_info", "usage", "error"):
        changed[shape] = None
    else:
        error = body.get("error")
        fields = dict(error) if isinstance(error, dict) else {}
        if shape == "error_message":
            changed["error"] = {**fields, "message": None}
        elif shape == "error_code":
            changed["error"] = {**fields, "code": None}
        elif shape == "error_without_code":
            changed["error"] = {key: value for key, value in fields.items() if key != "code"}
        else:
            changed["error"] = fields.get("message")
    return changed
