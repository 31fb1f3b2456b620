"""A refused resend of an uncertain create leaves it uncertain, with its key.

A create whose answer a fault destroyed may have made (and billed) a task. Sending it
again with its original ``Idempotency-Key`` returns that task where the gateway honours
keys - unless the gateway refuses the resend first (a quota check before the key is
looked up, as the emulator's ``http_402`` does). That refusal says nothing about the
first send: the item stays uncertain, under the same key, and a later resend finds the
original task. Nothing is billed twice.
"""

from __future__ import annotations

from pathlib import Path

from zimage_async import (
    BatchItem,
    InsufficientQuotaError,
    Session,
    SubmissionUncertainError,
)
from zimage_async._journal import JournalState, open_journal
from zimage_async.emulator import Emulator, FaultPlan, FaultRule

from .test_recovery import _session

QUOTA = FaultRule(kind="http_402", error_code="quota_not_enough")


async def _run_once(zs: Session, manifest: Path, **options: object) -> BatchItem:
    async with zs.generate_many(
        ["a lighthouse"],
        output_dir=manifest.parent / "out",
        manifest=manifest,
        **options,  # type: ignore[arg-type]
    ) as batch:
        (item,) = [item async for item in batch]
    return item


def _check_still_uncertain(item: BatchItem, key: str | None) -> None:
    error = item.error
    assert isinstance(error, SubmissionUncertainError), repr(error)
    assert isinstance(error.cause, InsufficientQuotaError)
    assert error.idempotency_key == key
    assert error.task_id is None
    assert "may" in str(error) and str(key) in str(error)


async def test_a_rerun_whose_resend_is_refused_keeps_the_item_uncertain(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Billed, answer lost; the rerun's resend is refused: still uncertain, same key."""
    manifest = tmp_path / "batch.sqlite"
    emulator.faults = FaultPlan.script("create", ["http_500_after_create"])
    async with _session(emulator) as zs:
        first = await _run_once(zs, manifest)
        assert isinstance(first.error, SubmissionUncertainError)
        key = first.error.idempotency_key
        assert key is not None and len(emulator.ledger) == 1

        emulator.faults = FaultPlan.script("create", [QUOTA])
        second = await _run_once(zs, manifest, resubmit_uncertain=True)
        _check_still_uncertain(second, key)
        async with await open_journal(manifest) as journal:
            record = await journal.get(key)
        assert record is not None and record.state is JournalState.UNCERTAIN

        emulator.faults = None
        third = await _run_once(zs, manifest, resubmit_uncertain=True)
    assert third.ok, third.error
    assert third.task_id == emulator.ledger[0].task_id
    assert len(emulator.ledger) == 1
    assert [entry.idempotency_key for entry in emulator.ledger] == [key]


async def test_a_resend_refused_within_one_run_keeps_the_item_uncertain(
    emulator: Emulator, tmp_path: Path
) -> None:
    """resubmit_uncertain's own second send, refused after a lost answer: still uncertain."""
    manifest = tmp_path / "batch.sqlite"
    emulator.faults = FaultPlan.script("create", ["reset_after_create", QUOTA])
    async with _session(emulator) as zs:
        item = await _run_once(zs, manifest, resubmit_uncertain=True)
        assert isinstance(item.error, SubmissionUncertainError)
        key = item.error.idempotency_key
        _check_still_uncertain(item, key)
        again = await _run_once(zs, manifest, resubmit_uncertain=True)
    assert again.ok, again.error
    assert again.task_id == emulator.ledger[0].task_id
    assert len(emulator.ledger) == 1


async def test_recover_whose_resend_is_refused_keeps_the_create_uncertain(
    emulator: Emulator, tmp_path: Path
) -> None:
    """recover(resubmit_uncertain=True), refused: the record stays uncertain and listed."""
    journal = tmp_path / "j.sqlite"
    key = "order-0042-image-0001"
    emulator.faults = FaultPlan.script("create", ["typeless_5xx_after_create"])
    async with _session(emulator, journal) as zs:
        try:
            await zs.submit("a lighthouse", idempotency_key=key)
        except SubmissionUncertainError:
            pass
        else:  # pragma: no cover - the fault makes the answer uncertain
            raise AssertionError("the create's answer was not lost")
        assert len(emulator.ledger) == 1

        emulator.faults = FaultPlan.script("create", [QUOTA])
        assert await zs.recover(resubmit_uncertain=True) == []
        unfinished = await zs.unfinished()
        assert [(r.key, r.state) for r in unfinished] == [(key, JournalState.UNCERTAIN)]

        emulator.faults = None
        handles = await zs.recover(resubmit_uncertain=True)
        assert [h.id for h in handles] == [emulator.ledger[0].task_id]
    assert len(emulator.ledger) == 1


async def test_resubmit_whose_resend_is_refused_stays_uncertain(
    zs: Session, emulator: Emulator
) -> None:
    """Session.resubmit, refused: SubmissionUncertainError again, resent, same key."""
    emulator.faults = FaultPlan.script("create", ["html_5xx_after_create", QUOTA])
    try:
        await zs.submit("a lighthouse")
    except SubmissionUncertainError as exc:
        first = exc
    else:  # pragma: no cover - the fault makes the answer uncertain
        raise AssertionError("the create's answer was not lost")
    assert not first.resent
    try:
        await zs.resubmit(first)
    except SubmissionUncertainError as exc:
        again = exc
    else:  # pragma: no cover - the script refuses the resend
        raise AssertionError("the resend was not refused")
    assert again.resent
    assert again.idempotency_key == first.idempotency_key
    assert isinstance(again.cause, InsufficientQuotaError)
    assert again.__cause__ is again.cause
    handle = await zs.resubmit(again)
    assert handle.id == emulator.ledger[0].task_id
    assert len(emulator.ledger) == 1
