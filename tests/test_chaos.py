"""Chaos runs: hundreds of generations through every kind of injected fault.

Part of the CI test run (marker ``chaos``; ``pytest -m chaos`` runs them alone). Two runs
are made once per test session and each promise is its own test over them:

* **keys honoured**: a batch of 300 prompts with a manifest, through every fault kind the
  emulator has (the documented ones and the gateway family's: proxy pages, typeless
  envelopes, pre-charge refusals, ``null`` fields, unframed image bodies cut short,
  trailing bytes, cancelled and link-less tasks), rerun with ``resubmit_uncertain`` until
  nothing is uncertain: every uncertain create resolves to its original task.
* **keys ignored**: a batch of 200 prompts against an emulator that ignores
  ``Idempotency-Key``, rerun once without ``resubmit_uncertain``: the SDK's own retries
  and reruns still bill no prompt twice.

The figures are printed at the end of the session (``-s`` shows them).
"""

from __future__ import annotations

import asyncio
import collections
import gc
import hashlib
import logging
import random
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

import attrs
import pytest

from zimage_async import (
    BatchItem,
    GenerationResult,
    NoResultsError,
    PollSchedule,
    RetryPolicy,
    Session,
    SubmissionUncertainError,
    TaskFailedError,
    ZImageError,
)
from zimage_async.emulator import Emulator, FaultPlan, FaultRule

pytestmark = pytest.mark.chaos

KEY = "sk-chaos-4f1b9e2d"
CONCURRENCY = 24
#: Batch reruns allowed until no item is uncertain any more (each rerun meets new faults).
MAX_RERUNS = 6

#: The documented faults, with rates that fault about a fifth of all requests.
DOCUMENTED = (
    FaultRule(kind="http_429", rate=0.03, retry_after_seconds=0),
    FaultRule(kind="http_500", rate=0.02),
    FaultRule(kind="http_502", rate=0.02),
    FaultRule(kind="http_503", rate=0.02, retry_after_seconds=0),
    FaultRule(kind="reset", rate=0.02),
    FaultRule(kind="http_500_after_create", endpoint="create", rate=0.01),
    FaultRule(kind="reset_after_create", endpoint="create", rate=0.01),
    FaultRule(kind="truncate", endpoint="image", rate=0.08),
    FaultRule(kind="redirect", endpoint="image", rate=0.04, redirect_host="localhost"),
    FaultRule(kind="malformed_json", rate=0.02),
    FaultRule(kind="slow", rate=0.02, delay_seconds=0.2),
    FaultRule(kind="unknown_fields", rate=0.03),
    FaultRule(kind="unknown_status", endpoint="task", rate=0.04),
)
#: What the gateway family sends beyond the documented page. (A 403 refusal is not in
#: the mix: it stops a batch at once, as it should - tests/test_recovery_batch.py.)
GATEWAY = (
    FaultRule(kind="html_5xx", rate=0.02, http_status=520),
    FaultRule(kind="html_5xx_after_create", endpoint="create", rate=0.01, http_status=524),
    FaultRule(kind="typeless_5xx", rate=0.01, http_status=503),
    FaultRule(kind="typeless_5xx_after_create", endpoint="create", rate=0.01, http_status=502),
    FaultRule(kind="http_402", endpoint="create", rate=0.01, error_code="quota_not_enough"),
    FaultRule(kind="null_fields", endpoint="task", rate=0.05, null_shape="absent"),
    FaultRule(kind="truncate_close", endpoint="image", rate=0.05, body_framing="close"),
    FaultRule(kind="trailing_garbage", endpoint="image", rate=0.02),
)
PLAN = FaultPlan.random(*DOCUMENTED, *GATEWAY)
KINDS = {rule.kind for rule in PLAN.rules}
#: The faults that bill a task and then destroy the create's answer.
AFTER_CREATE = (
    "http_500_after_create",
    "reset_after_create",
    "html_5xx_after_create",
    "typeless_5xx_after_create",
)
#: Rates alone might skip a rare kind in one run; these scripted faults come first.
EVERY_KIND_ONCE = (
    FaultPlan.script(
        "create",
        [
            FaultRule(kind="http_429", retry_after_seconds=0),
            *AFTER_CREATE,
            FaultRule(kind="http_402", error_code="quota_not_enough"),
        ],
    )
    + FaultPlan.script(
        "task",
        [
            "unknown_status",
            "malformed_json",
            "reset",
            FaultRule(kind="html_5xx", http_status=522),
            "typeless_5xx",
            "null_fields",
        ],
    )
    + FaultPlan.script(
        "image",
        [
            "truncate",
            FaultRule(kind="redirect", redirect_host="localhost"),
            "truncate_close",
            "trailing_garbage",
        ],
    )
)


def _prompts(count: int, seed: int) -> dict[str, float]:
    """*count* prompts with their task durations; a few end cancelled or without links."""
    rng = random.Random(seed)
    prompts = {}
    for n in range(count):
        prompt = f"chaos prompt {n}"
        if n % 60 == 7:
            prompt += " [[cancel]]"
        elif n % 75 == 11:
            prompt += " [[results:empty]]"
        prompts[prompt] = rng.uniform(0.05, 0.4)
    return prompts


def _session(emu: Emulator) -> Session:
    return Session(
        api_key=KEY,
        base_url=emu.base_url,
        poll=PollSchedule(wait_min=0.02, wait_max=0.1, timeout=60.0),
        retry=RetryPolicy(wait_initial=0.01, wait_max=0.05, max_attempts=10),
        max_connections=CONCURRENCY,
        seed=3,
    )


@attrs.frozen
class Run:
    """What one chaos run left behind, captured before its emulator stopped."""

    #: ``"honoured"`` or ``"ignored"``: what the emulator did with idempotency keys.
    mode: str
    #: The final outcome per prompt (a delivered result, saved paths, or the error).
    outcomes: Mapping[str, BatchItem | GenerationResult | ZImageError]
    #: Billed tasks: (task id, prompt, idempotency key), in billing order.
    ledger: tuple[tuple[str, str, str | None], ...]
    #: The SHA-256 of each billed task's image as the emulator served it.
    served: Mapping[str, bytes]
    faults: Mapping[str, int]
    requests: int
    image_requests_with_authorization: int
    image_requests: int
    log: str
    retries: int
    reruns: int
    warnings: tuple[str, ...]

    def billed_per_prompt(self) -> collections.Counter[str]:
        return collections.Counter(prompt for _, prompt, _ in self.ledger)

    def errors(self) -> list[ZImageError]:
        found = []
        for outcome in self.outcomes.values():
            error = outcome.error if isinstance(outcome, BatchItem) else outcome
            if isinstance(error, ZImageError):
                found.append(error)
        return found

    def figures(self) -> dict[str, object]:
        delivered = len(self.outcomes) - len(self.errors())
        return {
            "prompts": len(self.outcomes),
            "tasks billed": len(self.ledger),
            "delivered": delivered,
            "errors": dict(collections.Counter(type(e).__name__ for e in self.errors())),
            "reruns": self.reruns,
            "requests": self.requests,
            "faults injected": sum(self.faults.values()),
            "fault share": f"{sum(self.faults.values()) / self.requests:.1%}",
            "faults by kind": dict(sorted(self.faults.items())),
            "retries logged": self.retries,
        }


class _LogText(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def _capture(
    emu: Emulator, outcomes: Mapping[str, BatchItem | GenerationResult | ZImageError]
) -> dict[str, object]:
    ledger = tuple((e.task_id, e.prompt, e.idempotency_key) for e in emu.ledger)
    served = {}
    for task_id, prompt, _ in ledger:
        if "[[" not in prompt:
            served[task_id] = hashlib.sha256(await emu.image_bytes(task_id)).digest()
    image_requests = [r for r in emu.requests if r.endpoint == "image"]
    return {
        "outcomes": outcomes,
        "ledger": ledger,
        "served": served,
        "faults": dict(emu.faults_injected),
        "requests": sum(emu.request_counts.get(k, 0) for k in ("create", "task", "image")),
        "image_requests": len(image_requests),
        "image_requests_with_authorization": sum(
            r.header("Authorization") is not None for r in image_requests
        ),
    }


async def _batch_run(
    out: Path, *, prompts: Mapping[str, float], seed: int, mode: str
) -> tuple[dict[str, object], int]:
    """Run the batch, then rerun it until nothing is uncertain (or once, keys ignored).

    With keys honoured the reruns resubmit uncertain items with their stored keys; with
    keys ignored the one rerun resubmits nothing uncertain, so any second charge would be
    the SDK's own doing (a refusal that was not certain).
    """
    async with Emulator(
        api_keys=(KEY,),
        task_duration=lambda body: prompts[str(body["prompt"])],
        faults=EVERY_KIND_ONCE + PLAN,
        seed=seed,
        image_renderer="plain",
        idempotency="honour" if mode == "honoured" else "ignore",
    ) as emu:
        outcomes: dict[str, BatchItem | GenerationResult | ZImageError] = {}
        reruns = 0
        async with _session(emu) as session:
            for run in range(MAX_RERUNS + 1):
                async with session.generate_many(
                    list(prompts),
                    concurrency=CONCURRENCY,
                    output_dir=out,
                    manifest=out / "manifest.sqlite",
                    resubmit_uncertain=run > 0 and mode == "honoured",
                ) as batch:
                    async for item in batch:
                        outcomes[item.request.prompt] = item
                uncertain = any(isinstance(e, SubmissionUncertainError) for e in _errors(outcomes))
                if not uncertain or (mode == "ignored" and run == 1):
                    break
                reruns += 1
        return await _capture(emu, outcomes), reruns


def _errors(outcomes: Mapping[str, object]) -> list[object]:
    return [o.error if isinstance(o, BatchItem) else o for o in outcomes.values()]


def _run(make: str, tmp: Path) -> Run:
    handler = _LogText()
    logger = logging.getLogger("zimage_async")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    reruns = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if make == "honoured":
                prompts, seed = _prompts(300, seed=20261125), 7
            else:
                prompts, seed = _prompts(200, seed=20261130), 11
            captured, reruns = asyncio.run(_batch_run(tmp, prompts=prompts, seed=seed, mode=make))
            gc.collect()
        finally:
            logger.removeHandler(handler)
            logger.setLevel(old_level)
    log = "\n".join(handler.lines)
    return Run(
        mode=make,
        **captured,  # type: ignore[arg-type]
        log=log,
        retries=log.count("retrying"),
        reruns=reruns,
        warnings=tuple(f"{w.category.__name__}: {w.message}" for w in caught),
    )


def _made(mode: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    result = _run(mode, tmp_path_factory.mktemp(f"chaos-{mode}"))
    yield result
    print(f"\nchaos run figures (keys {mode}):")
    for name, value in result.figures().items():
        print(f"  {name:>16}: {value}")


@pytest.fixture(scope="module")
def honoured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """The batch run against an emulator that honours idempotency keys, with reruns."""
    yield from _made("honoured", tmp_path_factory)


@pytest.fixture(scope="module")
def ignored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """The ``generate`` run against an emulator that ignores idempotency keys."""
    yield from _made("ignored", tmp_path_factory)


@pytest.fixture(params=["honoured", "ignored"])
def run(request: pytest.FixtureRequest) -> Run:
    """Each chaos run in turn, for the promises that hold in both."""
    made: Run = request.getfixturevalue(str(request.param))
    return made


def test_only_documented_exceptions_escape(run: Run) -> None:
    """Every outcome is a delivery or one of the SDK's own exceptions, nothing else."""
    for error in run.errors():
        assert type(error).__module__ == "zimage_async._exceptions", repr(error)


def test_every_delivered_image_is_the_served_bytes(run: Run) -> None:
    """Each image handed out or saved is byte-for-byte what the emulator served."""
    checked = 0
    for outcome in run.outcomes.values():
        if isinstance(outcome, GenerationResult):
            digest = hashlib.sha256(outcome.image.data).digest()
            assert digest == run.served[outcome.task.id]
            checked += 1
        elif isinstance(outcome, BatchItem) and outcome.ok:
            assert outcome.task_id is not None
            for path in outcome.paths:
                assert hashlib.sha256(path.read_bytes()).digest() == run.served[outcome.task_id]
                checked += 1
    assert checked >= 0.7 * len(run.outcomes)  # not vacuous: most prompts delivered


def test_no_prompt_is_billed_twice(run: Run) -> None:
    """The ledger holds at most one task per prompt, across retries and reruns."""
    assert max(run.billed_per_prompt().values()) == 1


def test_every_billed_task_is_accounted_for(run: Run) -> None:
    """A billed task is delivered, or an error names it, or its create was left uncertain.

    With keys honoured nothing stays uncertain (the reruns resolved every one); with keys
    ignored exactly the tasks whose create answer a fault destroyed stay unknown.
    """
    named = set()
    for outcome in run.outcomes.values():
        if isinstance(outcome, GenerationResult):
            named.add(outcome.task.id)
        elif isinstance(outcome, BatchItem) and outcome.task_id is not None:
            named.add(outcome.task_id)
        elif isinstance(outcome, ZImageError):
            task_id = getattr(outcome, "task_id", None)
            if isinstance(task_id, str):
                named.add(task_id)
    unknown = [task_id for task_id, _, _ in run.ledger if task_id not in named]
    destroyed = sum(run.faults.get(kind, 0) for kind in AFTER_CREATE)
    if run.mode == "ignored":
        assert len(unknown) == destroyed
    else:
        assert unknown == []


def test_uncertain_creates_resolve_to_their_original_task_when_keys_are_honoured(
    honoured: Run,
) -> None:
    """After the reruns no item is uncertain, and each billed task is its prompt's item."""
    assert honoured.reruns >= 1  # the run did leave creates uncertain at first
    assert not any(isinstance(e, SubmissionUncertainError) for e in honoured.errors())
    task_of = {prompt: task_id for task_id, prompt, _ in honoured.ledger}
    for prompt, outcome in honoured.outcomes.items():
        assert isinstance(outcome, BatchItem)
        if prompt in task_of:
            assert outcome.task_id == task_of[prompt]


def test_tasks_that_end_without_images_are_typed(run: Run) -> None:
    """Cancelled tasks raise TaskFailedError(request_cancelled); link-less ones NoResultsError."""
    for prompt, outcome in run.outcomes.items():
        error = outcome.error if isinstance(outcome, BatchItem) else outcome
        if isinstance(error, SubmissionUncertainError):
            continue  # its create answer was destroyed: the task is billed but unknown
        if "[[cancel]]" in prompt and prompt in {p for _, p, _ in run.ledger}:
            assert isinstance(error, TaskFailedError), repr(error)
            assert error.code == "request_cancelled"
        if "[[results:empty]]" in prompt and prompt in {p for _, p, _ in run.ledger}:
            assert isinstance(error, NoResultsError), repr(error)


def test_the_run_met_every_fault_kind(run: Run) -> None:
    """Every fault kind was injected, and faults were at least 15 % of requests."""
    assert set(run.faults) == KINDS
    assert sum(run.faults.values()) >= 0.15 * run.requests


def test_no_secret_in_logs_or_at_the_image_host(run: Run) -> None:
    """The key is in no DEBUG log line, and no image request carried Authorization."""
    assert KEY not in run.log
    assert run.image_requests > 0
    assert run.image_requests_with_authorization == 0


def test_nothing_is_left_open(run: Run) -> None:
    """Collecting garbage after the run raised no ResourceWarning (nothing unclosed)."""
    assert not [w for w in run.warnings if w.startswith("ResourceWarning")]
