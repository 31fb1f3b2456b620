"""The command line's standard streams, when the shell closed one (``>&-``, ``2>&-``)."""

from __future__ import annotations

import os
import sys

__all__ = ["null_for_closed_streams"]


def null_for_closed_streams() -> None:
    """Give a closed stdout or stderr the null device: what is written to it is dropped.

    Python makes a closed stream ``None`` (the command's first write to it raised
    ``AttributeError``, and messages for stderr went to stdout, into ``--json`` output);
    its descriptor stays free, so a file the command opens (the journal) would take its
    number, and anything written to the stream would land in that file. Both are avoided
    here, before anything else runs.
    """
    for number, name in ((1, "stdout"), (2, "stderr")):
        if getattr(sys, name) is None:
            null = os.open(os.devnull, os.O_WRONLY)  # the lowest free number: this one
            if null != number:
                os.dup2(null, number)
                os.close(null)
            setattr(sys, name, open(number, "w", closefd=False))  # noqa: SIM115 - kept open
