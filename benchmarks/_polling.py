"""Workload 3, polling efficiency: requests per task and detection lag.

Task durations are lognormal (mean 4 s, sigma 0.5), drawn by the emulator from a seeded
generator keyed by the prompt, so the three pollers of a round get identical durations;
``task_info.estimated_time`` carries the emulator's own noise (x0.7 to x1.4, rounded
up). Per round, three client processes run at once, each with its own tasks: the SDK
(default :class:`PollSchedule`, ``await handle.wait()``), and raw loops polling every
0.5 s and every 1 s. Submissions are staggered 50 ms apart.

Detection lag = the wall-clock time (``time.time()``) at which the client saw the task
completed, minus the true completion time, computed by the emulator process from its
ledger: the task's creation time plus its duration, on a clock that starts at
``time.time()`` and advances with ``time.monotonic()``. Both processes read the same
system clock, so the difference is the lag. Polls are counted by the emulator.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from ._common import Options, ServerProcess, Table, mean, p95, start_workers
from ._raw import RawClient

__all__ = ["CLIENTS", "run"]

MEAN_SECONDS = 4.0
SIGMA = 0.5
STAGGER_SECONDS = 0.05
POLLERS = (("sdk", 0.0), ("fixed", 0.5), ("fixed", 1.0))


@dataclass(frozen=True)
class Params:
    """One poller's share of a round."""

    base_url: str
    api_key: str
    tasks: int
    round: int
    label: str
    interval: float
    #: PollSchedule fields for the SDK, to try other settings (default: the defaults).
    schedule: dict[str, float] | None = None


def _prompt(params: Params, index: int) -> str:
    # The part before " via " keys the duration: equal across the pollers of a round.
    return f"polling round {params.round} task {index} via {params.label}"


async def _staggered(
    params: Params, one: Callable[[str], Awaitable[tuple[str, float]]]
) -> dict[str, Any]:
    async def later(index: int) -> tuple[str, float]:
        await asyncio.sleep(index * STAGGER_SECONDS)
        return await one(_prompt(params, index))

    seen = await asyncio.gather(*(later(i) for i in range(params.tasks)))
    return {"seen": dict(seen)}


async def sdk_client(raw: dict[str, Any]) -> dict[str, Any]:
    """Submit, then ``await handle.wait()``; note when it returned."""
    from zimage_async import PollSchedule, Session

    params = Params(**raw)
    schedule = PollSchedule(**(params.schedule or {}))
    async with Session(
        api_key=params.api_key, base_url=params.base_url, poll=schedule, seed=params.round
    ) as zs:

        async def one(prompt: str) -> tuple[str, float]:
            handle = await zs.submit(prompt)
            await handle.wait(timeout=120)
            return handle.id, time.time()

        return await _staggered(params, one)


async def raw_client(raw: dict[str, Any]) -> dict[str, Any]:
    """Submit, then poll every ``interval`` seconds; note when completion was read."""
    params = Params(**raw)
    async with RawClient(params.base_url, params.api_key) as client:

        async def one(prompt: str) -> tuple[str, float]:
            task = await client.create(prompt)
            task = await client.poll(task, interval=params.interval, max_polls=1000)
            return str(task["id"]), time.time()

        return await _staggered(params, one)


CLIENTS = {"sdk": sdk_client, "fixed": raw_client}


def run(options: Options) -> list[Table]:
    """Run the rounds (three pollers at once each); return the polling table."""
    labels = {
        (kind, interval): "zimage_async" if kind == "sdk" else f"raw, every {interval:g} s"
        for kind, interval in POLLERS
    }
    seen: dict[str, dict[str, float]] = {label: {} for label in labels.values()}
    config = {
        "lognormal": {"mean": MEAN_SECONDS, "sigma": SIGMA, "seed": options.seed},
        "seed": options.seed,
    }
    with ServerProcess(config) as server:
        for index in range(options.rounds):
            jobs = [
                (
                    "polling",
                    kind,
                    asdict(
                        Params(
                            base_url=server.base_url,
                            api_key=server.api_key,
                            tasks=options.polling_tasks,
                            round=index,
                            label=labels[kind, interval].replace(" ", "-"),
                            interval=interval,
                        )
                    ),
                )
                for kind, interval in POLLERS
            ]
            for (kind, interval), result in zip(
                POLLERS, start_workers(jobs, timeout=180), strict=True
            ):
                seen[labels[kind, interval]].update(result["seen"])
        truth = {task["id"]: task for task in server.control("/tasks")}
    durations = [t["finished_at"] - t["created_at"] for t in truth.values()]
    table = Table(
        f"3. Polling: lognormal durations (mean {MEAN_SECONDS:g} s, sigma {SIGMA:g}; "
        f"measured mean {mean(durations):.2f} s), {options.polling_tasks} tasks x "
        f"{options.rounds} round(s) per poller",
        ["poller", "tasks", "polls/task (mean)", "lag mean s", "lag p95 s", "lag max s"],
    )
    stats: dict[str, tuple[float, float, float]] = {}
    for label, by_id in seen.items():
        lags = [at - truth[task_id]["finished_at"] for task_id, at in by_id.items()]
        polls = [truth[task_id]["polls"] for task_id in by_id]
        stats[label] = (mean(polls), mean(lags), p95(lags))
        table.rows.append(
            [
                label,
                str(len(by_id)),
                f"{mean(polls):.2f}",
                f"{mean(lags):.3f}",
                f"{p95(lags):.3f}",
                f"{max(lags):.3f}",
            ]
        )
    sdk, fast, slow = (stats[labels[p]] for p in POLLERS)
    fewer = sdk[0] < slow[0]
    lag_ok = sdk[1] <= fast[1] and sdk[2] <= fast[2]
    table.notes.append(
        f"SDK polls {sdk[0]:.2f} vs {slow[0]:.2f} for the 1 s poller "
        f"({'fewer: met' if fewer else 'not fewer: MISSED'}); lag mean/p95 "
        f"{sdk[1]:.3f}/{sdk[2]:.3f} s vs {fast[1]:.3f}/{fast[2]:.3f} s for the 0.5 s poller "
        f"({'no worse: met' if lag_ok else 'worse: MISSED'})"
    )
    return [table]
