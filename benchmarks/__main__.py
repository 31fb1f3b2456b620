"""Run the benchmarks and print their tables: ``python -m benchmarks [--quick] [--only W]``."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from ._common import BenchmarkError, Options, Table

__all__ = ["main"]

WORKLOADS = ("overhead", "scale", "polling", "downloads", "imports", "calls", "journal")


def _runner(name: str) -> Callable[[Options], list[Table]]:
    if name == "overhead":
        from ._overhead import run
    elif name == "scale":
        from ._scale import run
    elif name == "polling":
        from ._polling import run
    elif name == "downloads":
        from ._downloads import run
    elif name == "calls":
        from ._calls import run
    elif name == "journal":
        from ._journal import run
    else:
        from ._imports import run
    return run


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark zimage_async against raw aiohttp loops on the local emulator.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, one round: a smoke test (< 1 min)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=WORKLOADS,
        metavar="WORKLOAD",
        help=f"run only this workload (repeatable): {', '.join(WORKLOADS)}",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        help=(
            "A/B rounds of every workload (default: overhead 9, scale 2, polling 3, "
            "downloads 9, calls 5, journal 5)"
        ),
    )
    parser.add_argument("--scale-tasks", type=int, help="concurrent tasks for 'scale' (10000)")
    parser.add_argument(
        "--scale-duration", type=float, help="task seconds for 'scale' (default 10)"
    )
    parser.add_argument("--seed", type=int, help="seed of the emulator and the durations")
    parser.add_argument(
        "--save-results", type=Path, metavar="FILE", help="also write the tables as JSON"
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="draw the SVG charts and raw.txt into DIR (needs matplotlib: the bench group)",
    )
    parser.add_argument(
        "--page", type=Path, metavar="FILE", help="with --report: rewrite this page's tables"
    )
    parser.add_argument(
        "--from-results",
        type=Path,
        metavar="FILE",
        help="run nothing: make the --report of a saved results file",
    )
    return parser


def _options(args: argparse.Namespace) -> Options:
    options = Options.quick() if args.quick else Options()
    changes = {
        field: value
        for field, value in (
            ("rounds", args.rounds),
            ("overhead_rounds", args.rounds),
            ("scale_rounds", args.rounds),
            ("download_rounds", args.rounds),
            ("calls_rounds", args.rounds),
            ("journal_rounds", args.rounds),
            ("scale_tasks", args.scale_tasks),
            ("scale_duration", args.scale_duration),
            ("seed", args.seed),
        )
        if value is not None
    }
    if any(not value > 0 for name, value in changes.items() if name != "seed"):
        raise SystemExit("--rounds, --scale-tasks and --scale-duration must be above 0")
    return dataclasses.replace(options, **changes)


def _header() -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"zimage-async {metadata.version('zimage-async')} benchmarks, {now}\n"
        f"{os.cpu_count()} cores ({platform.machine()}, {platform.system()} "
        f"{platform.release()}), Python {platform.python_version()}, "
        f"aiohttp {metadata.version('aiohttp')}"
    )


def _report(args: argparse.Namespace, results: dict[str, Any]) -> None:
    if args.save_results is not None:
        args.save_results.parent.mkdir(parents=True, exist_ok=True)
        args.save_results.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    if args.report is not None:
        from ._report import write_report

        for path in write_report(results, args.report, page=args.page):
            print(f"wrote {path}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen workloads in order and print a table for each."""
    args = _parser().parse_args(argv)
    if args.from_results is not None:
        from ._report import read_results

        _report(args, read_results(args.from_results))
        return 0
    options = _options(args)
    chosen = [name for name in WORKLOADS if not args.only or name in args.only]
    output: list[str] = []

    def emit(text: str) -> None:
        output.append(text)
        print(text, flush=True)

    emit(_header())
    emit(f"options: {options}\n")
    started = time.perf_counter()
    failed = False
    tables: list[dict[str, Any]] = []
    for name in chosen:
        began = time.perf_counter()
        try:
            made = _runner(name)(options)
        except BenchmarkError as exc:
            emit(f"{name}: FAILED: {exc}\n")
            failed = True
            continue
        for table in made:
            emit(table.render())
            tables.append({"workload": name, **dataclasses.asdict(table)})
        emit(f"  ({name}: {time.perf_counter() - began:.0f} s)\n")
    emit(f"total {time.perf_counter() - started:.0f} s")
    _report(args, {"header": output[0], "raw": "\n".join(output) + "\n", "tables": tables})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
