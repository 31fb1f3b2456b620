"""Whether a create has left the process: a mark its layers share.

A create waits for a connection slot and sits out a 429 pause before it is handed to
aiohttp; cancelled before that, it certainly reached no one. The layer that must tell
the two apart (a journal's record, a batch's stop, the warning of a create that may
have made a task) opens :class:`watching` around the create; the transport marks the
create sent just before it hands a try over, and the create's retry loop takes that
back when the try's answer shows that no task was made. The mark travels in a context variable, so
the layers in between (and tasks made meanwhile, which copy the context) carry it
without an argument of their own.
"""

from __future__ import annotations

import contextvars

__all__ = ["SendMark", "handed_over", "handing_over", "watching"]


class SendMark:
    """What is known of the create watched: whether it may have reached the service.

    ``sent``: a try was handed to the HTTP client and its outcome is not known to be
    "no task" (the create may have made one). ``flying``: a try was handed over and the
    create has not yet ended or gone to wait for its next try: its answer, and the
    record of the task it made, may still be on their way.
    """

    __slots__ = ("flying", "sent")

    def __init__(self) -> None:
        self.sent = False
        self.flying = False


_SENDING: contextvars.ContextVar[SendMark | None] = contextvars.ContextVar(
    "zimage_async_sending", default=None
)


def handing_over() -> None:
    """Mark the create watched, if any, as sent and flying (called just before a try)."""
    mark = _SENDING.get()
    if mark is not None:
        mark.sent = mark.flying = True


def handed_over() -> bool:
    """Whether the create watched here may have reached the service (False: none watched)."""
    mark = _SENDING.get()
    return mark is not None and mark.sent


class watching:
    """Watch the create run inside: enter it for its mark and whether this watch is the outermost.

    Inside another watch, that watch's mark is shared (and ``False`` is given): the
    outer layer is the one that says what the cancellation of a create means. A plain
    class, not a generator: entered once per create.
    """

    __slots__ = ("_token",)

    def __init__(self) -> None:
        self._token: contextvars.Token[SendMark | None] | None = None

    def __enter__(self) -> tuple[SendMark, bool]:
        outer = _SENDING.get()
        if outer is not None:
            return outer, False
        mark = SendMark()
        self._token = _SENDING.set(mark)
        return mark, True

    def __exit__(self, *exc_info: object) -> None:
        token = self._token
        if token is None:  # an inner watch: the outer one restores the context
            return
        self._token = None
        try:
            _SENDING.reset(token)
        except ValueError:
            # Closed from outside its task (a coroutine closed like garbage), it is not
            # in the context that set it: nothing to restore there.
            return
