"""Shared pieces: statistics, memory readings, tables, and the server and worker processes."""

from __future__ import annotations

import json
import math
import os
import selectors
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "ROOT",
    "BenchmarkError",
    "Options",
    "ServerProcess",
    "Table",
    "control",
    "mean",
    "median",
    "p95",
    "peak_rss_bytes",
    "python_env",
    "reset_peak_rss",
    "rss_bytes",
    "run_worker",
    "start_workers",
]

ROOT = Path(__file__).resolve().parent.parent
_SERVER_START_SECONDS = 30.0
_SERVER_STOP_SECONDS = 10.0


class BenchmarkError(RuntimeError):
    """A server or worker process failed; the message carries its output."""


@dataclass(frozen=True)
class Options:
    """Sizes of every workload; ``quick()`` gives a smoke-test run of under a minute."""

    rounds: int = 3
    overhead_rounds: int = 9
    overhead_tasks: int = 300
    scale_tasks: int = 10_000
    scale_duration: float = 10.0
    scale_rounds: int = 2
    polling_tasks: int = 100
    download_images: int = 10
    download_rounds: int = 9
    download_megabytes: int = 20
    import_repeats: int = 15
    calls_rounds: int = 5
    calls_each: int = 2000
    journal_sizes: tuple[int, ...] = (1_000, 100_000)
    journal_rounds: int = 5
    journal_begins: int = 200
    seed: int = 2026

    @classmethod
    def quick(cls) -> Options:
        """Small sizes: every workload once, in well under a minute."""
        return cls(
            rounds=1,
            overhead_rounds=1,
            overhead_tasks=60,
            scale_tasks=500,
            scale_duration=3.0,
            scale_rounds=1,
            polling_tasks=20,
            download_images=2,
            download_rounds=1,
            import_repeats=5,
            calls_rounds=1,
            calls_each=100,
            journal_sizes=(100, 2_000),
            journal_rounds=1,
            journal_begins=20,
        )


# -- statistics --------------------------------------------------------------------------


def mean(values: Sequence[float]) -> float:
    """The arithmetic mean (NaN for no values)."""
    return statistics.fmean(values) if values else math.nan


def median(values: Sequence[float]) -> float:
    """The median (NaN for no values)."""
    return statistics.median(values) if values else math.nan


def p95(values: Sequence[float]) -> float:
    """The 95th percentile by the nearest-rank method (NaN for no values)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


# -- memory of this process (Linux /proc) ------------------------------------------------


def _status_kib(name: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    raise BenchmarkError(f"/proc/self/status has no {name} line")


def rss_bytes() -> int:
    """This process's resident set size now, in bytes."""
    return _status_kib("VmRSS") * 1024


def peak_rss_bytes() -> int:
    """This process's peak resident set size (since start or the last reset), in bytes."""
    return _status_kib("VmHWM") * 1024


def reset_peak_rss() -> bool:
    """Reset the peak RSS to the current RSS (Linux 4.0+); return whether it worked."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")
    except OSError:
        return False
    return True


# -- tables ------------------------------------------------------------------------------


@dataclass
class Table:
    """A titled plain-text table, with notes printed under it."""

    title: str
    headers: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        """The table as aligned text: first column left-aligned, the others right."""
        widths = [len(h) for h in self.headers]
        for row in self.rows:
            widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

        def line(cells: Sequence[str]) -> str:
            parts = [
                cell.ljust(width) if i == 0 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
            ]
            return "  ".join(parts).rstrip()

        rule = "  ".join("-" * w for w in widths)
        out = [self.title, "=" * len(self.title), line(self.headers), rule]
        out += [line(row) for row in self.rows]
        out += [f"  {note}" for note in self.notes]
        return "\n".join(out)


# -- processes ---------------------------------------------------------------------------


def _python(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def python_env(*, bytecode: bool = False) -> dict[str, str]:
    """The environment of our subprocesses: this checkout importable, no API settings.

    With *bytecode*, ``PYTHONDONTWRITEBYTECODE`` is dropped so that imports are cached
    the way an installed package is.
    """
    env = dict(os.environ)
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("ZIMAGE_API_KEY", None)
    env.pop("ZIMAGE_BASE_URL", None)
    return env


def control(control_url: str, path: str) -> Any:
    """GET a control path of the emulator process at *control_url*; return its JSON."""
    with urllib.request.urlopen(control_url + path, timeout=60) as reply:  # noqa: S310
        return json.loads(reply.read())


class ServerProcess:
    """The emulator in its own process (``benchmarks._server``), with a control endpoint.

    Use as a context manager; :attr:`base_url`, :attr:`api_key` and :meth:`control` are
    available inside.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._config = dict(config)
        self._process: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.api_key = ""
        #: The control endpoint (``/tasks``, ``/counts``), for worker processes too.
        self.control_url = ""

    def __enter__(self) -> ServerProcess:
        self._process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
            _python("benchmarks._server", json.dumps(self._config)),
            stdout=subprocess.PIPE,
            text=True,
            env=python_env(),
            cwd=ROOT,
        )
        assert self._process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout=_SERVER_START_SECONDS):
                self._stop()
                raise BenchmarkError("the emulator process did not start in time")
        line = self._process.stdout.readline()
        if not line:
            self._stop()
            raise BenchmarkError("the emulator process exited before announcing its URLs")
        announced = json.loads(line)
        self.base_url = str(announced["base_url"])
        self.api_key = str(announced["api_key"])
        self.control_url = str(announced["control_url"])
        return self

    def control(self, path: str) -> Any:
        """GET a control path (``/tasks``, ``/counts``) and return its JSON."""
        return control(self.control_url, path)

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=_SERVER_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()


def _worker_command(workload: str, variant: str, params: Mapping[str, Any]) -> list[str]:
    return _python("benchmarks._worker", workload, variant, json.dumps(dict(params)))


def _result(command: Sequence[str], code: int, stdout: str, stderr: str) -> dict[str, Any]:
    lines = stdout.strip().splitlines()
    if code != 0 or not lines:
        raise BenchmarkError(
            f"{' '.join(command[3:5])} exited with {code}:\n{stderr[-3000:]}{stdout[-1000:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def run_worker(
    workload: str, variant: str, params: Mapping[str, Any], *, timeout: float
) -> dict[str, Any]:
    """Run one client measurement in a fresh process; return the JSON it printed last."""
    command = _worker_command(workload, variant, params)
    try:
        done = subprocess.run(  # noqa: S603 (our own interpreter and module)
            command, capture_output=True, text=True, timeout=timeout, env=python_env(), cwd=ROOT
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkError(f"{workload} {variant} took over {timeout:g} s") from exc
    return _result(command, done.returncode, done.stdout, done.stderr)


def start_workers(
    jobs: Sequence[tuple[str, str, Mapping[str, Any]]], *, timeout: float
) -> list[dict[str, Any]]:
    """Run several client processes at the same time; return their results in order."""
    commands = [_worker_command(*job) for job in jobs]
    processes = [
        subprocess.Popen(  # noqa: S603 (our own interpreter and module)
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=python_env(),
            cwd=ROOT,
        )
        for command in commands
    ]
    deadline = time.monotonic() + timeout
    results: list[dict[str, Any]] = []
    try:
        for command, process in zip(commands, processes, strict=True):
            left = max(0.1, deadline - time.monotonic())
            stdout, stderr = process.communicate(timeout=left)
            results.append(_result(command, process.returncode, stdout, stderr))
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkError(f"workers took over {timeout:g} s") from exc
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    return results
