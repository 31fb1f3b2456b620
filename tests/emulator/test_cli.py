"""Running the emulator as a program and through serve()."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp

from zimage_async.emulator import Emulator, main, serve
from zimage_async.emulator._cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_module_runs_answers_and_stops_on_sigterm(session: aiohttp.ClientSession) -> None:
    """Running the module serves on the given port and exits 0 on SIGTERM."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "zimage_async.emulator",
        "--port",
        str(port),
        "--task-duration",
        "0.05",
        "--api-key",
        "cli-key",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert process.stdout is not None
        first_line = await asyncio.wait_for(process.stdout.readline(), timeout=20.0)
        base_url = f"http://127.0.0.1:{port}/apiv1"
        assert first_line.decode().startswith(f"Z-Image emulator: base URL {base_url}")
        assert "api key cli-key" in first_line.decode()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20.0
        status = None
        while loop.time() < deadline:
            try:
                async with session.post(
                    base_url + "/v1/images/generations",
                    headers={"Authorization": "Bearer cli-key"},
                    data=json.dumps({"model": "z-image-turbo", "prompt": "a cli cat"}),
                ) as response:
                    status = response.status
                    body = await response.json()
                break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
        assert status == 200
        assert body["status"] == "pending"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=20.0)
    assert process.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr


async def test_serve_runs_until_the_stop_event(session: aiohttp.ClientSession) -> None:
    """serve() announces the URLs, answers requests, and returns once stop is set."""
    stop = asyncio.Event()
    announced: list[str] = []
    ready = asyncio.Event()

    def announce(text: str) -> None:
        announced.append(text)
        ready.set()

    emulator = Emulator(task_duration=0.05)
    running = asyncio.ensure_future(serve(emulator, stop=stop, announce=announce))
    await asyncio.wait_for(ready.wait(), timeout=10.0)
    assert emulator.base_url in announced[0]
    assert "curl" in announced[0]
    async with session.get(emulator.base_url + "/v1/tasks/x") as response:
        assert response.status == 401
    stop.set()
    await asyncio.wait_for(running, timeout=10.0)


def test_main_refuses_a_public_host() -> None:
    """main() exits with status 2 and a message for a non-loopback --host."""
    assert main(["--host", "0.0.0.0", "--port", "0"]) == 2  # noqa: S104 - refused


def test_parser_takes_the_gateway_family_options() -> None:
    """The command line offers --idempotency, --image-framing and --block-script-user-agents."""
    args = build_parser().parse_args(
        ["--idempotency", "ignore", "--image-framing", "close", "--block-script-user-agents"]
    )
    assert (args.idempotency, args.image_framing, args.block_script_user_agents) == (
        "ignore",
        "close",
        True,
    )
    defaults = build_parser().parse_args([])
    assert (defaults.idempotency, defaults.image_framing) == ("honour", "length")
    assert defaults.block_script_user_agents is False
