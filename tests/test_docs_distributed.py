"""The page on many workers runs as written: its PostgreSQL server, workers and example.

The page's console commands start a server on 127.0.0.1:15432 as the ``postgres`` user
(through ``runuser``, as root), its two ``zimage batch`` commands then run at the same
time against an emulator in this process, and its library example runs twice at once
with ``ZIMAGE_JOURNAL`` set to the page's URL. Skipped when not root, without
PostgreSQL binaries, or when port 15432 is taken.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from zimage_async.emulator import Emulator

from ._postgres import find_binaries

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "distributed.md").read_text(encoding="utf-8")
URL = "postgresql://postgres@127.0.0.1:15432/zimage"
BASH = shutil.which("bash") or "/bin/bash"
STOP = 'runuser -u postgres -- pg_ctl -D "$dir/data" stop'


def _blocks(kind: str) -> list[list[str]]:
    found = re.findall(rf"```{kind}\n(.*?)```", PAGE, re.S)
    return [[line.removeprefix("$ ") for line in block.splitlines()] for block in found]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZIMAGE_")}
    bins = [str(Path(sys.executable).parent)]
    found = find_binaries()
    if found is not None:
        bins.append(str(found))
    env["PATH"] = os.pathsep.join([*bins, env.get("PATH", "")])
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"
    return {**env, **extra}


def test_the_page_s_port_is_outside_the_ephemeral_range() -> None:
    """The page's port is one the system never gives a connection as its own end.

    Inside the range (32768-60999 here), any connection open at that moment may hold it:
    the server then fails to bind ("Address already in use") though nothing listens there,
    as it did in two runs of this file.
    """
    ranges = Path("/proc/sys/net/ipv4/ip_local_port_range")
    if not ranges.exists():
        pytest.skip("no Linux ephemeral port range to compare with")
    low, high = (int(part) for part in ranges.read_text().split())
    port = int(re.findall(r"127\.0\.0\.1:(\d+)/", URL)[0])
    assert not low <= port <= high, (port, low, high)
    assert f"-p {port} " in PAGE


def _port_taken() -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex(("127.0.0.1", 15432)) == 0


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The page's server, started by its own commands, stopped by its stop command."""
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("the page's server commands are written for root (runuser)")
    if find_binaries() is None:
        pytest.skip("no PostgreSQL binaries")
    if _port_taken():
        pytest.skip("port 15432, the page's, is in use")
    commands = _blocks("console")[0]
    assert STOP in PAGE
    assert URL in PAGE
    # On a failure, the server's own log says why (its folder is not kept).
    keep_log = 'trap \'test -f "$dir/log" && cat "$dir/log" >&2\' ERR\n'
    script = "set -e\n" + keep_log + "\n".join(commands) + '\necho "$dir"\n'
    done = subprocess.run(  # noqa: S603 - the page's commands, run as written
        [BASH, "-c", script], capture_output=True, text=True, env=_env(), timeout=120
    )
    assert done.returncode == 0, done.stderr
    directory = done.stdout.strip().splitlines()[-1]
    try:
        yield URL
    finally:
        subprocess.run(  # noqa: S603 - the page's stop command
            [BASH, "-c", f"dir={directory}\n{STOP}"], capture_output=True, env=_env()
        )
        shutil.rmtree(directory, ignore_errors=True)


async def _run(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    child = await asyncio.create_subprocess_exec(
        *command, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(child.communicate(), timeout=120)
    return child.returncode or 0, err.decode()


async def test_the_two_documented_workers_share_one_batch(server: str, tmp_path: Path) -> None:
    """Both `zimage batch` commands of the page, at once: every prompt saved and billed once."""
    workers = [line for line in _blocks("console")[1] if line.startswith("zimage batch")]
    assert len(workers) == 2
    prompts = [f"a paper lantern {n}" for n in range(12)]
    (tmp_path / "prompts.txt").write_text("".join(f"{p}\n" for p in prompts))
    async with Emulator(task_duration=0.1, seed=21) as emu:
        env = _env(ZIMAGE_API_KEY=emu.api_key, ZIMAGE_BASE_URL=emu.base_url)
        done = await asyncio.gather(*(_run([BASH, "-c", w], tmp_path, env) for w in workers))
        billed = emu.billed_counts(by="prompt")
    assert [code for code, _ in done] == [0, 0], [err for _, err in done]
    assert billed == dict.fromkeys(prompts, 1)
    assert len(list((tmp_path / "out").glob("*.png"))) == len(prompts)


async def test_the_documented_library_workers_share_one_batch(server: str, tmp_path: Path) -> None:
    """The page's example, run twice at once on the page's journal URL, bills each once."""
    (source,) = re.findall(r"```python\n(.*?)```", PAGE, re.S)
    (tmp_path / "example.py").write_text(source, encoding="utf-8")
    async with Emulator(task_duration=0.1, seed=22) as emu:
        env = _env(ZIMAGE_API_KEY=emu.api_key, ZIMAGE_BASE_URL=emu.base_url, ZIMAGE_JOURNAL=server)
        command = [sys.executable, "example.py"]
        done = await asyncio.gather(_run(command, tmp_path, env), _run(command, tmp_path, env))
        billed = emu.billed_counts(by="prompt")
    assert [code for code, _ in done] == [0, 0], [err for _, err in done]
    assert billed == {f"a paper boat, variation {n}": 1 for n in range(6)}
