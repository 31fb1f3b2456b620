"""Chaos run: hundreds of generations through every kind of injected fault.

Part of the CI test run (marker ``chaos``; ``pytest -m chaos`` runs it alone). It checks
the promises of the core as figures: every image the SDK hands over is byte-identical to
what the service served, no prompt is billed twice by a retry, every billed task is
either delivered or reported as uncertain, and nothing but the documented exceptions
escapes. The figures are printed at the end.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import hashlib
import logging
import random
from collections.abc import Mapping

import pytest

from zimage_async import (
    GenerationResult,
    PollSchedule,
    RetryPolicy,
    Session,
    SubmissionUncertainError,
    ZImageError,
)
from zimage_async.emulator import Emulator, FaultPlan, FaultRule

pytestmark = pytest.mark.chaos

TASKS = 300
CONCURRENCY = 24
KEY = "sk-chaos-4f1b9e2d"

#: Every fault kind, with rates that fault about a fifth of all requests.
PLAN = FaultPlan.random(
    FaultRule(kind="http_429", rate=0.03, retry_after_seconds=0),
    FaultRule(kind="http_500", rate=0.02),
    FaultRule(kind="http_502", rate=0.02),
    FaultRule(kind="http_503", rate=0.02, retry_after_seconds=0),
    FaultRule(kind="reset", rate=0.02),
    FaultRule(kind="http_500_after_create", endpoint="create", rate=0.01),
    FaultRule(kind="reset_after_create", endpoint="create", rate=0.01),
    FaultRule(kind="truncate", endpoint="image", rate=0.10),
    FaultRule(kind="redirect", endpoint="image", rate=0.05, redirect_host="localhost"),
    FaultRule(kind="malformed_json", rate=0.02),
    FaultRule(kind="slow", rate=0.02, delay_seconds=0.2),
    FaultRule(kind="unknown_fields", rate=0.03),
    FaultRule(kind="unknown_status", endpoint="task", rate=0.05),
)
KINDS = {rule.kind for rule in PLAN.rules}
#: Rates alone might skip a rare kind in one run; these scripted faults come first.
EVERY_KIND_ONCE = (
    FaultPlan.script(
        "create",
        [
            FaultRule(kind="http_429", retry_after_seconds=0),
            "http_500_after_create",
            "reset_after_create",
        ],
    )
    + FaultPlan.script("task", ["unknown_status", "malformed_json", "reset"])
    + FaultPlan.script("image", ["truncate", FaultRule(kind="redirect", redirect_host="localhost")])
)


def _duration(rng: random.Random) -> float:
    return rng.uniform(0.05, 0.4)


async def _one(
    session: Session, gate: asyncio.Semaphore, prompt: str
) -> GenerationResult | ZImageError:
    async with gate:
        try:
            return await session.generate(prompt, size="1:1")
        except SubmissionUncertainError as exc:
            if exc.task_id is None:
                return exc
            # The garbled answer named its task: resume it instead of resubmitting.
            return await session.task(exc.task_id).result()
        except ZImageError as exc:
            return exc


def _figures(
    emu: Emulator, outcomes: list[GenerationResult | ZImageError], retries: int
) -> Mapping[str, object]:
    requests = sum(emu.request_counts.get(k, 0) for k in ("create", "task", "image"))
    faults = sum(emu.faults_injected.values())
    errors = collections.Counter(type(o).__name__ for o in outcomes if isinstance(o, ZImageError))
    return {
        "tasks submitted": len(outcomes),
        "tasks billed": len(emu.ledger),
        "delivered": sum(isinstance(o, GenerationResult) for o in outcomes),
        "billed, id lost": len(emu.ledger) - sum(isinstance(o, GenerationResult) for o in outcomes),
        "errors": dict(errors),
        "requests": requests,
        "faults injected": faults,
        "fault share": f"{faults / requests:.1%}",
        "faults by kind": dict(sorted(emu.faults_injected.items())),
        "retries logged": retries,
    }


async def test_chaos_run_loses_nothing_and_bills_once(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """300 generations through 20 % faults: exact bytes, single billing, typed errors only."""
    rng = random.Random(20261125)
    durations = {f"chaos prompt {n}": _duration(rng) for n in range(TASKS)}
    caplog.set_level(logging.DEBUG, logger="zimage_async")
    async with Emulator(
        api_keys=(KEY,),
        task_duration=lambda body: durations[str(body["prompt"])],
        faults=EVERY_KIND_ONCE + PLAN,
        seed=7,
        image_renderer="plain",
    ) as emu:
        async with Session(
            api_key=KEY,
            base_url=emu.base_url,
            poll=PollSchedule(wait_min=0.02, wait_max=0.1, timeout=60.0),
            retry=RetryPolicy(wait_initial=0.01, wait_max=0.05, max_attempts=10),
            max_connections=CONCURRENCY,
            seed=3,
        ) as session:
            gate = asyncio.Semaphore(CONCURRENCY)
            outcomes = await asyncio.gather(*(_one(session, gate, p) for p in durations))

        # 1. Only the documented exception types, and never for a task we could resume.
        for outcome in outcomes:
            assert isinstance(outcome, (GenerationResult, ZImageError)), type(outcome)
            if isinstance(outcome, ZImageError):
                assert type(outcome).__module__ == "zimage_async._exceptions"
                assert isinstance(outcome, SubmissionUncertainError), repr(outcome)

        # 2. Every delivered image is byte-for-byte what the service served.
        delivered = [o for o in outcomes if isinstance(o, GenerationResult)]
        for result in delivered:
            served = await emu.image_bytes(result.task.id)
            assert hashlib.sha256(result.image.data).digest() == hashlib.sha256(served).digest()

        # 3. No prompt billed twice; every billed task delivered or reported uncertain.
        billed = collections.Counter(str(e.request_body["prompt"]) for e in emu.ledger)
        assert max(billed.values()) == 1
        delivered_ids = {r.task.id for r in delivered}
        unknown = [o for o in outcomes if isinstance(o, SubmissionUncertainError)]
        lost = [e for e in emu.ledger if e.task_id not in delivered_ids]
        assert len(lost) <= len(unknown)
        # Exactly the tasks whose create answer was destroyed after billing stay unknown.
        destroyed = sum(
            emu.faults_injected.get(k, 0) for k in ("http_500_after_create", "reset_after_create")
        )
        assert len(lost) == destroyed

        # 4. The run really was chaotic: every kind, at least 15 % of requests.
        figures = _figures(
            emu, list(outcomes), sum("retrying" in r.message for r in caplog.records)
        )
        requests = int(str(figures["requests"]))
        assert set(emu.faults_injected) == KINDS
        assert sum(emu.faults_injected.values()) >= 0.15 * requests

        # 5. Secrets: not in any log line; Authorization never reached the image origin.
        assert KEY not in caplog.text
        image_requests = [r for r in emu.requests if r.endpoint == "image"]
        assert image_requests and all(r.header("Authorization") is None for r in image_requests)

    # 6. Nothing left open: collecting garbage raises no ResourceWarning (warnings are errors).
    gc.collect()
    with capsys.disabled():
        print("\nchaos run figures:")
        for name, value in figures.items():
            print(f"  {name:>16}: {value}")
