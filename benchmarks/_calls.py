"""Workload 6, calls: client CPU per call, one call at a time, SDK against raw aiohttp.

Where the overhead workload's CPU per task goes, call by call. Each client process
makes, one after another, a number of calls of each kind: create a task; read one task;
stream the image of a completed task into memory; resume a completed task and get its
result (one read and one image). The measure is ``time.process_time()`` over the calls
of one kind, divided by their number, after a few warm-up calls of that kind; the
server runs in its own process. The SDK and raw processes alternate (A B A B ...).
The requests of each kind are counted at the emulator (outside the timed loop), so the
table shows that both sides send the same requests per call.

The SDK makes its calls as a user does: ``zs.submit(...)``, ``handle.refresh()``,
``handle.iter_bytes()`` on a completed handle that has not downloaded its image (a
handle that has streams it from memory, with no request), and ``await zs.task(task_id)``.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from ._common import Options, ServerProcess, Table, control, median, run_worker
from ._raw import RawClient

__all__ = ["CLIENTS", "KINDS", "run"]

SIZE = "376x376"
PROMPT = "calls benchmark"
WARM_UP = 20
#: The kinds of call, in the order they are made and shown.
KINDS = ("create", "task read", "image stream", "completed task: read + image")
#: The emulator's endpoints, in the order of a "requests/call" cell.
ENDPOINTS = ("create", "task", "image")


@dataclass(frozen=True)
class Params:
    """What one client process does: *calls* of each kind."""

    base_url: str
    api_key: str
    control_url: str
    calls: int


Call = Callable[[], Awaitable[object]]


def _measure(
    params: Params, kinds: dict[str, Call]
) -> Callable[[], Awaitable[dict[str, dict[str, Any]]]]:
    async def measure() -> dict[str, dict[str, Any]]:
        micros: dict[str, float] = {}
        requests: dict[str, list[float]] = {}
        for kind in KINDS:
            call = kinds[kind]
            for _ in range(WARM_UP):
                await call()
            before = control(params.control_url, "/counts")
            gc.collect()
            cpu = time.process_time()
            for _ in range(params.calls):
                await call()
            micros[kind] = (time.process_time() - cpu) / params.calls * 1e6
            after = control(params.control_url, "/counts")
            requests[kind] = [
                (after.get(name, 0) - before.get(name, 0)) / params.calls for name in ENDPOINTS
            ]
        return {"micros": micros, "requests": requests}

    return measure


async def sdk_client(raw: dict[str, Any]) -> dict[str, Any]:
    """Make the calls with the SDK."""
    from zimage_async import Session

    params = Params(**raw)
    async with Session(api_key=params.api_key, base_url=params.base_url) as zs:
        handle = await zs.submit(PROMPT, size=SIZE, seed=1)
        await handle.wait()  # completed, its image not downloaded: each stream fetches it

        async def stream() -> None:
            async for _ in handle.iter_bytes():
                pass

        async def resume() -> object:
            return await zs.task(handle.id)

        measure = _measure(
            params,
            {
                "create": lambda: zs.submit(PROMPT, size=SIZE, seed=1),
                "task read": handle.refresh,
                "image stream": stream,
                "completed task: read + image": resume,
            },
        )
        return await measure()


async def raw_client(raw: dict[str, Any]) -> dict[str, Any]:
    """Make the calls with the raw loop's create, GET of the task and GET of the image."""
    params = Params(**raw)
    async with RawClient(params.base_url, params.api_key) as client:
        task = await client.poll(await client.create(PROMPT, size=SIZE, seed=1), interval=0.05)
        task_id, url = task["id"], task["results"][0]

        async def resume() -> bytes:
            read = await client.get_task(task_id)
            return await client.fetch(read["results"][0])

        measure = _measure(
            params,
            {
                "create": lambda: client.create(PROMPT, size=SIZE, seed=1),
                "task read": lambda: client.get_task(task_id),
                "image stream": lambda: client.fetch(url),
                "completed task: read + image": resume,
            },
        )
        return await measure()


CLIENTS = {"sdk": sdk_client, "raw": raw_client}


def run(options: Options) -> list[Table]:
    """Alternate SDK and raw processes; return the per-call table."""
    micros: dict[str, dict[str, list[float]]] = {
        variant: {kind: [] for kind in KINDS} for variant in CLIENTS
    }
    sent: dict[str, dict[str, list[float]]] = {
        variant: {kind: [0.0] * len(ENDPOINTS) for kind in KINDS} for variant in CLIENTS
    }
    with ServerProcess({"task_duration": 0.05, "seed": options.seed}) as server:
        for _ in range(options.calls_rounds):
            for variant in ("sdk", "raw"):
                params = Params(
                    server.base_url, server.api_key, server.control_url, options.calls_each
                )
                result = run_worker("calls", variant, asdict(params), timeout=300)
                for kind in KINDS:
                    micros[variant][kind].append(result["micros"][kind])
                    for n, count in enumerate(result["requests"][kind]):
                        sent[variant][kind][n] += count / options.calls_rounds
    table = Table(
        f"6. Calls: client CPU per call, one call at a time ({options.calls_each} calls of "
        f"each kind per process, {options.calls_rounds} processes each, interleaved)",
        [
            "call",
            "zimage_async µs",
            "raw aiohttp µs",
            "SDK / raw",
            "requests/call",
            "µs per process",
        ],
    )
    differ = []
    for kind in KINDS:
        sdk, raw = median(micros["sdk"][kind]), median(micros["raw"][kind])
        spread = " ".join(f"{value:.0f}" for value in micros["sdk"][kind])
        spread += " / " + " ".join(f"{value:.0f}" for value in micros["raw"][kind])
        requests = [
            "/".join(f"{count:.2f}" for count in sent[variant][kind]) for variant in ("sdk", "raw")
        ]
        if requests[0] != requests[1]:
            differ.append(kind)
        table.rows.append(
            [kind, f"{sdk:.1f}", f"{raw:.1f}", f"{sdk / raw:.2f}x", " | ".join(requests), spread]
        )
    table.notes.append("medians over the processes; µs per process: the SDK's, then the raw loop's")
    table.notes.append(
        "raw: the create, the GET of the task and the GET of the image of the overhead "
        "workload's raw loop"
    )
    table.notes.append(
        "requests/call = create/task/image GETs per call, SDK | raw, counted by the emulator: "
        + (
            "the same requests per call on both sides"
            if not differ
            else f"they DIFFER for {', '.join(differ)}: those rows compare unlike work"
        )
    )
    return [table]
