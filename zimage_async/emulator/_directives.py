"""Prompt directives: instructions for the emulator written inside the prompt.

- ``[[fail:CODE]]`` makes the task fail with the business code ``CODE`` (letters, digits,
  ``_``, ``-``, ``.``). Any of the documented task error codes works, and so does any other
  string, so clients can be tested against codes they do not know. The message is a
  sentence chosen for the code.
- ``[[duration:SECONDS]]`` sets this task's duration in clock seconds (0 to 86400), overriding
  the emulator's ``task_duration``.
- ``[[cancel]]`` makes the task end in the status ``cancelled`` (seen in the gateway family)
  with ``error: {"code": "request_cancelled", ...}``: it stays pending, progress 0, until it
  is cancelled at the end of its duration; it is billed like any accepted task. It takes
  precedence over ``[[fail:CODE]]``.
- ``[[results:empty]]``, ``[[results:missing]]``, ``[[results:null]]``: the task completes
  without result links: ``"results": []``, no ``results`` field, or ``"results": null``.

Directives stay part of the prompt (they are drawn into the image like the rest of it).
The first occurrence of each directive wins.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Literal, cast

import attrs

__all__ = [
    "MAX_DIRECTIVE_DURATION_SECONDS",
    "TASK_ERROR_MESSAGES",
    "Directives",
    "ResultsShape",
    "failure_message",
]

MAX_DIRECTIVE_DURATION_SECONDS = 86_400.0

#: A business error code the emulator can fail a task with (``[[fail:CODE]]``, ``fail_next``).
FAIL_CODE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_FAIL = re.compile(r"\[\[fail:([A-Za-z0-9_.\-]{1,64})\]\]")
_DURATION = re.compile(r"\[\[duration:([0-9]{1,6}(?:\.[0-9]{1,6})?)\]\]")
_CANCEL = re.compile(r"\[\[cancel\]\]")
_RESULTS = re.compile(r"\[\[results:(empty|missing|null)\]\]")

ResultsShape = Literal["links", "empty", "missing", "null"]
"""How a completed task carries its results: links (normal), ``[]``, absent or ``null``."""
CANCEL_CODE = "request_cancelled"

TASK_ERROR_MESSAGES: MappingProxyType[str, str] = MappingProxyType(
    {
        "content_policy_violation": "Content policy violation.",
        "invalid_parameters": "The task parameters are invalid.",
        "image_processing_error": "The input image could not be processed.",
        "image_dimension_mismatch": "The requested dimensions cannot be produced.",
        "request_cancelled": "The request was cancelled.",
        "generation_failed_no_content": "The model produced no image for this prompt.",
        "service_error": "The generation service failed; try again later.",
        "generation_timeout": "The generation timed out; try again later.",
        "resource_exhausted": "The generation service is out of capacity; try again later.",
        "quota_exceeded": "The quota for this key is exceeded; slow down and try again later.",
        "service_unavailable": "The generation service is unavailable; try again later.",
        "resource_not_found": "The task was not found or has expired.",
        "unknown_error": "An unknown error occurred.",
    }
)
"""A sentence for each documented task error code (PROTOCOL.md's table)."""

REQUEST_FAULT_CODES = frozenset(
    {
        "content_policy_violation",
        "invalid_parameters",
        "image_processing_error",
        "image_dimension_mismatch",
    }
)
"""Codes blamed on the request: such tasks fail during moderation, with progress 0."""


def failure_message(code: str) -> str:
    """Return the message the emulator sends with a task error *code*."""
    return TASK_ERROR_MESSAGES.get(code, f"The task failed with the code {code!r}.")


@attrs.frozen(kw_only=True)
class Directives:
    """The directives found in one prompt."""

    fail_code: str | None = None
    duration_seconds: float | None = None
    cancel: bool = False
    results: ResultsShape = "links"

    @classmethod
    def parse(cls, prompt: str) -> Directives:
        """Find the directives in *prompt*.

        >>> Directives.parse("a cat [[fail:service_error]] [[duration:2.5]]")
        Directives(fail_code='service_error', duration_seconds=2.5, cancel=False, results='links')
        >>> Directives.parse("a cat [[cancel]] [[results:empty]]").cancel
        True
        """
        fail = _FAIL.search(prompt)
        duration = _DURATION.search(prompt)
        results = _RESULTS.search(prompt)
        seconds = None
        if duration is not None:
            seconds = min(float(duration.group(1)), MAX_DIRECTIVE_DURATION_SECONDS)
        return cls(
            fail_code=fail.group(1) if fail else None,
            duration_seconds=seconds,
            cancel=_CANCEL.search(prompt) is not None,
            results=cast("ResultsShape", results.group(1)) if results else "links",
        )
