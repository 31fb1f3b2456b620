"""How ``zimage`` answers the signals that stop it: Ctrl-C, SIGTERM and a hang-up.

The first stops the command in order, a second says the stop goes on, a third exits at
once (see ``_run`` in :mod:`zimage_async._cli`), until the process ends. A hang-up
(SIGHUP: the terminal or the ssh session closed) stops it as Ctrl-C does, unless it is
ignored, as under ``nohup``: then the command runs on.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import os
import signal
import stat
import sys
from collections.abc import Callable, Sequence

from ._cli_common import Interruption, printable_command

__all__ = [
    "HANGUP",
    "exiting_now",
    "hung_up",
    "install",
    "show_cursor",
    "still_stopping",
    "uninstall",
]

#: The hang-up signal, where the system has one.
HANGUP: int | None = getattr(signal, "SIGHUP", None)


def install(loop: asyncio.AbstractEventLoop, on_signal: Callable[[int], None]) -> list[int]:
    """Call *on_signal* with the number of each stopping signal; return those installed.

    SIGHUP is left alone when the process ignores it (``nohup``), which is the user's
    way of asking the command to outlive its terminal.
    """
    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM, HANGUP):
        if signum is None or (signum == HANGUP and signal.getsignal(signum) is signal.SIG_IGN):
            continue
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
    return installed


def uninstall(
    loop: asyncio.AbstractEventLoop,
    installed: Sequence[int],
    on_signal: Callable[[int], None] | None,
) -> None:
    """Take the signals *installed* off *loop*; with *on_signal*, hand them to the process.

    Once a first signal has stopped the command, its stop goes on after the loop: the
    journal's thread may still wait for its lock, and the exit waits for that thread.
    The system's own handling would then let a second SIGTERM kill the process (143)
    and a second Ctrl-C print a traceback; *on_signal* goes on counting them instead,
    until the exit has waited for the threads. Python then gives the signals back to
    the system as it tears itself down: from then on they are ignored, the stop being
    over. They are blocked while the handlers change hands.
    """

    def handler(signum: int, _frame: object) -> None:
        assert on_signal is not None
        with contextlib.suppress(Exception):  # a message cut into another write: lost
            on_signal(signum)

    blocking = hasattr(signal, "pthread_sigmask") and bool(installed)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, installed) if blocking else set()
    try:
        for signum in installed:
            loop.remove_signal_handler(signum)
            if on_signal is not None:
                signal.signal(signum, handler)
        if on_signal is not None and installed:  # run after the exit's wait for threads
            atexit.register(_ignore, tuple(installed))
    finally:
        if blocking:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _ignore(signals: Sequence[int]) -> None:
    for signum in signals:
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signum, signal.SIG_IGN)


def hung_up() -> None:
    """Send what the command still writes to its closed terminal nowhere.

    Writes to a terminal that hung up fail (``EIO``): the live display's last refresh and
    the closing messages would end the command with a traceback instead of its stop.
    Streams that are not a device (a file, a pipe) are left as they are. (``isatty`` no
    longer tells a terminal that hung up: it is known as a character device.)
    """
    for number in (1, 2):
        with contextlib.suppress(OSError):
            if stat.S_ISCHR(os.fstat(number).st_mode):
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, number)
                os.close(null)


def still_stopping(args: argparse.Namespace) -> str:
    """Return what a second Ctrl-C (or SIGTERM) says: the stop goes on, a third cuts it."""
    if args.command == "batch":
        return (
            "still stopping: giving this worker's items back to the journal, so that a "
            "rerun resumes them at once; press Ctrl-C once more to exit at once (they then "
            f"stay leased for up to --lease, {args.lease:g} s)"
        )
    return "still stopping; press Ctrl-C once more to exit at once"


def exiting_now(args: argparse.Namespace, argv: Sequence[str], interruption: Interruption) -> str:
    """Return what a third Ctrl-C (or SIGTERM) says, as the process exits without cleanup."""
    if args.command == "batch":
        return (
            "exiting at once: the items this worker held stay leased in the journal until "
            f"their leases run out (--lease, {args.lease:g} s); the same command resumes "
            f"them after that:\n  {printable_command(argv)}"
        )
    return (
        "exiting at once" if interruption.hint is None else f"exiting at once: {interruption.hint}"
    )


def show_cursor() -> None:
    """Show the cursor again on a terminal where a live display hid it."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            if stream.isatty():
                stream.write("\x1b[?25h")
                stream.flush()
