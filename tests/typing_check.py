"""Static typing checks of the public API: mypy --strict reads this file, pytest does not.

Each ``assert_type`` states the type a user's editor and type checker will see; a change
that loosens one (to ``Any``, say) fails the typecheck session.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from typing_extensions import assert_type

import zimage_async
import zimage_async.emulator
from zimage_async import (
    GenerationResult,
    Image,
    Session,
    Task,
    TaskHandle,
    TaskStatus,
)


async def typed_usage() -> None:
    """Exercise the documented shape of the API under the type checker."""
    async with Session(api_key="k", base_url="https://api.example") as zs:
        assert_type(zs, Session)
        handle = await zs.submit("a cute cat", size="16:9", seed=7)
        assert_type(handle, TaskHandle)
        assert_type(handle.id, str)
        assert_type(handle.status, TaskStatus | None)
        assert_type(handle.progress, int | None)
        assert_type(handle.task, Task | None)
        assert_type(handle.expires_at, float | None)
        result = await handle
        assert_type(result, GenerationResult)
        assert_type(result.images[0], Image)
        assert_type(result.images[0].data, bytes)
        assert_type(await handle.wait(timeout=5.0), Task)
        assert_type(await handle.save("out/"), list[Path])
        async for task in handle.updates():
            assert_type(task, Task)
        async for chunk in handle.iter_bytes():
            assert_type(chunk, bytes)
        many = await asyncio.gather(*(zs.generate(p) for p in ["a", "b"]))
        assert_type(many, list[GenerationResult])
        assert_type(zs.task("task-unified-1-a"), TaskHandle)
        assert_type(await zs.get_task("task-unified-1-a"), Task)


def typed_errors(exc: zimage_async.ZImageError) -> None:
    """Error attributes are typed."""
    if isinstance(exc, zimage_async.APIError):
        assert_type(exc.status, int)
        assert_type(exc.retry_after, float | None)
    if isinstance(exc, zimage_async.TaskFailedError):
        assert_type(exc.code, str)
        assert_type(exc.resubmit_may_help, bool)
    if isinstance(exc, zimage_async.InvalidRequestError):
        assert_type(exc.field, str)
    if isinstance(exc, zimage_async.SubmissionUncertainError):
        assert_type(exc.request, zimage_async.GenerationRequest | None)
        assert_type(exc.idempotency_key, str | None)
    if isinstance(exc, zimage_async.NoResultsError):
        assert_type(exc.task, Task | None)


async def typed_journal(zs: Session) -> None:
    """What the journal's methods return is importable from the package, to annotate."""
    records = await zs.unfinished()
    assert_type(records, list[zimage_async.JournalRecord])
    assert_type(records[0].state, zimage_async.JournalState)
    assert_type(await zs.spent(), zimage_async.Spend)


def misspelled_names_are_errors() -> None:
    """A name the package lacks is an error for the type checker, as at run time.

    (The module's ``__getattr__``, which loads ``CallbackReceiver`` on first use, is
    hidden from type checkers: else every name would be an ``object``.)
    """
    zimage_async.Sesion  # type: ignore[attr-defined]  # noqa: B018
    assert_type(zimage_async.CallbackReceiver, type[zimage_async.CallbackReceiver])


def typed_fault_plan(plan: zimage_async.emulator.FaultPlan) -> None:
    """A fault plan's scripts are of a class the emulator exports."""
    assert_type(plan.scripts, tuple[zimage_async.emulator.FaultScript, ...])
