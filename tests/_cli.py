"""Running the ``zimage`` command line in a subprocess, shared by the command-line tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from zimage_async.emulator import Emulator

from .conftest import until


def cli_env(**extra: str) -> dict[str, str]:
    """This process's environment without any ``ZIMAGE_*`` variable, plus *extra*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZIMAGE_")}
    return {**env, **extra}


def run_keyless(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the command line to its end without an API key (an in-process emulator), in 60 s."""
    return subprocess.run(  # noqa: S603 - our own interpreter and module, fixed argv
        [sys.executable, "-m", "zimage_async", *map(str, args)],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
        check=False,
    )


async def finished(
    *args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[int, str, str]:
    """Run the command line to its end (in 60 s); return its status, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "zimage_async",
        *map(str, args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env() if env is None else env,
        cwd=cwd,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, stdout.decode(), stderr.decode()


def emulator_env(emu: Emulator | None, **extra: str) -> dict[str, str]:
    """The environment that points the command at *emu* (None: no key, in-process), + *extra*.

    The emulator must be listening on a loopback address: a test never reaches the real
    service, whose URL is the command's default.
    """
    if emu is None:
        return cli_env(**extra)
    assert emu.base_url.startswith("http://127.0.0.1:"), emu.base_url
    return cli_env(ZIMAGE_API_KEY=emu.api_key, ZIMAGE_BASE_URL=emu.base_url, **extra)


async def start(
    emu: Emulator | None,
    *args: str | Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> asyncio.subprocess.Process:
    """Start the command line against *emu* (None: no key, so an in-process emulator).

    *env*: more environment variables for the command.
    """
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "zimage_async",
        *map(str, args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=emulator_env(emu, **(env or {})),
        cwd=cwd,
    )


async def ended(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
    """Wait (60 s at most) for *process* to end; return its status, stdout and stderr."""
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def redirected(
    emu: Emulator | None, redirect: str, *args: str | Path, cwd: Path
) -> tuple[int, str]:
    """Run the command line followed by *redirect* (``> /dev/full``, ``| true``) in a shell.

    Return the status of the last command of the line, and the command's stderr.
    """
    process = await asyncio.create_subprocess_exec(
        "/bin/sh",
        "-c",
        f'"$@" {redirect}',
        "sh",
        sys.executable,
        "-m",
        "zimage_async",
        *map(str, args),
        stderr=asyncio.subprocess.PIPE,
        env=emulator_env(emu),
        cwd=cwd,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def created_and_polled(emu: Emulator) -> str:
    """Wait until the command has created its task and polled it; return the task id."""
    await until(lambda: bool(emu.ledger) and emu.request_counts.get("task", 0) >= 1, deadline=30)
    return emu.ledger[0].task_id
