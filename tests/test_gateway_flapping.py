"""Task reads from lagging or flapping replicas: what was seen ended stays ended.

A gateway may answer task reads from replicas that disagree: a read after the task was
seen completed may say ``processing`` again, or ``failed``, or list other links; the
status may alternate between reads without the task moving. The handle keeps the first
ended snapshot (its result, its files, its ``is_done``), and an alternation that makes
no progress is no reason to keep polling at the fastest pace. Each gateway here is a
small aiohttp server on 127.0.0.1 that answers the reads from a script.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web

from zimage_async import PollSchedule, Task, TaskStatus
from zimage_async._schedule import PollState

from .conftest import CompletedHost, _png, loopback_session, serving

Script = Callable[["ScriptedHost", str, int], dict[str, object]]


class ScriptedHost(CompletedHost):
    """Reads answer ``script(host, task_id, n)`` for the n-th read; every link is an image."""

    def __init__(self, script: Script) -> None:
        super().__init__(self.image, route="/img/{name}")
        self.script = script
        self.reads = 0
        self.image_gets: list[str] = []

    async def task(self, request: web.Request) -> web.Response:
        n, self.reads = self.reads, self.reads + 1
        return web.json_response(self.script(self, request.match_info["task_id"], n))

    async def image(self, request: web.Request) -> web.Response:
        self.image_gets.append(request.path_qs)
        return web.Response(body=_png((64, 64)), content_type="image/png")

    def done(self, task_id: str, *names: str) -> dict[str, object]:
        links = [f"{self.base}/img/{name}.png" for name in names]
        return {"id": task_id, "status": "completed", "progress": 100, "results": links}


def _completed_then(later: str) -> Script:
    """The first read completes the task; every read after it answers *later*."""

    def script(host: ScriptedHost, task_id: str, n: int) -> dict[str, object]:
        if n == 0:
            return host.done(task_id, "a")
        if later == "processing":
            return {"id": task_id, "status": "processing", "progress": 50}
        if later == "failed":
            return {"id": task_id, "status": "failed", "error": "boom"}
        return host.done(task_id, "a", "b")  # later == "one-more": another link list

    return script


@pytest.mark.parametrize("later", ["processing", "failed", "one-more"])
async def test_a_read_after_the_end_changes_nothing_the_handle_delivered(
    tmp_path: Path, later: str
) -> None:
    """After ``await handle``, a contrary read keeps is_done, the snapshot and the files."""
    host = ScriptedHost(_completed_then(later))
    async with serving(host.app) as base:
        host.base = base
        async with loopback_session(base) as zs:
            handle = await zs.submit("a fox")
            result = await handle
            assert handle.is_done and handle.status is TaskStatus.COMPLETED
            snapshot = await handle.refresh()  # a lagging replica answers
            assert snapshot.status is TaskStatus.COMPLETED
            assert handle.is_done and handle.status is TaskStatus.COMPLETED
            assert handle.task is not None and len(handle.task.results) == 1
            reads = host.reads
            assert (await handle.wait()).status is TaskStatus.COMPLETED
            assert await handle is result
            paths = await handle.save(tmp_path)
            assert host.reads == reads  # nothing more to wait for: no read
    assert [path.name for path in paths] == [f"{handle.id}-0.png"]
    assert paths[0].read_bytes() == result.images[0].data
    assert len(host.image_gets) == 1  # the image was downloaded once


def test_a_status_that_alternates_without_progress_backs_off() -> None:
    """Replicas answering pending and processing in turn: the delays grow to wait_max."""
    schedule = PollSchedule(wait_min=0.2, wait_max=5.0, jitter=0.0)
    state = PollState(schedule, rng=random.Random(0), deadline=None)
    now, delays = 0.0, []
    for n in range(14):
        status = "pending" if n % 2 else "processing"
        task = Task(id="task-unified-1-a", raw_status=status, progress=0, task_info=None)
        delay = state.after(task, now)
        assert delay is not None
        delays.append(delay)
        now += delay
    assert delays[-4:] == pytest.approx([5.0] * 4)
    assert sum(delays) > 20  # not 14 looks at the fastest pace (under 3 s)


def test_progress_that_goes_back_and_forth_backs_off() -> None:
    """Progress 40, 41, 40, 41 ... (two replicas) is no progress: the delays grow."""
    schedule = PollSchedule(wait_min=0.2, wait_max=5.0, jitter=0.0)
    state = PollState(schedule, rng=random.Random(0), deadline=None)
    now, delays = 0.0, []
    for n in range(14):
        task = Task(
            id="task-unified-1-a", raw_status="processing", progress=40 + n % 2, task_info=None
        )
        delay = state.after(task, now)
        assert delay is not None
        delays.append(delay)
        now += delay
    assert delays[-4:] == pytest.approx([5.0] * 4)


def test_real_progress_still_counts_as_moving() -> None:
    """Rising progress keeps resetting the back-off, whatever came before."""
    schedule = PollSchedule(wait_min=0.2, wait_max=5.0, jitter=0.0)
    state = PollState(schedule, rng=random.Random(0), deadline=None)
    now = 0.0
    for _ in range(10):  # a stuck stretch first: the back-off grows
        task = Task(id="task-unified-1-a", raw_status="processing", progress=10, task_info=None)
        now += state.after(task, now) or 0.0
    assert state.overdue > 3
    moving = Task(id="task-unified-1-a", raw_status="processing", progress=11, task_info=None)
    state.after(moving, now)
    assert state.overdue == 0 and state.moved_at == now
