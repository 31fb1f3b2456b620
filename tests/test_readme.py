"""The README's Python examples run as written, against an emulator, in a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from zimage_async.emulator import Emulator

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text("utf-8"), re.S)


def test_readme_has_examples() -> None:
    """The README shows at least the opening example and the quickstart."""
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("source", [pytest.param(b, id=f"block-{n}") for n, b in enumerate(BLOCKS)])
async def test_readme_block_runs(source: str, tmp_path: Path) -> None:
    """Each Python block of the README runs unchanged with the environment set to an emulator."""
    async with Emulator(task_duration=0.2, seed=4) as emu:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZIMAGE_")}
        env |= {"ZIMAGE_API_KEY": emu.api_key, "ZIMAGE_BASE_URL": emu.base_url}
        env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"
        script = tmp_path / "example.py"
        script.write_text(source, encoding="utf-8")
        process = await asyncio_subprocess(script, env, tmp_path)
    assert process.returncode == 0, process.stderr
    if "Emulator(" not in source:  # the block used the environment's emulator
        assert len(emu.ledger) >= 1


async def asyncio_subprocess(
    script: Path, env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """Run *script* in a child Python without blocking the loop the emulator runs on."""
    import asyncio

    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(child.communicate(), timeout=120)
    return subprocess.CompletedProcess(
        [str(script)], child.returncode or 0, out.decode(), err.decode()
    )
