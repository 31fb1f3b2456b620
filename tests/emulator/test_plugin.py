"""The pytest plugin's fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import aiohttp

from zimage_async.emulator import Emulator, ManualClock
from zimage_async.pytest_plugin import EmulatorFactory

ROOT = Path(__file__).resolve().parents[2]


async def test_zimage_emulator_fixture_is_started_and_fast(
    zimage_emulator: Emulator, session: aiohttp.ClientSession
) -> None:
    """The zimage_emulator fixture yields a running emulator with fast tasks."""
    async with session.post(
        zimage_emulator.base_url + "/v1/images/generations",
        headers={"Authorization": f"Bearer {zimage_emulator.api_key}"},
        json={"model": "z-image-turbo", "prompt": "fixture"},
    ) as response:
        body = await response.json()
    assert body["task_info"]["estimated_time"] == 1


async def test_factory_passes_options_through(zimage_emulator_factory: EmulatorFactory) -> None:
    """zimage_emulator_factory starts emulators with the options given."""
    clock = ManualClock()
    emulator = await zimage_emulator_factory(clock=clock, api_keys=("k1",))
    assert emulator.clock is clock
    assert emulator.api_key == "k1"


def test_plugin_works_in_a_fresh_pytest_run(tmp_path: Path) -> None:
    """A separate pytest session can use the fixtures through the plugin in strict mode."""
    (tmp_path / "test_uses_plugin.py").write_text(
        "import pytest\n\n\n"
        "@pytest.mark.asyncio\n"
        "async def test_it(zimage_emulator):\n"
        "    assert zimage_emulator.base_url.endswith('/apiv1')\n",
        encoding="utf-8",
    )
    registered = any(
        entry.name == "zimage_async" for entry in metadata.entry_points(group="pytest11")
    )
    plugin_args = [] if registered else ["-p", "zimage_async.pytest_plugin"]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run(  # noqa: S603 - a fixed argument list
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            *plugin_args,
            "-o",
            "asyncio_mode=strict",
            "-o",
            "asyncio_default_fixture_loop_scope=function",
            "-W",
            "error",
            "--rootdir",
            str(tmp_path),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
