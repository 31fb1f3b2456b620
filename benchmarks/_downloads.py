"""Workload 4, downloads: big images streamed to disk, throughput and memory.

The emulator pads every PNG to about 20 MB (one image, cached by the emulator, so the
server only copies bytes). Each client process creates its tasks and waits for them,
saves one image as a warm-up, resets its peak RSS (``/proc/self/clear_refs``), notes its
RSS, then saves the images one after another into a temporary directory (each file
deleted once written): the SDK with ``handle.save(folder)``, the raw loop with
``iter_chunked(64 KiB)`` into a temporary file renamed into place. Throughput is the
median over all images of size / time for that image (robust against the kernel's
write-back pauses, which hit single images); the per-run figure is bytes / run time.
The RSS rise is the peak during the saves minus the RSS before them.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
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
PROMPT = "download benchmark"
MIB = 1024 * 1024
#: The least throughput the SDK must reach, as a multiple of the raw loop's.
TARGET_THROUGHPUT_RATIO = 0.95


@dataclass(frozen=True)
class Params:
    """What one download run does."""

    base_url: str
    api_key: str
    images: int


@dataclass(frozen=True)
class Result:
    """Bytes saved, seconds taken, and the RSS before and at peak."""

    bytes_saved: int
    seconds: float
    image_seconds: list[float]
    baseline_rss: int
    peak_rss: int
    peak_reset: bool


async def _measure(params: Params, save: Callable[[int, Path], Awaitable[Path]]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="zimage-bench-") as folder:
        path = await save(0, Path(folder))  # warm-up
        path.unlink()
        peak_reset = reset_peak_rss()
        baseline = rss_bytes()
        total = 0
        each: list[float] = []
        started = time.perf_counter()
        for index in range(1, params.images + 1):
            began = time.perf_counter()
            path = await save(index, Path(folder))
            each.append(time.perf_counter() - began)
            total += path.stat().st_size
            path.unlink()
        seconds = time.perf_counter() - started
        peak = peak_rss_bytes()
    return asdict(Result(total, seconds, each, baseline, peak, peak_reset))


async def sdk_client(raw: dict[str, Any]) -> dict[str, Any]:
    """Create the tasks, wait for them, then ``await handle.save(folder)`` each."""
    from zimage_async import Session

    params = Params(**raw)
    async with Session(api_key=params.api_key, base_url=params.base_url) as zs:
        handles = await asyncio.gather(
            *(zs.submit(PROMPT, size=SIZE, seed=1) for _ in range(params.images + 1))
        )
        await asyncio.gather(*(handle.wait() for handle in handles))

        async def save(index: int, folder: Path) -> Path:
            (path,) = await handles[index].save(folder)
            return path

        return await _measure(params, save)


async def raw_client(raw: dict[str, Any]) -> dict[str, Any]:
    """Create the tasks, poll them, then stream each image to a file."""
    params = Params(**raw)
    async with RawClient(params.base_url, params.api_key) as client:
        created = await asyncio.gather(
            *(client.create(PROMPT, size=SIZE, seed=1) for _ in range(params.images + 1))
        )
        tasks = await asyncio.gather(*(client.poll(t, interval=0.2) for t in created))

        async def save(index: int, folder: Path) -> Path:
            task = tasks[index]
            return await client.save(task["results"][0], folder, f"{task['id']}-0.png")

        return await _measure(params, save)


CLIENTS = {"sdk": sdk_client, "raw": raw_client}


def run(options: Options) -> list[Table]:
    """Interleave SDK and raw runs (A B A B); return the downloads table."""
    results: dict[str, list[dict[str, Any]]] = {"sdk": [], "raw": []}
    padding = options.download_megabytes * 1_000_000
    config = {"task_duration": 0.2, "image_padding_bytes": padding, "seed": options.seed}
    with ServerProcess(config) as server:
        params = Params(server.base_url, server.api_key, options.download_images)
        for _ in range(options.download_rounds):
            for variant in ("sdk", "raw"):
                results[variant].append(
                    run_worker("downloads", variant, asdict(params), timeout=180)
                )
    size = results["sdk"][0]["bytes_saved"] / options.download_images
    table = Table(
        f"4. Downloads: {options.download_images} images of {size / 1e6:.1f} MB saved one "
        f"after another, {options.download_rounds} run(s) each, interleaved",
        [
            "client",
            "MB/s per image (median)",
            "MB/s per run",
            "RSS before MiB",
            "peak RSS rise MiB",
        ],
    )
    speed: dict[str, float] = {}
    rise: dict[str, float] = {}
    for variant, label in (("sdk", "zimage_async"), ("raw", "raw aiohttp loop")):
        runs = results[variant]
        speeds = [r["bytes_saved"] / r["seconds"] / 1e6 for r in runs]
        speed[variant] = median([size / t / 1e6 for r in runs for t in r["image_seconds"]])
        rise[variant] = max((r["peak_rss"] - r["baseline_rss"]) / MIB for r in runs)
        table.rows.append(
            [
                label,
                f"{speed[variant]:.0f}",
                " ".join(f"{s:.0f}" for s in speeds),
                f"{median([r['baseline_rss'] / MIB for r in runs]):.1f}",
                f"{rise[variant]:.2f}",
            ]
        )
    ratio = speed["sdk"] / speed["raw"]
    table.notes.append(
        f"SDK / raw throughput (median per image): {ratio:.2f}x (target >= "
        f"{TARGET_THROUGHPUT_RATIO:g}x: {'met' if ratio >= TARGET_THROUGHPUT_RATIO else 'MISSED'}"
        f"); SDK peak RSS rise (worst run) "
        f"{rise['sdk']:.2f} MiB (target < 5 MB: {'met' if rise['sdk'] < 5 else 'MISSED'})"
    )
    if not all(r["peak_reset"] for runs in results.values() for r in runs):
        table.notes.append("peak RSS could not be reset: the rise includes the warm-up")
    return [table]
