"""What every ``zimage`` command shares: messages, usage errors, the session, output paths.

Also the journal options (``--journal``, ``--no-journal``, ``--max-credits``): where the
journal of paid creates lives by default, and the commands that collect a billed task.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs

from ._batchoptions import check_output_dir
from ._cli_output import PROG as PROG
from ._cli_output import echo as echo
from ._cli_output import say as say
from ._cli_output import shown as shown
from ._durable import make_folder_now
from ._exceptions import APIConnectionError, InvalidRequestError, JournalError, NotFoundError
from ._journal import IN_MEMORY_WORDS, is_in_memory_name, is_postgres_url
from ._journal_postgres_sql import without_password, without_passwords
from ._quoting import shell_line
from ._session import Session

#: Task duration of the in-process emulator, in seconds.
EMULATOR_TASK_DURATION = 2.0
#: How to get the optional dependencies, from a clone (the package is not on the index yet).
CLI_EXTRA = (
    'pip install ".[cli]" in a clone of the repository; '
    'pip install "zimage-async[cli]" once it is published'
)
#: The names ``-o`` may end in to be a file; anything else with a suffix is refused.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
#: The environment variable naming the default journal (a file path or a postgresql:// URL).
JOURNAL_VARIABLE = "ZIMAGE_JOURNAL"
#: Exit status when a spend limit refused a create (nothing was sent).
SPEND_LIMIT_EXIT = 3
#: The largest file ``zimage info`` reads (a generated image is a few MiB).
MAX_INFO_BYTES = 64 * 2**20


class UsageError(Exception):
    """A problem with the command line, its inputs or its configuration (exit status 2)."""


class ServiceError(Exception):
    """The service could not be used; the message says what to check (exit status 1)."""


@attrs.define
class Interruption:
    """What to tell the user on Ctrl-C: a command updates ``hint`` as it goes.

    ``record``, when set, returns the JSON record ``--json`` prints on stdout then.
    """

    hint: str | None = None
    record: Callable[[], dict[str, Any]] | None = None


@attrs.frozen
class Target:
    """The open session of a command, whether it is an in-process emulator, its journal."""

    session: Session
    emulated: bool
    #: The journal the session keeps (a path or URL), or None.
    journal: str | None = attrs.field(
        default=None, repr=lambda j: repr(j if j is None else journal_label(j))
    )


def wants_emulator(args: argparse.Namespace) -> bool:
    """Whether the command runs on an in-process emulator (--emulator, or no key set)."""
    return bool(args.emulator) or not os.environ.get("ZIMAGE_API_KEY", "").strip()


def is_loopback(url: str) -> bool:
    """Whether *url* points at this machine (an emulator, never the billed service)."""
    host = urlsplit(url).hostname or ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@contextlib.asynccontextmanager
async def open_session(
    args: argparse.Namespace, *, session_journal: bool = True
) -> AsyncIterator[Target]:
    """Open a Session on the API, or on an in-process emulator, and say which.

    The session keeps the journal :func:`journal_target` names, with the spend limit of
    ``--max-credits``, when the command has the journal options, unless
    *session_journal* is False: ``zimage batch`` gives its journal and limit to the
    batch, not to the session. Configuration errors
    (a journal that cannot be opened included) become :class:`UsageError`, and a
    service that cannot be reached, or a 404 at a base URL without ``/apiv1``, a
    :class:`ServiceError` or :class:`UsageError` that names the host and
    ``ZIMAGE_BASE_URL``.
    """
    emulated = wants_emulator(args)
    journal = journal_target(args, emulated=emulated) if session_journal else None
    max_credits: float | None = getattr(args, "max_credits", None) if session_journal else None
    if emulated:
        from .emulator import Emulator

        why = "--emulator given" if args.emulator else "no ZIMAGE_API_KEY set"
        async with Emulator(task_duration=args.emulator_task_duration) as emu:
            say(
                f"{why}: using an in-process emulator at {emu.base_url} (placeholder "
                "images, nothing billed); set ZIMAGE_API_KEY to use the real service"
            )
            session = Session(
                api_key=emu.api_key,
                base_url=emu.base_url,
                journal=journal,
                max_credits=max_credits,
            )
            async with await _opened(session, journal, args) as zs:
                yield Target(zs, emulated=True, journal=journal)
        return
    try:
        session = Session(journal=journal, max_credits=max_credits)
    except InvalidRequestError as exc:
        source = {"base_url": "ZIMAGE_BASE_URL", "api_key": "ZIMAGE_API_KEY"}.get(exc.field)
        # Any other field is a variable of its own (HTTPS_PROXY, SSL_CERT_FILE): it says so.
        raise UsageError(str(exc) if source is None else f"check {source}: {exc}") from None
    async with await _opened(session, journal, args) as zs:
        if is_loopback(zs.base_url):
            say(f"using the API at {zs.base_url} (a loopback address, such as an emulator)")
        else:
            say(f"using the Z-Image API at {zs.base_url} (each new task is billed)")
        try:
            yield Target(zs, emulated=False, journal=journal)
        except (APIConnectionError, NotFoundError) as exc:
            problem = service_problem(exc, zs.base_url)
            if problem is None:
                raise
            raise problem from None


def service_problem(exc: Exception, base_url: str) -> UsageError | ServiceError | None:
    """Return what *exc*, met at *base_url*, says of the command's configuration, if anything.

    A connection that fails: a :class:`ServiceError` naming the host and
    ``ZIMAGE_BASE_URL``. A 404 at a base URL that does not end in ``/apiv1``: a
    :class:`UsageError` saying the API lives under ``/apiv1``.
    """
    if isinstance(exc, APIConnectionError):
        host = urlsplit(base_url).netloc
        return ServiceError(
            f"could not reach the API at {host} ({type(exc).__name__}: {shown(exc)}); check "
            f"ZIMAGE_BASE_URL (now {base_url}) and the network"
        )
    if isinstance(exc, NotFoundError) and not urlsplit(base_url).path.rstrip("/").endswith(
        "/apiv1"
    ):
        return UsageError(
            f"the API answered 404 ({shown(exc)}) at {base_url}, which does not end in "
            "/apiv1: the API lives under /apiv1 (such as https://ai.odkkk.com/apiv1); "
            "check ZIMAGE_BASE_URL"
        )
    return None


async def _opened(session: Session, journal: str | None, args: argparse.Namespace) -> Session:
    """Open *session*; a journal that cannot be opened is a usage error (nothing sent)."""
    try:
        return await session.open()
    except JournalError as exc:
        await session.close()
        raise journal_refused(exc, journal or "", args) from None


def journal_origin(args: argparse.Namespace) -> str:
    """Say what named the command's journal: ``--journal``, ``$ZIMAGE_JOURNAL`` or neither."""
    if getattr(args, "journal", None) is not None:
        return "--journal"
    if os.environ.get(JOURNAL_VARIABLE, "").strip():
        return f"${JOURNAL_VARIABLE}"
    return ""


def journal_refused(exc: Exception, journal: str, args: argparse.Namespace) -> UsageError:
    """Return the usage error for *journal*, which cannot be used: what named it, what else.

    A journal named by ``$ZIMAGE_JOURNAL`` is not called the default one, and
    ``--no-journal`` is offered only to a command that takes it.
    """
    label = shown(journal_label(journal))
    origin = journal_origin(args)
    if origin == "--journal":
        named = "from --journal"
    else:
        named = f"the journal {label}, from {origin}" if origin else f"the default journal {label}"
        named += "; --journal PATH|URL names another"
    if hasattr(args, "no_journal"):
        named += "; --no-journal keeps none"
    return UsageError(f"{shown(exc)} ({named})")


# -- the journal --------------------------------------------------------------------------


def default_journal(environ: Mapping[str, str] | None = None) -> str:
    """Return the journal a command keeps when none is named on its command line.

    ``$ZIMAGE_JOURNAL`` if set (a file path or a ``postgresql://`` URL), else
    ``journal.sqlite`` in the user's state directory: ``$XDG_STATE_HOME/zimage/``, or
    ``~/.local/state/zimage/`` when ``XDG_STATE_HOME`` is unset or not absolute
    (``zimage`` in ``%LOCALAPPDATA%`` on Windows).
    """
    env = os.environ if environ is None else environ
    named = env.get(JOURNAL_VARIABLE, "").strip()
    if named:
        return named
    local = env.get("LOCALAPPDATA", "")
    if os.name == "nt" and local:
        return str(Path(local) / "zimage" / "journal.sqlite")
    state = env.get("XDG_STATE_HOME", "")
    base = Path(state) if os.path.isabs(state) else Path.home() / ".local" / "state"
    return str(base / "zimage" / "journal.sqlite")


def journal_target(args: argparse.Namespace, *, emulated: bool) -> str | None:
    """Return the journal the command keeps (a path or URL), or None; check it first.

    ``--no-journal``: none. ``--journal``: that one. Otherwise :func:`default_journal`,
    except with an in-process emulator (*emulated*), whose tasks end with the process and
    must not mix with billed ones: none (as for a command without these options).
    ``--max-credits`` without a journal, a journal URL that is not ``postgresql://``,
    and a name SQLite would keep in memory (``:memory:``) are usage errors.
    """
    target: str | None
    if not hasattr(args, "journal"):  # a command without the journal options keeps none
        return None
    if getattr(args, "no_journal", False):
        target = None
    elif getattr(args, "journal", None) is not None:
        target = str(args.journal)
        if not target.strip():
            raise UsageError("--journal: a file path or a postgresql:// URL, not ''")
        if "://" in target and not is_postgres_url(target):
            raise UsageError(
                f"--journal {shown(journal_label(target))}: a file path or a postgresql:// URL"
            )
    else:
        target = None if emulated else default_journal()
        if target is not None and "://" in target and not is_postgres_url(target):
            raise UsageError(
                f"${JOURNAL_VARIABLE} {shown(journal_label(target))}: a file path or a "
                "postgresql:// URL; set it to one, or unset it"
            )
    if target is not None and is_in_memory_name(target):
        none = "; --no-journal keeps none" if hasattr(args, "no_journal") else ""
        raise UsageError(
            f"{journal_origin(args)} {shown(target)} {IN_MEMORY_WORDS}; give a path to a "
            f"journal file or a postgresql:// URL{none}"
        )
    if getattr(args, "max_credits", None) is not None and target is None:
        why = (
            "--no-journal was given"
            if getattr(args, "no_journal", False)
            else "the in-process emulator keeps none unless --journal PATH is given"
        )
        raise UsageError(
            f"--max-credits needs a journal to count what was spent across runs, and {why}"
        )
    return target


def journal_label(target: str) -> str:
    """Return *target* fit to print: a URL, of any scheme, loses its password."""
    return without_password(target) if is_postgres_url(target) else without_passwords(target)


def printable_command(argv: Sequence[str]) -> str:
    """Return ``zimage ARGV`` to print, every URL in it without its password.

    ``--journal URL`` and ``--journal=URL`` alike (and ``--manifest``, or any other
    argument holding a URL): the command to run again must not show the password.
    """
    return shell_line([PROG, *map(_printable_argument, argv)])


def _printable_argument(argument: str) -> str:
    name, equals, value = argument.partition("=")
    if equals and name.startswith("--") and is_postgres_url(value):
        return f"{name}={without_password(value)}"
    return journal_label(argument)


def journal_exists(target: str) -> bool:
    """Whether the journal *target* may hold records (a database, or an existing file)."""
    return is_postgres_url(target) or Path(target).exists()


def tasks_command(journal: str, *args: str) -> str:
    """Return ``zimage tasks ARGS``, naming *journal* when it is not the default."""
    command = [PROG, "tasks", *args]
    if journal != default_journal():
        command += ["--journal", journal_label(journal)]
    return shell_line(command)


def collect_commands(task_id: str, output: str | None, journal: str | None) -> list[str]:
    """Return the commands that collect task *task_id* into *output* without a new task.

    ``zimage task ID -o OUTPUT`` always; with a journal, ``zimage tasks collect -o DIR``
    too (naming the journal when it is not the default).
    """
    task = [PROG, "task", task_id, "-o", output or "."]
    if journal is not None and journal != default_journal():
        task += ["--journal", journal_label(journal)]
    commands = [shell_line(task)]
    if journal is not None:
        commands.append(tasks_command(journal, "collect", "-o", collect_folder(output)))
    return commands


def collect_folder(output: str | None) -> str:
    """Return the folder ``zimage tasks collect -o`` takes for the ``-o`` *output* given."""
    folder = output or "."
    if Path(folder).suffix.lower() in IMAGE_SUFFIXES and not folder.endswith(("/", os.sep)):
        folder = str(Path(folder).parent)
    return folder


def check_writable(directory: Path, *, option: str = "") -> None:
    """Create *directory* if needed and make a file in it; else a :class:`UsageError`."""
    try:
        if directory.exists() and not directory.is_dir():
            raise NotADirectoryError(f"{shown(directory)} is a file, not a directory")
        make_folder_now(directory)  # flushed: its durable saves flush only their own
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise UsageError(
            f"{option}cannot write to the output directory {shown(directory)}: "
            f"{exc.strerror or shown(exc)}"
        ) from None


def check_batch_folder(out_dir: Path) -> None:
    """Refuse a batch's -o as the library would (``shots.png``, no such folder), else make it."""
    try:
        check_output_dir(out_dir)
    except InvalidRequestError as exc:
        raise UsageError(
            f"cannot write to the output directory {shown(out_dir)}: {shown(exc.problem)}"
        ) from None
    check_writable(out_dir)


def check_output_path(text: str | None) -> None:
    """Refuse an ``-o`` that is neither an image file name nor directory-like."""
    if text is None or text.endswith(("/", os.sep)):
        return
    path = Path(text)
    if not path.suffix or path.suffix.lower() in IMAGE_SUFFIXES or path.is_dir():
        return
    raise UsageError(
        f"-o {shown(text)}: an output path is a directory, or a file name ending in .png, "
        f".jpg, .jpeg or .webp, not {shown(path.suffix)}; to save into a directory of that "
        f"name, write {shown(text)}/"
    )
