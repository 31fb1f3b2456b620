"""How the command line reports a service it cannot reach or a base URL that is wrong."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from zimage_async.emulator import Emulator


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZIMAGE_")}
    return {**env, "ZIMAGE_API_KEY": "sk-test-0123456789", **extra}


async def zimage(*args: str | Path, base_url: str) -> tuple[int, str]:
    """Run the command line against *base_url*; return its exit status and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "zimage_async",
        *map(str, args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(ZIMAGE_BASE_URL=base_url),
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, stderr.decode()


@pytest.fixture
def closed_port() -> int:
    """A loopback port that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """A running emulator, so that a base URL without /apiv1 reaches a real server."""
    async with Emulator(task_duration=0.05) as emu:
        yield emu


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["generate", "a cat"], id="generate"),
        pytest.param(["task", "task-unified-1-abc"], id="task"),
    ],
)
async def test_a_refused_connection_names_the_host_and_the_variable(
    closed_port: int, args: list[str], tmp_path: Path
) -> None:
    """Nothing listening: exit 1, and the message names host:port and ZIMAGE_BASE_URL."""
    status, stderr = await zimage(
        *args, "-o", tmp_path, base_url=f"http://127.0.0.1:{closed_port}/apiv1"
    )
    assert status == 1
    assert f"127.0.0.1:{closed_port}" in stderr
    assert "ZIMAGE_BASE_URL" in stderr


async def test_a_base_url_without_apiv1_is_named_on_a_404(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A 404 at a base URL missing /apiv1 says the API lives under /apiv1; exit 2."""
    bare = emulator.base_url.removesuffix("/apiv1")
    status, stderr = await zimage("generate", "a cat", "-o", tmp_path, base_url=bare)
    assert status == 2
    assert "/apiv1" in stderr and "ZIMAGE_BASE_URL" in stderr
    assert len(emulator.ledger) == 0


@pytest.mark.parametrize(
    "base_url",
    [
        pytest.param("not a url", id="not-a-url"),
        pytest.param("ftp://example.com/apiv1", id="ftp"),
        pytest.param("http://example.com/apiv1", id="plain-http"),
    ],
)
async def test_an_invalid_base_url_is_a_usage_error(base_url: str, tmp_path: Path) -> None:
    """A base URL the SDK refuses exits 2 with a message naming ZIMAGE_BASE_URL."""
    status, stderr = await zimage("generate", "a cat", "-o", tmp_path, base_url=base_url)
    assert status == 2
    assert "ZIMAGE_BASE_URL" in stderr
