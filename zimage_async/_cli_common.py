"""What every ``zimage`` command shares: messages, usage errors, the session, output paths."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import attrs

from ._exceptions import APIConnectionError, InvalidRequestError, NotFoundError
from ._session import Session

PROG = "zimage"
#: Task duration of the in-process emulator, in seconds.
EMULATOR_TASK_DURATION = 2.0
#: How to get the optional dependencies, from a clone (the package is not on the index yet).
CLI_EXTRA = (
    'pip install ".[cli]" in a clone of the repository; '
    'pip install "zimage-async[cli]" once it is published'
)
#: The names ``-o`` may end in to be a file; anything else with a suffix is refused.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


class UsageError(Exception):
    """A problem with the command line, its inputs or its configuration (exit status 2)."""


class ServiceError(Exception):
    """The service could not be used; the message says what to check (exit status 1)."""


@attrs.define
class Interruption:
    """What to tell the user on Ctrl-C: a command updates ``hint`` as it goes."""

    hint: str | None = None


@attrs.frozen
class Target:
    """The open session of a command, and whether it is an in-process emulator."""

    session: Session
    emulated: bool


def say(text: str) -> None:
    """Print a message for the user on stderr."""
    print(f"{PROG}: {text}", file=sys.stderr, flush=True)


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
async def open_session(args: argparse.Namespace) -> AsyncIterator[Target]:
    """Open a Session on the API, or on an in-process emulator, and say which.

    Configuration errors become :class:`UsageError`, and a service that cannot be
    reached, or a 404 at a base URL without ``/apiv1``, a :class:`ServiceError` or
    :class:`UsageError` that names the host and ``ZIMAGE_BASE_URL``.
    """
    if wants_emulator(args):
        from .emulator import Emulator

        why = "--emulator given" if args.emulator else "no ZIMAGE_API_KEY set"
        async with Emulator(task_duration=args.emulator_task_duration) as emu:
            say(
                f"{why}: using an in-process emulator at {emu.base_url} (placeholder "
                "images, nothing billed); set ZIMAGE_API_KEY to use the real service"
            )
            async with Session(api_key=emu.api_key, base_url=emu.base_url) as zs:
                yield Target(zs, emulated=True)
        return
    try:
        session = Session()
    except InvalidRequestError as exc:
        source = "ZIMAGE_BASE_URL" if exc.field == "base_url" else "ZIMAGE_API_KEY"
        raise UsageError(f"check {source}: {exc}") from None
    async with session as zs:
        if is_loopback(zs.base_url):
            say(f"using the API at {zs.base_url} (a loopback address, such as an emulator)")
        else:
            say(f"using the Z-Image API at {zs.base_url} (each new task is billed)")
        try:
            yield Target(zs, emulated=False)
        except APIConnectionError as exc:
            host = urlsplit(zs.base_url).netloc
            raise ServiceError(
                f"could not reach the API at {host} ({type(exc).__name__}: {exc}); check "
                f"ZIMAGE_BASE_URL (now {zs.base_url}) and the network"
            ) from None
        except NotFoundError as exc:
            if urlsplit(zs.base_url).path.rstrip("/").endswith("/apiv1"):
                raise
            raise UsageError(
                f"the API answered 404 ({exc}) at {zs.base_url}, which does not end in "
                "/apiv1: the API lives under /apiv1 (such as https://ai.odkkk.com/apiv1); "
                "check ZIMAGE_BASE_URL"
            ) from None


def check_output_path(text: str | None) -> None:
    """Refuse an ``-o`` that is neither an image file name nor directory-like."""
    if text is None or text.endswith(("/", os.sep)):
        return
    path = Path(text)
    if not path.suffix or path.suffix.lower() in IMAGE_SUFFIXES or path.is_dir():
        return
    raise UsageError(
        f"-o {text}: an output path is a directory, or a file name ending in .png, .jpg, "
        f".jpeg or .webp, not {path.suffix}; to save into a directory of that name, "
        f"write {text}/"
    )
