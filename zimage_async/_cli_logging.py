"""The library's log lines on the command line: in the command's form and words.

Without a handler, Python printed the library's warnings raw on stderr (``logging``'s
last resort): no ``zimage:`` prefix, nothing escaped, and advice for the Python API
(``idempotency_key=``, ``session.resubmit(error)``) that no option of the command can
follow. Here every line the library logs for the command (warnings, and with ``-v`` /
``-vv`` its retries and requests) is ``zimage: warning: ...`` (``info``, ``debug``),
escaped, with the Python advice put in the command's words; a line the command says
itself, in its own message, is left out.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

from ._api import CANCELLED_AFTER_SENDING
from ._cli_output import PROG, echo, shown
from ._cli_words import cli_words

__all__ = ["logging_to_stderr"]

#: Library lines that a command says in its own words where they apply: on Ctrl-C during
#: a create, `zimage generate --no-journal` says a task may exist that nothing records.
_SAID_BY_THE_COMMAND = frozenset({CANCELLED_AFTER_SENDING})


class _Stderr(logging.Handler):
    """Writes each record on the stderr of the moment as ``zimage: LEVEL: message``, shown."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg in _SAID_BY_THE_COMMAND:
            return
        try:
            level = "warning" if record.levelno == logging.WARNING else record.levelname.lower()
            echo(f"{PROG}: {level}: {shown(cli_words(self.format(record)))}", file=sys.stderr)
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def logging_to_stderr(verbosity: int) -> Iterator[None]:
    """Show the library's log on stderr for the block: warnings; ``-v`` info, ``-vv`` debug."""
    logger = logging.getLogger("zimage_async")
    handler = _Stderr()
    level = logger.level
    logger.addHandler(handler)
    if verbosity:
        logger.setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
