"""A create cancelled before it left the process is not sent, not uncertain, not paid.

A create waits for a connection slot (``max_connections``) and sits out a 429 pause
before it is handed to aiohttp. Cancelled there, nothing reached the service: the
journal says so (``rejected``, not ``uncertain``, so neither the spend nor
``recover(resubmit_uncertain=True)`` counts it), and a stopped batch drops such creates
at once instead of sending them after the stop. A create cancelled after it was handed
over may have made a task: it stays ``uncertain`` in a journal, and without one a
warning names its idempotency key.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from zimage_async import Session, SubmissionUncertainError, _batchrun
from zimage_async._batchjournal import note_created
from zimage_async._journal import JournalState, open_journal
from zimage_async.emulator import Emulator, FaultPlan, FaultRule


def _one_connection(emu: Emulator, tmp_path: Path) -> Session:
    """A session with a journal and one connection: a second create queues for it."""
    return Session(
        api_key=emu.api_key,
        base_url=emu.base_url,
        journal=tmp_path / "j.sqlite",
        max_connections=1,
    )


async def test_creates_cancelled_in_the_slot_queue_are_not_uncertain(tmp_path: Path) -> None:
    """One slow create holds the only connection; the three queued ones are cancelled."""
    plan = FaultPlan.script("create", [FaultRule(kind="slow", delay_seconds=1.0)])
    async with (
        Emulator(task_duration=0.1, faults=plan) as emu,
        _one_connection(emu, tmp_path) as zs,
    ):
        submits = [asyncio.ensure_future(zs.submit(f"prompt {i}")) for i in range(4)]
        await asyncio.sleep(0.3)  # the first is at the service, the others wait for the slot
        for submit in submits:
            submit.cancel()
        await asyncio.gather(*submits, return_exceptions=True)
        await asyncio.sleep(1.0)  # the service answers the slow create
        assert emu.request_counts.get("create") == 1
        states = sorted(record.state.value for record in await zs.unfinished())
        assert states == ["uncertain"], states  # only the one that was sent
        assert (await zs.spent()).creates == 1
        await zs.recover(resubmit_uncertain=True)
        assert emu.request_counts.get("create") == 2  # the uncertain one, sent again
        assert len(emu.ledger) <= 1  # with its key: no second task


async def test_a_stopped_batch_sends_none_of_its_queued_creates(tmp_path: Path) -> None:
    """Creates waiting out a 429 pause when the batch stops are dropped, not sent later."""
    plan = FaultPlan.script("create", [FaultRule(kind="http_429", retry_after_seconds=3)])
    async with (
        Emulator(task_duration=0.1, faults=plan) as emu,
        Session(api_key=emu.api_key, base_url=emu.base_url) as zs,
    ):

        async def consume() -> None:
            async with zs.generate_many(
                [f"item {i}" for i in range(20)],
                concurrency=8,
                output_dir=tmp_path / "out",
                journal=tmp_path / "j.sqlite",
            ) as batch:
                async for _ in batch:
                    pass

        consumer = asyncio.ensure_future(consume())
        await asyncio.sleep(0.5)
        sent = emu.request_counts.get("create", 0)
        started = time.monotonic()
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
        assert time.monotonic() - started < 2  # not after the 3 s pause
        await asyncio.sleep(3.5)  # past the pause: nothing more is sent
        assert emu.request_counts.get("create", 0) == sent


async def test_a_create_cancelled_after_it_was_sent_is_named_in_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without a journal, the key of a create that may have made a task is logged."""
    plan = FaultPlan.script("create", [FaultRule(kind="slow", delay_seconds=1.0)])
    async with (
        Emulator(task_duration=0.1, faults=plan) as emu,
        Session(api_key=emu.api_key, base_url=emu.base_url) as zs,
    ):
        key = "my-own-key-0123456789"
        submit = asyncio.ensure_future(zs.submit("a cat", idempotency_key=key))
        await asyncio.sleep(0.3)
        with caplog.at_level(logging.WARNING, logger="zimage_async"):
            submit.cancel()
            with pytest.raises(asyncio.CancelledError):
                await submit
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(key in message and "billed" in message for message in warnings), warnings


async def test_a_create_cancelled_before_it_was_sent_is_not_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Queued behind the only connection and cancelled: nothing was sent, no warning."""
    plan = FaultPlan.script("create", [FaultRule(kind="slow", delay_seconds=1.0)])
    async with (
        Emulator(task_duration=0.1, faults=plan) as emu,
        Session(api_key=emu.api_key, base_url=emu.base_url, max_connections=1) as zs,
    ):
        first = asyncio.ensure_future(zs.submit("a cat"))
        queued = asyncio.ensure_future(zs.submit("a dog", idempotency_key="queued-key-012345"))
        await asyncio.sleep(0.3)
        with caplog.at_level(logging.WARNING, logger="zimage_async"):
            queued.cancel()
            with pytest.raises(asyncio.CancelledError):
                await queued
        await first
    assert not [r for r in caplog.records if "queued-key-012345" in r.getMessage()]


async def test_a_resend_of_an_uncertain_key_cancelled_in_the_queue_stays_uncertain(
    tmp_path: Path,
) -> None:
    """The first send may have made a task: a queued resend, cancelled, never clears that."""
    key = "my-own-key-0123456789"
    plan = FaultPlan.script(
        "create",
        [
            FaultRule(kind="html_5xx_after_create", http_status=502),
            FaultRule(kind="slow", delay_seconds=1.0),
        ],
    )
    async with (
        Emulator(task_duration=0.1, faults=plan) as emu,
        _one_connection(emu, tmp_path) as zs,
    ):
        with pytest.raises(SubmissionUncertainError):
            await zs.submit("a cat", idempotency_key=key)
        other = asyncio.ensure_future(zs.submit("a dog"))  # holds the only connection
        await asyncio.sleep(0.3)
        again = asyncio.ensure_future(zs.submit("a cat", idempotency_key=key))  # queued
        await asyncio.sleep(0.3)
        again.cancel()
        await asyncio.gather(again, return_exceptions=True)
        await other
        states = {record.key: record.state.value for record in await zs.unfinished()}
        assert states.get(key) == "uncertain", states
        assert (await zs.spent()).creates == 2


def _slow_task_id_writes(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Make a batch's write of a task id take 0.3 s (a remote PostgreSQL, a busy disk).

    Returns the event set when the first such write begins (the create was answered).
    """
    answered = asyncio.Event()

    async def slow_note_created(*args: Any, **kwargs: Any) -> None:
        answered.set()
        await asyncio.sleep(0.3)
        await note_created(*args, **kwargs)

    monkeypatch.setattr(_batchrun, "note_created", slow_note_created)
    return answered


async def _stop_during_the_write(
    zs: Session, tmp_path: Path, journal: Path, answered: asyncio.Event
) -> None:
    """Run a batch of one prompt and stop it once its task id is being written."""

    async def consume() -> None:
        async with zs.generate_many(
            ["a cat"], output_dir=tmp_path / "out", journal=journal
        ) as batch:
            async for _ in batch:
                pass

    consumer = asyncio.ensure_future(consume())
    await asyncio.wait_for(answered.wait(), 10)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer


async def test_a_batch_stopped_while_it_records_its_task_keeps_the_task_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Answered, then stopped during the (slow) write of the task id: the id is written."""
    answered = _slow_task_id_writes(monkeypatch)
    journal = tmp_path / "j.sqlite"
    async with (
        Emulator(task_duration=0.5) as emu,
        Session(api_key=emu.api_key, base_url=emu.base_url) as zs,
    ):
        await _stop_during_the_write(zs, tmp_path, journal, answered)
        assert len(emu.ledger) == 1
    async with await open_journal(journal) as store:
        (record,) = await store.records()
    assert record.state is JournalState.CREATED
    assert record.task_id == emu.ledger[0].task_id


async def test_a_batch_stopped_while_it_records_a_salvaged_task_id_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A create answered 200 but cut short, its id read from what came: written, not lost."""
    task_id = "task-unified-17-abcd1234"

    async def cut_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        body = f'{{"id":"{task_id}","status":"pending"'.encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        writer.write(b"Content-Length: 500\r\n\r\n" + body)  # then the connection drops
        await writer.drain()
        writer.close()

    answered = _slow_task_id_writes(monkeypatch)
    server = await asyncio.start_server(cut_short, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    journal = tmp_path / "j.sqlite"
    try:
        async with Session(api_key="sk-test-0123456789abcdef", base_url=base) as zs:
            await _stop_during_the_write(zs, tmp_path, journal, answered)
    finally:
        server.close()
        await server.wait_closed()
    async with await open_journal(journal) as store:
        (record,) = await store.records()
    assert (record.state, record.task_id) == (JournalState.CREATED, task_id)


def test_a_submit_closed_unfinished_lets_generator_exit_pass(tmp_path: Path) -> None:
    """A pending create's coroutine closed (as gc does to an abandoned task): it ends clean."""
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda loop, context: None)  # the abandoned task's report
    plan = FaultPlan.script("create", [FaultRule(kind="slow", delay_seconds=5.0)])
    emu = Emulator(task_duration=0.1, faults=plan)
    zs = Session(api_key="sk-test-0123456789abcdef", base_url="http://127.0.0.1:1/apiv1")
    try:
        loop.run_until_complete(emu.__aenter__())
        zs = Session(api_key=emu.api_key, base_url=emu.base_url, journal=tmp_path / "j.sqlite")
        loop.run_until_complete(zs.open())
        task = loop.create_task(zs.submit("a cat"))
        loop.run_until_complete(asyncio.sleep(0.5))  # the create is with the service
        task.get_coro().close()  # raises RuntimeError if the coroutine awaits meanwhile
        others = [t for t in asyncio.all_tasks(loop) if t is not task]
        assert not [t for t in others if "note" in repr(t.get_coro())]
    finally:
        loop.run_until_complete(zs.close())
        loop.run_until_complete(emu.__aexit__(None, None, None))
        loop.close()


async def test_a_stopping_worker_keeps_renewing_while_its_create_finishes(
    tmp_path: Path,
) -> None:
    """Stopped with a create in flight (it waits out the grace): no other worker resends it."""
    plan = FaultPlan.script("create", [FaultRule(kind="slow", delay_seconds=4.0)])
    journal, out = tmp_path / "j.sqlite", tmp_path / "out"
    async with (
        Emulator(task_duration=0.1, faults=plan) as emu,
        Session(api_key=emu.api_key, base_url=emu.base_url) as zs,
    ):

        async def work(worker: str) -> None:
            async with zs.generate_many(
                ["a cat"], output_dir=out, journal=journal, worker_id=worker, lease=1.5
            ) as batch:
                async for _ in batch:
                    pass

        first = asyncio.ensure_future(work("worker-a"))
        await asyncio.sleep(0.5)  # worker-a's create is at the service, slow to answer
        first.cancel()  # it stops, waiting for the create's answer (the grace)
        second = asyncio.ensure_future(work("worker-b"))  # would take over a lapsed lease
        with pytest.raises(asyncio.CancelledError):
            await first
        await asyncio.wait_for(second, 20)
        assert emu.request_counts.get("create") == 1  # worker-b resumed it by task id
        assert len(emu.ledger) == 1
