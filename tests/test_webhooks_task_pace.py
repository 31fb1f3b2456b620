"""Handles made by ``Session.task()`` poll at the normal pace, journal or not.

It is not known whether a stored task has a callback, nor where it goes (perhaps to the
receiver of an earlier process), so such a handle must not stretch its polls by
``callback_poll_factor`` as a handle of ``submit()`` does. Everything runs against the
emulator on 127.0.0.1; no callback is ever delivered.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from zimage_async import CallbackReceiver, GenerationRequest, Session, TaskStatus
from zimage_async.emulator import Emulator

from .conftest import FAST_POLL, FAST_RETRY

#: Polls a thousand times further apart if the handle expected a callback: 10-50 s.
STRETCH = 1000.0


@pytest.mark.parametrize("journaled", [False, True], ids=["no-journal", "journal"])
async def test_a_task_handle_polls_at_the_normal_pace(tmp_path: Path, journaled: bool) -> None:
    """A stored task given with a request that names a callback URL is still polled as usual.

    The request's URL is never called (the task was made without it): only polling can
    see the task finish, and it must within seconds, not after STRETCH times the delays.
    """
    journal = tmp_path / "j.sqlite" if journaled else None
    request = GenerationRequest(
        prompt="a stored fox", callback_url="https://hooks.example.com/zimage"
    )
    receiver = CallbackReceiver()
    async with Emulator(task_duration=0.3, seed=2) as emu, receiver.serve() as url:
        async with Session(
            api_key=emu.api_key,
            base_url=emu.base_url,
            poll=FAST_POLL,
            retry=FAST_RETRY,
            journal=journal,
        ) as maker:
            made = await maker.submit("a stored fox")  # no callback URL: none is sent
        async with Session(
            api_key=emu.api_key,
            base_url=emu.base_url,
            poll=FAST_POLL,
            retry=FAST_RETRY,
            journal=journal,
            callbacks=receiver,
            callback_url=url,
            callback_poll_factor=STRETCH,
        ) as zs:
            handle = zs.task(made.id, request=request)
            task = await handle.wait(timeout=5)
        assert not emu.callback_attempts
    assert task.status is TaskStatus.COMPLETED
    assert receiver.accepted == 0
