"""Where a warning of the package points: at the caller's line, else at the package's.

``warnings.warn`` attributes a warning to a frame a fixed number of levels up, which a
coroutine's await chain does not have: :func:`caller_site` finds the frame. The warning
points at the first frame of the caller's own (the line with ``await handle`` or
``save()``), past the frames of the package and of asyncio's coroutines
(``asyncio.timeout``, ``wait_for``). When the chain was started by the event loop
itself (a task of the package's, a task of the caller's with nothing of theirs above
the call) no line is the caller's: the warning then points at the package's own line
that warns, so that ``warnings.filterwarnings(..., module="zimage_async")`` matches it.

A site is found in the caller's task and may be used in another (a save that several
callers share): :func:`warn_at` issues the warning there, before anything is kept, so
that a warning turned into an error stops it.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
import warnings
from types import FrameType
from typing import Any

__all__ = ["Site", "caller_site", "warn", "warn_at"]

# As code objects name their files: by the path their module was loaded from.
_PACKAGE = os.path.dirname(__file__) + os.sep
_ASYNCIO = os.path.dirname(asyncio.__file__) + os.sep
#: Code flags of a coroutine's frame (async def, async generator, types.coroutine).
_AWAITING = inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE

#: A caller's line: its file, its line number and its module's globals (kept instead of
#: the frame, whose locals may hold secrets).
Site = tuple[str, int, dict[str, Any]]


def _callers_frame(frame: FrameType | None) -> FrameType | None:
    """Return the first frame above *frame* that is neither the package's nor asyncio's.

    None when a frame of the event loop's own (asyncio code that is no coroutine) comes
    first: nothing above it is the caller's.
    """
    frame = frame.f_back if frame is not None else None
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(_PACKAGE):
            pass
        elif not name.startswith(_ASYNCIO):
            return frame
        elif not frame.f_code.co_flags & _AWAITING:  # the event loop's own: no caller above
            return None
        frame = frame.f_back
    return None


def caller_site() -> Site | None:
    """Return the site of the caller's line above the package code calling this, or None."""
    frame = _callers_frame(sys._getframe(1))
    if frame is None:
        return None
    return (frame.f_code.co_filename, frame.f_lineno, frame.f_globals)


def warn_at(warning: Warning, site: Site | None, *, stacklevel: int = 2) -> None:
    """Issue *warning* at *site* (:func:`caller_site`), else *stacklevel* up from here."""
    if site is None:
        warnings.warn(warning, stacklevel=stacklevel)
        return
    filename, lineno, module_globals = site
    warnings.warn_explicit(
        warning,
        type(warning),
        filename,
        lineno,
        module=module_globals.get("__name__"),
        registry=module_globals.setdefault("__warningregistry__", {}),
        module_globals=module_globals,
    )


def warn(warning: Warning) -> None:
    """Issue *warning*, pointed at the caller's line (see the module docstring)."""
    warn_at(warning, caller_site(), stacklevel=3)  # else: the package's line calling this
