"""Every error of the SDK survives pickle, copy and deepcopy, whole.

Errors cross process boundaries (``concurrent.futures.ProcessPoolExecutor``,
multiprocessing, task queues) and are copied by error reporters. Before, every class with
a constructor of its own failed to unpickle (``cls(*args)`` with the finished message), a
worker's ``TaskFailedError`` broke its process pool, and two classes wrapped their message
a second time when copied.
"""

from __future__ import annotations

import asyncio
import copy
import multiprocessing
import pickle
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

import zimage_async as z
from zimage_async._exceptions_base import note_task
from zimage_async.emulator import Emulator, FaultPlan, FaultRule

KEY = "zimage-emulator-key"
POST, CREATE = "POST", "/v1/images/generations"
URL, TASK = "https://img.example/x.png", "task-unified-1-abc"


def _api(cls: type[z.APIError], status: int) -> z.APIError:
    return cls(
        "msg", status=status, code=429, type="rate_limit_error", param="prompt",
        retry_after=3.0, method=POST, path=CREATE,
    )  # fmt: skip


def _built() -> dict[str, z.ZImageError]:
    """One error of each public class, made as the SDK makes them."""
    errors: dict[str, z.ZImageError] = {
        "ZImageError": z.ZImageError("plain"),
        "InvalidRequestError": z.InvalidRequestError("seed", "1..2147483647", "0 is too small"),
        "ManifestError": z.ManifestError("bad manifest", items=(1, 2)),
        "JournalError": z.JournalError("disk full"),
        "LeaseLostError": z.LeaseLostError("lost", batch_id="b1", index=3, worker_id="w1"),
        "SpendLimitError": z.SpendLimitError(
            max_credits=1.0, reserved=0.9, expected=0.2, batch_id=None
        ),
        "APIConnectionError": z.APIConnectionError(
            "refused", request_sent=False, method=POST, path=CREATE
        ),
        "APITimeoutError": z.APITimeoutError(
            "timed out", request_sent=True, method=POST, path=CREATE
        ),
        "MalformedResponseError": z.MalformedResponseError("not json", path="$", status=200),
        "TaskFailedError": z.TaskFailedError(task_id=TASK, code="service_error", message="boom"),
        "NoResultsError": z.NoResultsError(task_id=TASK),
        "WaitTimeoutError": z.WaitTimeoutError(task_id=TASK, timeout=5.0, last_status="processing"),
        "ImageDownloadError": z.ImageDownloadError("short", url=URL, task_id=TASK, index=0),
        "ImageExpiredError": z.ImageExpiredError(
            "gone", expired_at=1.0, url=URL, task_id=TASK, index=0
        ),
        "ImageBlockedError": z.ImageBlockedError(
            "403", expires_at=2.0, url=URL, task_id=TASK, index=0
        ),
        "ImageLinkRefusedError": z.ImageLinkRefusedError("no", url=URL, task_id=TASK, index=0),
        "APIError": _api(z.APIError, 418),
    }
    for cls in z.APIError.__subclasses__():
        errors[cls.__name__] = _api(cls, cls.status_code)
    cause = z.InternalServerError("boom", status=500, method=POST, path=CREATE)
    errors["SubmissionUncertainError"] = z.SubmissionUncertainError(
        cause, idempotency_key="k-1", request=z.GenerationRequest(prompt="a cat")
    )
    reset = z.APIConnectionError("reset", request_sent=True, method="GET", path="/v1/tasks/t")
    errors["noted"] = note_task(reset, "t-1")
    return errors


def _state(error: BaseException) -> tuple[type[BaseException], str, tuple[Any, ...], str]:
    return type(error), str(error), error.args, repr(sorted(vars(error).items()))


ROUND_TRIPS: dict[str, Callable[[Any], Any]] = {
    "pickle": lambda error: pickle.loads(pickle.dumps(error)),  # noqa: S301 (our own bytes)
    "copy": copy.copy,
    "deepcopy": copy.deepcopy,
}


@pytest.mark.parametrize("how", sorted(ROUND_TRIPS))
@pytest.mark.parametrize("name", sorted(_built()))
def test_every_error_survives_a_round_trip_whole(name: str, how: str) -> None:
    """Same class, message, args and attributes after pickle, copy or deepcopy."""
    error = _built()[name]
    back = ROUND_TRIPS[how](error)
    assert _state(back) == _state(error)


def test_every_public_error_class_is_covered() -> None:
    """The list above holds every public exception class of the package."""
    public = {
        name
        for name in z.__all__
        if isinstance(getattr(z, name), type) and issubclass(getattr(z, name), z.ZImageError)
    }
    assert public <= set(_built())


def _fails_in_a_worker(base_url: str) -> str:
    """Run in a worker process: a generation whose task fails; return its result."""

    async def main() -> str:
        async with z.Session(api_key=KEY, base_url=base_url) as zs:
            await zs.generate("a dog [[fail:content_policy_violation]]")
        return "no error"

    return asyncio.run(main())


async def test_a_task_failure_in_a_worker_process_reaches_the_parent() -> None:
    """A TaskFailedError raised in a process pool arrives as itself; the pool lives on."""
    async with Emulator(task_duration=0.1) as emu:
        loop = asyncio.get_running_loop()
        spawn = multiprocessing.get_context("spawn")  # no fork of a process running threads
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            with pytest.raises(z.TaskFailedError) as caught:
                await loop.run_in_executor(pool, _fails_in_a_worker, emu.base_url)
            assert caught.value.code == "content_policy_violation"
            assert caught.value.task_id is not None
            assert caught.value.task_id in str(caught.value)
            assert await loop.run_in_executor(pool, str, 7) == "7"  # the pool still works


async def test_errors_raised_by_a_session_pickle_without_the_key() -> None:
    """An uncertain create and a refused key, as raised: round trip, and no key inside."""
    plan = FaultPlan.script("create", [FaultRule(kind="html_5xx", http_status=522)] * 9)
    async with Emulator(task_duration=0.1, faults=plan) as emu:
        async with z.Session(api_key=emu.api_key, base_url=emu.base_url) as zs:
            with pytest.raises(z.SubmissionUncertainError) as uncertain:
                await zs.submit("a cat")
        async with z.Session(api_key="sk-wrong-key-0123456789", base_url=emu.base_url) as zs:
            with pytest.raises(z.AuthenticationError) as refused:
                await zs.submit("a cat")
    for error, key in ((uncertain.value, emu.api_key), (refused.value, "sk-wrong-key-0123456789")):
        data = pickle.dumps(error)
        assert key.encode() not in data
        assert _state(pickle.loads(data)) == _state(error)  # noqa: S301 (our own bytes)
