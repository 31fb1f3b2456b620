"""Where a warning of the package points: at the caller's line, else at the package's.

``warnings.warn`` attributes a warning to a frame a fixed number of levels up, which a
coroutine's await chain does not have: :func:`warn` finds the level. The warning points
at the first frame of the caller's own (the line with ``await handle`` or ``save()``),
past the frames of the package and of asyncio's coroutines (``asyncio.timeout``,
``wait_for``). When the chain was started by the event loop itself (a task of the
package's, a task of the caller's with nothing of theirs above the call) no line is the
caller's: the warning then points at the package's own line that warns, so that
``warnings.filterwarnings(..., module="zimage_async")`` matches it.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
import warnings
from types import FrameType

__all__ = ["stack_level", "warn"]

# As code objects name their files: by the path their module was loaded from.
_PACKAGE = os.path.dirname(__file__) + os.sep
_ASYNCIO = os.path.dirname(asyncio.__file__) + os.sep
#: Code flags of a coroutine's frame (async def, async generator, types.coroutine).
_AWAITING = inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE


def stack_level(frame: FrameType | None) -> int:
    """Return the ``stacklevel`` that points a warning at the caller's line.

    *frame* is the frame that calls ``warnings.warn`` (level 1). Returns the level of
    the first frame above it that is neither the package's nor an asyncio coroutine's
    (``wait_for``, ``timeout``). A frame of the event loop's own (asyncio code that is no
    coroutine) met first means that nothing above is the caller's: then 2, the caller of
    *frame* (the package's line that asked for the warning).
    """
    level, frame = 2, frame.f_back if frame is not None else None
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(_PACKAGE):
            pass
        elif not name.startswith(_ASYNCIO):
            return level
        elif not frame.f_code.co_flags & _AWAITING:  # the event loop's own: no caller above
            break
        frame, level = frame.f_back, level + 1
    return 2


def warn(warning: Warning) -> None:
    """Issue *warning*, pointed at the caller's line (see :func:`stack_level`)."""
    warnings.warn(warning, stacklevel=stack_level(sys._getframe(0)))
