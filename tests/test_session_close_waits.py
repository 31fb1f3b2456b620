"""Closing a Session ends the waits still napping in it at once, with the closed error.

A wait naps between looks (up to ``wait_max``, stretched by ``callback_poll_factor``
while a callback is expected). Before, a wait napping when its session closed slept on,
holding its task (and its watch on the callback receiver), and only failed at its next
look: many seconds later, or tens of seconds with callbacks.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from zimage_async import CallbackReceiver, PollSchedule, Session, SubmissionUncertainError
from zimage_async._journal import JournalState, open_journal
from zimage_async.emulator import Emulator, FaultPlan, FaultRule

#: Naps far longer than the test may take: a wait still napping after close would hang it.
LONG_NAPS = PollSchedule(wait_min=30.0, wait_max=30.0, jitter=0.0, timeout=600.0)
#: Bounds the end of the wait: met at once by a nap that close() wakes, never by a nap.
BOUND = 10.0


async def _napping_wait(zs: Session, emu: Emulator, how: str) -> asyncio.Task[Any]:
    handle = await zs.submit("a slow cat")

    async def drain() -> None:
        async for _ in handle.updates():
            pass

    waiter = asyncio.ensure_future(drain() if how == "updates" else getattr(handle, how)())
    await asyncio.sleep(0.2)  # it naps from the create's snapshot until its first look
    assert not waiter.done() and emu.request_counts.get("task", 0) == 0
    return waiter


@pytest.mark.parametrize("how", ["wait", "result", "updates"])
async def test_a_wait_napping_when_its_session_closes_ends_at_once(how: str) -> None:
    """The nap is cut short and the wait raises the closed-Session error."""
    async with Emulator(task_duration=120.0) as emu:
        zs = Session(api_key=emu.api_key, base_url=emu.base_url, poll=LONG_NAPS)
        async with zs:
            waiter = await _napping_wait(zs, emu, how)
        with pytest.raises(RuntimeError, match="closed"):
            await asyncio.wait_for(waiter, BOUND)


async def test_a_wait_expecting_a_callback_ends_when_its_session_closes() -> None:
    """With a callback receiver, the wait's watch on it ends with the wait."""
    receiver = CallbackReceiver()
    async with (
        Emulator(task_duration=120.0, callback_mode="permissive") as emu,
        receiver.serve() as url,
    ):
        zs = Session(
            api_key=emu.api_key,
            base_url=emu.base_url,
            poll=PollSchedule(wait_min=1.0, wait_max=3.0, jitter=0.0, timeout=600.0),
            callbacks=receiver,
            callback_url=url,
            callback_poll_factor=20.0,
        )
        async with zs:
            waiter = await _napping_wait(zs, emu, "wait")
            assert receiver.watched == 1
        with pytest.raises(RuntimeError, match="closed"):
            await asyncio.wait_for(waiter, BOUND)
        assert receiver.watched == 0


async def test_a_nap_begun_after_the_close_with_callbacks_ends_at_once() -> None:
    """Closing inside ``updates()``: the next nap (a hint wait) does not sleep, it fails."""
    receiver = CallbackReceiver()
    async with (
        Emulator(task_duration=120.0, callback_mode="permissive") as emu,
        receiver.serve() as url,
    ):
        zs = Session(
            api_key=emu.api_key,
            base_url=emu.base_url,
            poll=LONG_NAPS,
            callbacks=receiver,
            callback_url=url,
        )
        await zs.open()
        handle = await zs.submit("a slow cat")

        async def close_inside_the_loop() -> None:
            async for _ in handle.updates():
                await zs.close()  # the next snapshot starts a nap of a closed session

        with pytest.raises(RuntimeError, match="closed"):
            await asyncio.wait_for(close_inside_the_loop(), BOUND)
        assert receiver.watched == 0


async def test_a_create_sitting_out_a_429_pause_ends_when_its_session_closes() -> None:
    """A submit waiting out Retry-After 30 s: close() ends it at once, as uncertain.

    The API's own 429 to a create may follow a task it made (its resend with the key
    would tell): stopped before that resend, the create is uncertain, not "closed".
    """
    plan = FaultPlan.script("create", [FaultRule(kind="http_429", retry_after_seconds=30)])
    async with Emulator(task_duration=0.1, faults=plan) as emu:
        zs = Session(api_key=emu.api_key, base_url=emu.base_url)
        await zs.open()
        submit = asyncio.ensure_future(zs.submit("a fox"))
        await asyncio.sleep(0.5)  # answered 429: the retry waits out the advice
        await zs.close()
        with pytest.raises(SubmissionUncertainError) as caught:
            await asyncio.wait_for(submit, BOUND)
        assert caught.value.idempotency_key is not None
        assert emu.request_counts.get("create") == 1  # nothing sent after the close


async def test_a_read_waiting_to_retry_ends_when_its_session_closes() -> None:
    """A refresh() backing off after a 503 (Retry-After 30 s): close() ends it at once."""
    plan = FaultPlan.script("task", [FaultRule(kind="http_503", retry_after_seconds=30)])
    async with Emulator(task_duration=0.1, faults=plan) as emu:
        zs = Session(api_key=emu.api_key, base_url=emu.base_url)
        await zs.open()
        handle = await zs.submit("a fox")
        refresh = asyncio.ensure_future(handle.refresh())
        await asyncio.sleep(0.5)
        await zs.close()
        with pytest.raises(RuntimeError, match="the Session is closed"):
            await asyncio.wait_for(refresh, BOUND)
        assert emu.request_counts.get("task") == 1


async def test_a_download_cut_by_the_close_ends_with_the_closed_error() -> None:
    """An image streaming when its session closes: the closed-Session error, not aiohttp's."""
    async with Emulator(task_duration=0.1, image_padding_bytes=30_000_000) as emu:
        zs = Session(api_key=emu.api_key, base_url=emu.base_url)
        await zs.open()
        handle = await zs.submit("a large fox")
        await handle.wait()
        received = 0

        async def consume() -> None:
            nonlocal received
            async for chunk in handle.iter_bytes():
                received += len(chunk)
                await asyncio.sleep(0.01)  # a slow reader: the rest waits in the socket

        consumer = asyncio.ensure_future(consume())
        for _ in range(500):
            if received >= 1_000_000:
                break
            await asyncio.sleep(0.01)
        assert received >= 1_000_000 and not consumer.done()
        await zs.close()
        with pytest.raises(RuntimeError, match="the Session is closed"):
            await asyncio.wait_for(consumer, BOUND)


async def test_creates_ended_by_the_close_are_recorded_for_what_they_are(tmp_path: Path) -> None:
    """Closed during a 429 pause: the one never sent is `rejected`, the answered one `uncertain`."""
    plan = FaultPlan.script("create", [FaultRule(kind="http_429", retry_after_seconds=30)])
    journal = tmp_path / "j.sqlite"
    async with Emulator(task_duration=0.1, faults=plan) as emu:
        zs = Session(api_key=emu.api_key, base_url=emu.base_url, journal=journal)
        await zs.open()
        answered = asyncio.ensure_future(zs.submit("a fox", idempotency_key="answered-429-0001"))
        await asyncio.sleep(0.3)  # answered 429: the session pauses its creates
        queued = asyncio.ensure_future(zs.submit("a cat", idempotency_key="never-sent-000001"))
        await asyncio.sleep(0.3)
        await zs.close()
        with pytest.raises(SubmissionUncertainError):  # its 429 may follow a task made
            await asyncio.wait_for(answered, BOUND)
        with pytest.raises(RuntimeError, match="the Session is closed"):
            await asyncio.wait_for(queued, BOUND)
        assert emu.request_counts.get("create") == 1
    async with await open_journal(journal) as store:
        states = {record.key: record.state for record in await store.records()}
    assert states["answered-429-0001"] is JournalState.UNCERTAIN
    assert states["never-sent-000001"] is JournalState.REJECTED
    assert JournalState.SUBMITTING not in states.values(), states


async def test_a_create_queued_for_a_connection_when_the_session_closes_is_not_sent(
    tmp_path: Path,
) -> None:
    """One connection, held by a slow create: the one queued behind it is `rejected`.

    The close ends the slow create (it may have made a task: `uncertain`) and so frees
    the connection slot; the queued create then gets it, but the session is closed: it
    was never handed to the HTTP client, and the journal must say so.
    """
    plan = FaultPlan.script("create", [FaultRule(kind="slow", delay_seconds=30)])
    journal = tmp_path / "j.sqlite"
    async with Emulator(task_duration=0.1, faults=plan) as emu:
        zs = Session(api_key=emu.api_key, base_url=emu.base_url, journal=journal, max_connections=1)
        await zs.open()
        slow = asyncio.ensure_future(zs.submit("a fox", idempotency_key="slow-create-00001"))
        await asyncio.sleep(0.3)  # the slow create holds the only connection
        queued = asyncio.ensure_future(zs.submit("a cat", idempotency_key="never-sent-000002"))
        await asyncio.sleep(0.3)
        await zs.close()
        with pytest.raises(SubmissionUncertainError):
            await asyncio.wait_for(slow, BOUND)
        with pytest.raises(RuntimeError, match="the Session is closed"):
            await asyncio.wait_for(queued, BOUND)
    async with await open_journal(journal) as store:
        states = {record.key: record.state for record in await store.records()}
    assert states["never-sent-000002"] is JournalState.REJECTED, states
    assert states["slow-create-00001"] is JournalState.UNCERTAIN, states


async def test_a_session_closed_while_it_opens_stays_closed(tmp_path: Path) -> None:
    """close() while open() waits for the journal: open() fails, nothing can be sent.

    open() set the state back to open after the close: the session then billed tasks and
    left its connection pools open.
    """
    async with Emulator(task_duration=0.1) as emu:
        zs = Session(api_key=emu.api_key, base_url=emu.base_url, journal=tmp_path / "j.sqlite")
        opening = asyncio.ensure_future(zs.open())
        await asyncio.sleep(0)  # open() now waits for the journal
        await zs.close()
        with pytest.raises(RuntimeError, match="closed"):
            await asyncio.wait_for(opening, BOUND)
        assert zs.state.value == "closed"
        with pytest.raises(RuntimeError, match="closed"):
            await zs.submit("a cat")
        assert not emu.ledger
