"""Workload 1, overhead: client CPU per task for the same requests, SDK against raw aiohttp.

Every task is a create call, polls every 0.5 s until completion (the SDK is given a
fixed schedule, ``PollSchedule(wait_min=0.5, wait_max=0.5, jitter=0)``, so that both
sides send the same requests), and one small image (376x376 PNG) downloaded into memory.
The measure is ``time.process_time()`` of the client process over a batch of concurrent
tasks, after one warm-up task; the server runs in its own process.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from ._common import Options, ServerProcess, Table, median, run_worker
from ._raw import RawClient

__all__ = ["CLIENTS", "run"]

#: The most client CPU per task the SDK may spend, as a multiple of the raw loop's.
TARGET_CPU_RATIO = 1.15
TASK_SECONDS = 1.2
POLL_SECONDS = 0.5
SIZE = "376x376"
PROMPT = "overhead benchmark"


@dataclass(frozen=True)
class Params:
    """What one overhead measurement does."""

    base_url: str
    api_key: str
    tasks: int


@dataclass(frozen=True)
class Result:
    """CPU and wall seconds of one batch, and the image bytes received."""

    cpu_seconds: float
    wall_seconds: float
    image_bytes: int


async def _batch(params: Params, one: Callable[[], Awaitable[int]]) -> dict[str, Any]:
    await one()  # warm-up: connections, caches, lazy imports
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    sizes = await asyncio.gather(*(one() for _ in range(params.tasks)))
    result = Result(
        cpu_seconds=time.process_time() - cpu,
        wall_seconds=time.perf_counter() - wall,
        image_bytes=sum(sizes),
    )
    return asdict(result)


async def sdk_client(raw: dict[str, Any]) -> dict[str, Any]:
    """Run the batch with the SDK: ``await (await zs.submit(...))``."""
    from zimage_async import PollSchedule, Session

    params = Params(**raw)
    schedule = PollSchedule(wait_min=POLL_SECONDS, wait_max=POLL_SECONDS, jitter=0.0)
    async with Session(api_key=params.api_key, base_url=params.base_url, poll=schedule) as zs:

        async def one() -> int:
            result = await (await zs.submit(PROMPT, size=SIZE, seed=1))
            return len(result.images[0].data)

        return await _batch(params, one)


async def raw_client(raw: dict[str, Any]) -> dict[str, Any]:
    """Run the batch with the raw loop: create, poll every 0.5 s, GET the image."""
    params = Params(**raw)
    async with RawClient(params.base_url, params.api_key) as client:

        async def one() -> int:
            task = await client.create(PROMPT, size=SIZE, seed=1)
            task = await client.poll(task, interval=POLL_SECONDS)
            return len(await client.fetch(task["results"][0]))

        return await _batch(params, one)


CLIENTS = {"sdk": sdk_client, "raw": raw_client}


def run(options: Options) -> list[Table]:
    """Interleave SDK and raw batches (A B A B); return the overhead table."""
    cpu: dict[str, list[float]] = {"sdk": [], "raw": []}
    wall: dict[str, list[float]] = {"sdk": [], "raw": []}
    requests: dict[str, dict[str, int]] = {"sdk": {}, "raw": {}}
    with ServerProcess({"task_duration": TASK_SECONDS, "seed": options.seed}) as server:
        for _ in range(options.overhead_rounds):
            for variant in ("sdk", "raw"):
                params = Params(server.base_url, server.api_key, options.overhead_tasks)
                before: dict[str, int] = server.control("/counts")
                result = run_worker("overhead", variant, asdict(params), timeout=120)
                after: dict[str, int] = server.control("/counts")
                tasks = params.tasks + 1  # with the warm-up task
                cpu[variant].append(result["cpu_seconds"] / params.tasks * 1000)
                wall[variant].append(result["wall_seconds"])
                for endpoint in ("create", "task", "image"):
                    sent = after.get(endpoint, 0) - before.get(endpoint, 0)
                    requests[variant][endpoint] = requests[variant].get(endpoint, 0) + sent
                requests[variant]["tasks"] = requests[variant].get("tasks", 0) + tasks
    table = Table(
        f"1. Overhead: client CPU per task ({options.overhead_tasks} concurrent tasks per "
        f"batch, {options.overhead_rounds} batches each, interleaved)",
        ["client", "CPU ms/task (median)", "per batch", "requests/task", "batch wall s"],
    )
    for variant, label in (("sdk", "zimage_async"), ("raw", "raw aiohttp loop")):
        counts = requests[variant]
        per_task = "/".join(
            f"{counts.get(endpoint, 0) / counts['tasks']:.2f}"
            for endpoint in ("create", "task", "image")
        )
        table.rows.append(
            [
                label,
                f"{median(cpu[variant]):.3f}",
                " ".join(f"{value:.3f}" for value in cpu[variant]),
                per_task,
                f"{median(wall[variant]):.2f}",
            ]
        )
    ratio = median(cpu["sdk"]) / median(cpu["raw"])
    verdict = "met" if ratio <= TARGET_CPU_RATIO else "MISSED"
    table.notes.append(
        f"SDK / raw CPU per task: {ratio:.2f}x (target <= {TARGET_CPU_RATIO:g}x: {verdict})"
    )
    table.notes.append("requests/task = create/poll/image, counted by the emulator")
    return [table]
