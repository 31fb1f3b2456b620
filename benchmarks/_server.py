"""The emulator for one workload, in its own process: ``python -m benchmarks._server CONFIG``.

CONFIG is JSON: ``task_duration`` (seconds), or ``lognormal`` ``{"mean": 4, "sigma": 0.5,
"seed": 1}`` for durations drawn per task; ``image_padding_bytes``; ``seed``. The process
prints one JSON line (``base_url``, ``api_key``, ``control_url``) once listening, and
stops on SIGTERM or SIGINT.

The control listener (127.0.0.1 too) answers ``GET /tasks``: every billed task with its
true completion time on the emulator's clock (its creation time, from the ledger, plus
its duration) and the number of polls (``GET /v1/tasks/{id}``) and image requests it
received; and ``GET /counts``: requests per endpoint.
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
import random
import signal
import sys
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from zimage_async.emulator import Emulator

__all__ = ["lognormal_durations", "main"]


def lognormal_durations(mean: float, sigma: float, seed: int) -> Callable[[str], float]:
    """Durations with the given mean, drawn from the part of the prompt before `` via ``.

    The same key gives the same duration, so the pollers compared in one round get
    identical task durations.
    """
    mu = math.log(mean) - sigma**2 / 2

    def duration(prompt: str) -> float:
        key = prompt.split(" via ", 1)[0]
        return round(random.Random(f"{seed}/{key}").lognormvariate(mu, sigma), 3)

    return duration


def _prompt(body: Mapping[str, object]) -> str:
    return str(body.get("prompt", ""))


async def _serve(config: Mapping[str, Any]) -> None:
    lognormal = config.get("lognormal")
    if lognormal is not None:
        draw = lognormal_durations(
            float(lognormal["mean"]), float(lognormal["sigma"]), int(lognormal["seed"])
        )

        def duration_of(body: Mapping[str, object]) -> float:
            return draw(_prompt(body))

    else:
        fixed = float(config.get("task_duration", 3.0))

        def duration_of(body: Mapping[str, object]) -> float:
            return fixed

    emulator = Emulator(
        task_duration=duration_of,
        image_renderer="plain",
        image_padding_bytes=int(config.get("image_padding_bytes", 0)),
        seed=int(config.get("seed", 0)),
    )

    async def tasks(request: web.Request) -> web.Response:
        polls: collections.Counter[str] = collections.Counter()
        images: collections.Counter[str] = collections.Counter()
        for record in emulator.requests:
            parts = record.path.split("/")
            if record.endpoint == "task":
                polls[parts[-1]] += 1
            elif record.endpoint == "image" and len(parts) >= 3:
                images[parts[-2]] += 1
        return web.json_response(
            [
                {
                    "id": entry.task_id,
                    "prompt": _prompt(entry.request_body),
                    "created_at": entry.created_at,
                    "finished_at": entry.created_at + duration_of(entry.request_body),
                    "polls": polls[entry.task_id],
                    "images": images[entry.task_id],
                }
                for entry in emulator.ledger
            ]
        )

    async def counts(request: web.Request) -> web.Response:
        return web.json_response(emulator.request_counts)

    control = web.Application()
    control.add_routes([web.get("/tasks", tasks), web.get("/counts", counts)])
    runner = web.AppRunner(control, access_log=None, handle_signals=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with emulator:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        announcement = {
            "base_url": emulator.base_url,
            "api_key": emulator.api_key,
            "control_url": f"http://127.0.0.1:{port}",
        }
        print(json.dumps(announcement), flush=True)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
    crashes = emulator.internal_errors
    if crashes:
        print(f"emulator internal errors: {crashes!r}", file=sys.stderr)


def main(argv: list[str]) -> int:
    """Run the emulator described by the JSON in ``argv[0]`` until SIGTERM."""
    asyncio.run(_serve(json.loads(argv[0]) if argv else {}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
