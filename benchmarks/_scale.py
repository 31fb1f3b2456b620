"""Workload 2, scale: thousands of concurrent handles in one process.

All tasks are started at once with ``asyncio.gather`` over a pool of 100 connections;
each is created, awaited (the SDK's default poll schedule) and its small image fetched.
Reported: wall time, the client's RSS rise at the moment the last create call returned
(divided by the handles still pending then), its peak RSS rise over the run, and its
CPU time, of which the part the cycle collector took (``gc.callbacks``).

The floor is measured, not assumed: a raw aiohttp "oracle" loop that knows the task
duration creates every task, sleeps exactly the duration, polls once (again every 50 ms
if needed) and fetches the image: the least work and waiting any client can do. The
SDK's wall time is compared with it.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from ._common import (
    Options,
    ServerProcess,
    Table,
    median,
    peak_rss_bytes,
    reset_peak_rss,
    rss_bytes,
    run_worker,
)
from ._raw import RawClient

__all__ = ["CLIENTS", "run"]

SIZE = "376x376"
PROMPT = "scale benchmark"
MAX_CONNECTIONS = 100
#: The most wall time the SDK may take, as a multiple of the floor's.
TARGET_WALL_RATIO = 1.15
#: The most memory per pending handle the SDK may hold, as a multiple of the floor's.
TARGET_MEMORY_RATIO = 1.1
ORACLE_REPOLL_SECONDS = 0.05


@dataclass(frozen=True)
class Params:
    """What one scale run does."""

    base_url: str
    api_key: str
    tasks: int
    duration: float


@dataclass
class Result:
    """Wall time and memory of one run."""

    wall_seconds: float = 0.0
    submit_seconds: float = 0.0
    baseline_rss: int = 0
    rss_all_submitted: int = 0
    pending_at_all_submitted: int = 0
    peak_rss: int = 0
    completed: int = 0
    cpu_seconds: float = 0.0
    gc_seconds: float = 0.0


class _GCTime:
    """Adds up the CPU time the cycle collector takes while installed."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.seconds += time.process_time() - self._started


async def _run(
    params: Params,
    submit: Callable[[], Awaitable[Any]],
    finish: Callable[[Any], Awaitable[None]],
) -> dict[str, Any]:
    result = Result()
    submitted = 0
    started = time.perf_counter()

    async def one() -> None:
        nonlocal submitted
        handle = await submit()
        submitted += 1
        if submitted == params.tasks:
            result.submit_seconds = time.perf_counter() - started
            result.rss_all_submitted = rss_bytes()
            result.pending_at_all_submitted = params.tasks - result.completed
        await finish(handle)
        result.completed += 1

    gc.collect()
    result.baseline_rss = rss_bytes()
    reset_peak_rss()
    collector = _GCTime()
    gc.callbacks.append(collector)
    cpu = time.process_time()
    started = time.perf_counter()
    try:
        await asyncio.gather(*(one() for _ in range(params.tasks)))
    finally:
        gc.callbacks.remove(collector)
    result.wall_seconds = time.perf_counter() - started
    result.cpu_seconds = time.process_time() - cpu
    result.gc_seconds = collector.seconds
    result.peak_rss = max(peak_rss_bytes(), result.rss_all_submitted)
    return asdict(result)


async def sdk_client(raw: dict[str, Any]) -> dict[str, Any]:
    """Submit every task, then ``await`` each handle (poll, download into memory)."""
    from zimage_async import PollSchedule, Session, TaskHandle

    params = Params(**raw)
    async with Session(
        api_key=params.api_key,
        base_url=params.base_url,
        max_connections=MAX_CONNECTIONS,
        poll=PollSchedule(timeout=300.0),
        seed=1,
    ) as zs:
        await zs.generate(PROMPT, size=SIZE, seed=1)  # warm-up

        async def submit() -> TaskHandle:
            return await zs.submit(PROMPT, size=SIZE, seed=1)

        async def finish(handle: TaskHandle) -> None:
            result = await handle
            assert result.images[0].data

        return await _run(params, submit, finish)


async def raw_client(raw: dict[str, Any]) -> dict[str, Any]:
    """The oracle: sleep exactly the task duration, poll once, fetch the image."""
    params = Params(**raw)
    async with RawClient(params.base_url, params.api_key, max_connections=MAX_CONNECTIONS) as c:
        task = await c.create(PROMPT, size=SIZE, seed=1)  # warm-up
        await c.fetch((await c.poll(task, interval=0.1))["results"][0])

        async def submit() -> Any:
            return await c.create(PROMPT, size=SIZE, seed=1)

        async def finish(task: Any) -> None:
            await asyncio.sleep(params.duration)
            task = await c.get_task(task["id"])
            task = await c.poll(task, interval=ORACLE_REPOLL_SECONDS)
            assert await c.fetch(task["results"][0])

        return await _run(params, submit, finish)


CLIENTS = {"sdk": sdk_client, "raw": raw_client}


def run(options: Options) -> list[Table]:
    """Alternate SDK and oracle runs; return the scale table."""
    results: dict[str, list[dict[str, Any]]] = {"sdk": [], "raw": []}
    requests: dict[str, dict[str, int]] = {"sdk": {}, "raw": {}}
    n, duration = options.scale_tasks, options.scale_duration
    timeout = 120 + n * 0.05 + duration
    config = {"task_duration": duration, "seed": options.seed}
    with ServerProcess(config) as server:
        for _ in range(options.scale_rounds):
            for variant in ("sdk", "raw"):
                params = Params(server.base_url, server.api_key, n, duration)
                before: dict[str, int] = server.control("/counts")
                results[variant].append(
                    run_worker("scale", variant, asdict(params), timeout=timeout)
                )
                after: dict[str, int] = server.control("/counts")
                for endpoint in ("create", "task", "image"):
                    sent = after.get(endpoint, 0) - before.get(endpoint, 0)
                    requests[variant][endpoint] = requests[variant].get(endpoint, 0) + sent
    table = Table(
        f"2. Scale: {n:,} concurrent tasks of {duration:g} s in one process "
        f"({MAX_CONNECTIONS} connections, {options.scale_rounds} run(s) each)",
        [
            "client",
            "wall s",
            "all created s",
            "RSS/pending handle",
            "peak RSS rise/task",
            "requests/task",
            "CPU s",
            "GC s",
        ],
    )
    walls: dict[str, float] = {}
    pending_rss: dict[str, float] = {}
    for variant, label in (("sdk", "zimage_async"), ("raw", "raw oracle loop (floor)")):
        runs = results[variant]
        walls[variant] = median([r["wall_seconds"] for r in runs])
        per_pending = median(
            [
                (r["rss_all_submitted"] - r["baseline_rss"]) / max(1, r["pending_at_all_submitted"])
                for r in runs
            ]
        )
        pending_rss[variant] = per_pending
        peak = median([(r["peak_rss"] - r["baseline_rss"]) / n for r in runs])
        total = n * len(runs) + 1
        per_task = "/".join(
            f"{requests[variant].get(endpoint, 0) / total:.2f}"
            for endpoint in ("create", "task", "image")
        )
        table.rows.append(
            [
                label,
                f"{walls[variant]:.1f}",
                f"{median([r['submit_seconds'] for r in runs]):.1f}",
                f"{per_pending / 1024:.1f} KiB",
                f"{peak / 1024:.1f} KiB",
                per_task,
                f"{median([r['cpu_seconds'] for r in runs]):.1f}",
                f"{median([r.get('gc_seconds', 0.0) for r in runs]):.1f}",
            ]
        )
    ratio = walls["sdk"] / walls["raw"]
    verdict = "met" if ratio <= TARGET_WALL_RATIO else "MISSED"
    table.notes.append(
        f"SDK wall / floor: {ratio:.2f}x (target <= {TARGET_WALL_RATIO:g}x: {verdict}); the "
        f"task duration alone is {duration:g} s"
    )
    memory = pending_rss["sdk"] / pending_rss["raw"]
    verdict = "met" if memory <= TARGET_MEMORY_RATIO else "MISSED"
    table.notes.append(
        f"SDK / floor RSS per pending handle: {memory:.2f}x "
        f"(target <= {TARGET_MEMORY_RATIO:g}x: {verdict})"
    )
    table.notes.append(
        "pending handles when the last create returned: "
        + ", ".join(str(r["pending_at_all_submitted"]) for r in results["sdk"])
        + " (SDK)"
    )
    return [table]
