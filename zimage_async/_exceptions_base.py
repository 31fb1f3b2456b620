"""The root of the exception tree, and the note an error gets once its task exists.

Every exception class of zimage-async derives from :class:`ZImageError`; they are all
shown (in tracebacks, reprs, pickles) as members of :mod:`zimage_async._exceptions`,
which re-exports them and draws the whole tree, wherever the class is defined.
"""

from __future__ import annotations

from typing import Any, TypeVar

from ._quoting import escaped

__all__ = ["SHOWN_MODULE", "SessionClosedError", "ZImageError", "note_closed", "note_task"]

#: The module every exception class names as its own (``__module__``): the one that
#: draws the tree and re-exports every class, so that tracebacks, pickles and error
#: reports name each class by one stable path, whichever module defines it.
SHOWN_MODULE = "zimage_async._exceptions"
_NOT_FOUND = 404  # the HTTP status of an unknown (or expired) task id

_E = TypeVar("_E", bound=Exception)


class ZImageError(Exception):
    r"""Root of every exception that zimage-async raises on purpose.

    Catch it to handle anything the SDK reports; the subclasses say what went wrong.
    ``task_id`` names the billed task an error concerns, when there is one: an error met
    while waiting for a task that was already created carries it, and its message says
    how to collect the task, so that nobody pays for the same image twice. Where
    collecting cannot work the message does not offer it: a 404 (the service does not
    know the id), an expired link, a link the SDK refuses to fetch.

    The message (``str(error)``) is one line of printable characters, safe to log or
    print: text a server sent is written escaped in it (``\n``, ``\x1b``, ``\ud800``)
    and each such text cut to 500 characters, while the attributes keep it as it came.

    Attributes:
        task_id (str | None): The id of the (billed) task this error concerns, or None.
    """

    __module__ = SHOWN_MODULE

    task_id: str | None = None

    def __init__(self, *args: object) -> None:
        # The message often quotes a server's text: one line of printable characters,
        # so that printing or logging the error adds no line and sends no escape code.
        if args and isinstance(args[0], str) and not args[0].isprintable():
            args = (escaped(args[0]), *args[1:])
        super().__init__(*args)

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its args and attributes, never by calling the class again: the
        # subclasses' constructors take fields, not the finished message. So an error
        # survives pickle (process pools, task queues), copy and deepcopy, whole.
        return (_rebuilt, (type(self), self.args), dict(vars(self)) or None)


def _rebuilt(cls: type[ZImageError], args: tuple[Any, ...]) -> ZImageError:
    """Return an error of *cls* holding *args*, its constructor not called (unpickling)."""
    error = cls.__new__(cls, *args)
    error.args = args
    return error


def note_task(error: ZImageError, task_id: str) -> ZImageError:
    """Attach *task_id* to an error met after the task was created, saying how to collect it.

    An error that already names a task is returned unchanged. A 404 (``NotFoundError``)
    gets the id without the note: the service does not know the task (a wrong id, or one
    expired), so neither "billed" nor "collect it later" would be true of it.
    """
    if error.task_id is None:
        error.task_id = task_id
        # NotFoundError's own status (its class is defined downstream of this module).
        if getattr(error, "status_code", None) != _NOT_FOUND:
            note_collectable(error, task_id)
    return error


def note_collectable(error: _E, task_id: str) -> _E:
    """Add to *error*'s message that task *task_id* is billed and how to collect it later.

    For the errors that already name their task when made (an image's download), and
    only where collecting later can work; :func:`note_task` adds it to the others.
    """
    hint = (
        f" [task {task_id} was created and is billed: collect it later with "
        f"session.task({task_id!r}) (or `zimage task {task_id} -o DIR`) instead of "
        "generating it again]"
    )
    first = str(error.args[0]) if error.args else ""
    error.args = (first + hint, *error.args[1:])
    return error


class SessionClosedError(RuntimeError):
    """A call on a :class:`Session` that is closed, or a wait that its ``close()`` ended.

    A ``RuntimeError`` (the session is in the wrong state for the call), not a
    :class:`ZImageError`. When the close ended a wait for a task already created
    (``await handle``, ``generate()``, ``save()``...), ``task_id`` names that billed
    task, and the message says how to collect it with a new Session.

    Attributes:
        task_id (str | None): The billed task the ended wait was for, or None.
    """

    __module__ = SHOWN_MODULE

    def __init__(self, message: str, *, task_id: str | None = None) -> None:
        super().__init__(message)
        self.task_id = task_id

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle its message and its ``task_id``."""
        return (type(self), self.args, self.__dict__)


def note_closed(error: SessionClosedError, task_id: str) -> SessionClosedError:
    """Attach *task_id* to a close that ended a wait for that (created) task; say so."""
    if error.task_id is None:
        error.task_id = task_id
        note_collectable(error, task_id)
    return error
