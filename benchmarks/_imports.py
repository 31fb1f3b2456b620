"""Workload 5, import time: ``import zimage_async`` against ``import aiohttp`` alone.

Each statement runs in a fresh interpreter (``python -c``), the three interleaved and
repeated; the bare interpreter (``pass``) is measured the same way and subtracted. The
bytecode cache is allowed (``PYTHONDONTWRITEBYTECODE`` unset) and warmed first, as for an
installed package.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from ._common import ROOT, Options, Table, median, python_env

__all__ = ["run"]

_LIMIT_SECONDS = 60.0  # the most one interpreter may take before it is killed

STATEMENTS = (
    ("python (bare interpreter)", "pass"),
    ("import aiohttp", "import aiohttp"),
    ("import zimage_async", "import zimage_async"),
)


def _once(code: str) -> float:
    """Seconds a fresh interpreter takes to run *code*; it is killed after 60 s.

    The child is waited for with a blocking wait and a watchdog, not with
    ``subprocess.run(..., timeout=...)``: that waits by sleeping in growing steps of up to
    50 ms, which rounds every figure up to the end of a step.
    """
    started = time.perf_counter()
    process = subprocess.Popen(  # noqa: S603 (our own interpreter)
        [sys.executable, "-c", code], cwd=ROOT, env=python_env(bytecode=True)
    )
    watchdog = threading.Timer(_LIMIT_SECONDS, process.kill)
    watchdog.start()
    try:
        returncode = process.wait()
        elapsed = time.perf_counter() - started
    finally:
        watchdog.cancel()
    if returncode != 0:
        raise subprocess.CalledProcessError(returncode, [sys.executable, "-c", code])
    return elapsed


def run(options: Options) -> list[Table]:
    """Time the imports (interleaved, repeated); return the import table."""
    for _, code in STATEMENTS:
        _once(code)  # warm the file-system cache and the bytecode
    times: dict[str, list[float]] = {code: [] for _, code in STATEMENTS}
    for _ in range(options.import_repeats):
        for _, code in STATEMENTS:
            times[code].append(_once(code) * 1000)
    bare = min(times["pass"])
    table = Table(
        f"5. Import time: fresh interpreter per run, {options.import_repeats} runs each, "
        "interleaved",
        ["statement", "min ms", "median ms", "min - bare ms"],
    )
    for label, code in STATEMENTS:
        table.rows.append(
            [
                label,
                f"{min(times[code]):.1f}",
                f"{median(times[code]):.1f}",
                "" if code == "pass" else f"{min(times[code]) - bare:.1f}",
            ]
        )
    own = min(times["import zimage_async"]) - bare
    base = min(times["import aiohttp"]) - bare
    table.notes.append(
        f"zimage_async costs {own / base:.2f}x aiohttp's import "
        f"({own - base:.1f} ms on top of it); no target"
    )
    return [table]
