"""A batch's ``timeout`` bounds each item's wait and its download together.

As ``handle.save(timeout=...)`` and ``handle.result(timeout=...)`` do for one handle:
an item whose task takes most of the time does not get a second full ``timeout`` for
its images.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from zimage_async import Session, WaitTimeoutError
from zimage_async.emulator import FaultPlan, FaultRule
from zimage_async.pytest_plugin import EmulatorFactory

from .conftest import FAST_POLL, FAST_RETRY

#: The task takes 1 s and its image 1 s more: each alone is within the 1.5 s timeout,
#: both together are not.
TASK_SECONDS = 1.0
IMAGE_DELAY = 1.0
TIMEOUT = 1.5


@pytest.mark.parametrize("saved", [True, False], ids=["to-files", "in-memory"])
async def test_an_items_timeout_bounds_its_wait_and_download_together(
    zimage_emulator_factory: EmulatorFactory, tmp_path: Path, saved: bool
) -> None:
    """The download gets what is left of the item's timeout, and fails when it runs out."""
    emulator = await zimage_emulator_factory(task_duration=TASK_SECONDS, seed=1)
    emulator.faults = FaultPlan.script("image", [FaultRule(kind="slow", delay_seconds=IMAGE_DELAY)])
    async with Session(
        api_key=emulator.api_key, base_url=emulator.base_url, poll=FAST_POLL, retry=FAST_RETRY
    ) as zs:
        output_dir = tmp_path / "out" if saved else None
        async with zs.generate_many(["a fox"], timeout=TIMEOUT, output_dir=output_dir) as batch:
            (item,) = [item async for item in batch]

    assert isinstance(item.error, WaitTimeoutError)
    assert item.error.stage == "download"
    assert item.error.timeout == TIMEOUT  # the item's own limit, not what was left of it
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.png"))
