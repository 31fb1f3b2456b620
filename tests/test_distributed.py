"""Many workers, one batch, on a real PostgreSQL: ``zimage batch`` processes sharing it.

Three ``zimage batch ... --journal postgresql://...`` processes work one batch of 300
prompts against one emulator (in this process, so its ledger is visible) that injects
faults; one worker is killed with SIGKILL midway. The two others take its items over
when their leases run out. Afterwards every prompt is saved exactly once, billed once,
and the spend is within the limit. A second test shows a limit stopping three workers
together. Figures (duration, what each worker did) go to ``distributed-figures.json``
in the test's tmp path and are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from zimage_async._journal import open_journal
from zimage_async.emulator import Emulator, FaultPlan, FaultRule

from ._postgres import PostgresServer

#: The emulator's price of one task (its ``usage.credits_reserved``).
PRICE = 0.026
PROMPTS = 300
#: Seconds a worker's items stay its own without renewal: short, so takeover is quick.
LEASE = "3"
#: The longest the whole run may take before the test fails (a bound, not a timing assert).
DEADLINE = 240.0


#: Creates between two scripted answers that leave a create uncertain: more than the three
#: workers have in flight (3 x 12), so that the one resend of an uncertain create (with
#: ``--resubmit-uncertain``) never meets the next one. Closer, a resend could land on it
#: and the item rightly end uncertain, failing the run by the script's timing alone.
UNCERTAIN_APART = 45


def _faults() -> FaultPlan:
    """429s and uncertain creates early on (scripted), and random faults on polls and images."""
    steps: list[str | FaultRule] = ["ok"] * (5 + 3 * UNCERTAIN_APART)
    for position in (5, 5 + UNCERTAIN_APART):
        steps[position] = "html_5xx_after_create"
    steps[5 + 2 * UNCERTAIN_APART] = "html_5xx"
    for position in (25, 70):
        steps[position] = FaultRule(kind="http_429", retry_after_seconds=0)
    return FaultPlan.script("create", steps) + FaultPlan.random(
        FaultRule(kind="html_5xx", endpoint="task", rate=0.02),
        FaultRule(kind="null_fields", endpoint="task", rate=0.05),
        FaultRule(kind="truncate_close", endpoint="image", rate=0.02),
    )


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """An emulator honouring idempotency keys, with short tasks and injected faults."""
    async with Emulator(task_duration=0.2, seed=11, idempotency="honour", faults=_faults()) as emu:
        yield emu


def _env(emu: Emulator) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZIMAGE_")}
    return {**env, "ZIMAGE_API_KEY": emu.api_key, "ZIMAGE_BASE_URL": emu.base_url}


class Worker:
    """One ``zimage batch`` process, its JSON lines collected as they come."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process
        self.lines: list[dict[str, object]] = []
        self.reading = asyncio.ensure_future(self._read())
        self.stderr = b""

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.lines.append(json.loads(line))

    @property
    def saved(self) -> int:
        return sum(1 for r in self.lines if r["event"] == "item" and r["status"] == "saved")

    @property
    def summary(self) -> dict[str, object] | None:
        last = self.lines[-1] if self.lines else None
        return last if last is not None and last["event"] == "summary" else None

    async def finish(self) -> int:
        assert self.process.stderr is not None
        self.stderr = await self.process.stderr.read()
        code = await self.process.wait()
        await self.reading
        return code


async def _start(name: str, emu: Emulator, *args: str | Path) -> Worker:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "zimage_async",
        "batch",
        *map(str, args),
        "--worker-id",
        name,
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(emu),
    )
    return Worker(name, process)


async def _held_by(url: str, worker_id: str) -> int:
    async with await open_journal(url) as journal:
        items = await journal.items("cats.txt")
    now = time.time()
    return sum(1 for i in items if i.claimed_by == worker_id and (i.lease_until or 0) > now)


async def _wait(workers: list[Worker]) -> list[int]:
    return list(await asyncio.wait_for(asyncio.gather(*(w.finish() for w in workers)), DEADLINE))


def _why(worker: Worker) -> str:
    """What a worker said of the items it did not save, its summary, and its last words."""
    unsaved = [r for r in worker.lines if r["event"] == "item" and r["status"] != "saved"]
    errors = [line for line in worker.stderr.decode().splitlines() if "warning" not in line]
    return f"{worker.name}: {unsaved[:5]} {worker.summary} {errors[-10:]}"


def _figures(path: Path, figures: dict[str, object]) -> None:
    path.write_text(json.dumps(figures, indent=2))
    print(f"\n{path}:\n{json.dumps(figures, indent=2)}")


async def test_three_workers_share_a_batch_and_a_killed_ones_items_are_taken_over(
    postgres: PostgresServer, emulator: Emulator, tmp_path: Path
) -> None:
    """300 prompts, three workers, one SIGKILLed: each prompt saved once and billed once."""
    url = postgres.create_database()
    prompts = tmp_path / "cats.txt"
    prompts.write_text("".join(f"a cat number {n}\n" for n in range(PROMPTS)))
    out = tmp_path / "out"
    limit = PROMPTS * PRICE * 1.25
    common: list[str | Path] = [
        prompts,
        "-o",
        out,
        "--journal",
        url,
        "--lease",
        LEASE,
        "--concurrency",
        "12",
    ]
    common += ["--max-credits", str(limit), "--resubmit-uncertain"]
    started = time.monotonic()
    workers = [await _start(f"w{n}", emulator, *common) for n in range(3)]
    victim = workers[0]
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not (victim.saved >= 15 and await _held_by(url, victim.name) > 0):
        assert loop.time() < end, "the first worker never saved items while holding others"
        assert victim.process.returncode is None, "the first worker ended before the kill"
        await asyncio.sleep(0.05)
    victim.process.send_signal(signal.SIGKILL)
    codes = await _wait(workers)
    duration = time.monotonic() - started
    assert codes[0] == -signal.SIGKILL
    assert codes[1:] == [0, 0], [_why(w) for w in workers[1:]]

    files = sorted(p.name for p in out.glob("*.png"))
    numbers = Counter(int(re.match(r"(\d+)-", name).group(1)) for name in files)  # type: ignore[union-attr]
    assert numbers == Counter(range(1, PROMPTS + 1)), "one file per prompt"
    billed = emulator.billed_counts(by="prompt")
    assert len(billed) == PROMPTS
    assert set(billed.values()) == {1}, "no prompt billed twice"
    async with await open_journal(url) as journal:
        items = await journal.items("cats.txt")
        records = await journal.records(batch_id="cats.txt")
        spent = await journal.spent(batch_id="cats.txt")
    assert all(item.settled for item in items)
    assert Counter(r.item_index for r in records if r.state.value == "saved") == Counter(
        range(PROMPTS)
    ), "the journal says each item saved once"
    assert spent.credits <= limit
    assert sum(billed.values()) * PRICE <= limit

    survivors: list[Any] = [w.summary["worker"] for w in workers[1:] if w.summary]
    assert sum(s["taken_over"] for s in survivors) > 0
    assert emulator.faults_injected.get("html_5xx_after_create", 0) >= 1
    _figures(
        tmp_path / "distributed-figures.json",
        {
            "prompts": PROMPTS,
            "duration_seconds": round(duration, 1),
            "killed": {"worker_id": victim.name, "saved_before_kill": victim.saved},
            "survivors": survivors,
            "billed": sum(billed.values()),
            "spent_credits": round(spent.credits, 3),
            "limit": limit,
            "faults": emulator.faults_injected,
        },
    )


async def test_a_spend_limit_stops_three_workers_together_at_the_limit(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """The database admits creates up to the limit for all workers; the rest are not sent."""
    url = postgres.create_database()
    prompts = tmp_path / "cats.txt"
    prompts.write_text("".join(f"a cat number {n}\n" for n in range(60)))
    limit = 20 * PRICE
    async with Emulator(task_duration=0.1, seed=12) as emu:
        args: list[str | Path] = [
            prompts,
            "-o",
            tmp_path / "out",
            "--journal",
            url,
            "--concurrency",
            "3",
        ]
        args += ["--max-credits", str(limit), "--lease", LEASE]
        workers = [await _start(f"w{n}", emu, *args) for n in range(3)]
        codes = await _wait(workers)
        billed = emu.billed_counts(by="prompt")
    assert codes == [3, 3, 3], [w.stderr.decode()[-2000:] for w in workers]
    async with await open_journal(url) as journal:
        spent = await journal.spent(batch_id="cats.txt")
        items = await journal.items("cats.txt")
    assert spent.credits <= limit + 1e-9
    assert 10 <= sum(billed.values()) <= 20
    assert set(billed.values()) == {1}
    stats: list[Any] = [w.summary["worker"] for w in workers if w.summary]
    assert sum(s["saved"] for s in stats) == sum(billed.values())
    assert sum(1 for item in items if not item.settled) == 60 - sum(billed.values())
    assert all("the batch stopped sending creates" in w.stderr.decode() for w in workers)
    _figures(
        tmp_path / "limit-figures.json",
        {"limit": limit, "billed": sum(billed.values()), "workers": stats},
    )
