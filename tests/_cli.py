"""Running the ``zimage`` command line in a subprocess, shared by the command-line tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
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


async def start(
    emu: Emulator | None, *args: str | Path, cwd: Path | None = None
) -> asyncio.subprocess.Process:
    """Start the command line against *emu* (None: no key, so an in-process emulator)."""
    env = {} if emu is None else {"ZIMAGE_API_KEY": emu.api_key, "ZIMAGE_BASE_URL": emu.base_url}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "zimage_async",
        *map(str, args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(**env),
        cwd=cwd,
    )


async def created_and_polled(emu: Emulator) -> str:
    """Wait until the command has created its task and polled it; return the task id."""
    await until(lambda: bool(emu.ledger) and emu.request_counts.get("task", 0) >= 1, deadline=30)
    return emu.ledger[0].task_id
