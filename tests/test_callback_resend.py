"""A resent create sends the body its first send sent, callback URL included.

A session with ``callback_url=`` adds its URL to every create whose request names none.
A gateway that honours idempotency keys answers a resend under the same key with the
task the key made only if the body is the same (the emulator, like such a gateway,
answers ``409 idempotency_error`` to another body). So the journal records the body as
sent, the session's callback URL in it, and every resend (``recover``, ``resubmit``, a
batch rerun) sends that recorded body unchanged, whatever callback URL the resending
session has, or none. A handle expects a callback (and polls ``callback_poll_factor``
times slower) only when its task's callback goes to this session's own URL.

Everything runs against the emulator on 127.0.0.1, with callbacks allowed to loopback.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest

from zimage_async import CallbackReceiver, Session, SubmissionUncertainError, TaskStatus
from zimage_async._journal import JournalState, open_journal
from zimage_async.emulator import Emulator, FaultPlan, FaultRule

from .conftest import FAST_POLL, FAST_RETRY

#: The task is made and billed, then the answer is a 500 without a type: uncertain.
LOST_ANSWER = FaultRule(kind="typeless_5xx_after_create", http_status=500)
#: Poll delays a thousand times longer while a callback is expected: 10-50 s.
STRETCH = 1000.0
#: The first session has receiver 0; the resending one receiver 0, receiver 1, or none.
RESENDERS = {"same URL": 0, "another URL": 1, "no callbacks": None}


@attrs.define
class World:
    """An emulator and two callback receivers listening on 127.0.0.1."""

    emu: Emulator
    receivers: list[CallbackReceiver]
    urls: list[str]

    def session(
        self, receiver: int | None, journal: Path | None = None, **options: object
    ) -> Session:
        """A session with receiver number *receiver* (None: no callbacks)."""
        return Session(
            api_key=self.emu.api_key,
            base_url=self.emu.base_url,
            poll=FAST_POLL,
            retry=FAST_RETRY,
            journal=journal,
            callbacks=None if receiver is None else self.receivers[receiver],
            callback_url=None if receiver is None else self.urls[receiver],
            **options,  # type: ignore[arg-type]
        )

    def billed(self) -> list[str]:
        """The ids of the tasks billed so far."""
        return [entry.task_id for entry in self.emu.ledger]


@contextlib.asynccontextmanager
async def _world(*, lost_answers: int = 1) -> AsyncIterator[World]:
    """An emulator whose next *lost_answers* creates lose their answer, and two receivers."""
    receivers = [CallbackReceiver(), CallbackReceiver()]
    plan = FaultPlan.script("create", [LOST_ANSWER] * lost_answers)
    async with (
        Emulator(task_duration=0.2, seed=4, callback_mode="permissive", faults=plan) as emu,
        receivers[0].serve() as first,
        receivers[1].serve() as second,
    ):
        yield World(emu=emu, receivers=receivers, urls=[first, second])


async def _uncertain(
    world: World, receiver: int | None, journal: Path | None
) -> SubmissionUncertainError:
    """Submit "a cat" from a session with *receiver*; its answer is lost (billed, uncertain)."""
    async with world.session(receiver, journal) as zs:
        with pytest.raises(SubmissionUncertainError) as caught:
            await zs.submit("a cat")
    assert len(world.billed()) == 1
    return caught.value


async def test_a_journaled_create_records_the_callback_url_it_sent(tmp_path: Path) -> None:
    """The journal's record of a create holds the body sent: the session's callback URL too."""
    journal = tmp_path / "j.sqlite"
    async with _world(lost_answers=0) as world:
        async with world.session(0, journal) as zs:
            own = await zs.submit("a cat", idempotency_key="order-0001-image-0001")
            other = await zs.submit(
                "a dog", callback_url=world.urls[1], idempotency_key="order-0001-image-0002"
            )
            await own.wait(timeout=10)
            await other.wait(timeout=10)
        sent = [entry.request_body.get("callback_url") for entry in world.emu.ledger]
        assert sent == [world.urls[0], world.urls[1]]
        async with await open_journal(journal) as store:
            records = [await store.get(f"order-0001-image-000{n}") for n in (1, 2)]
        assert [r.request().callback_url for r in records if r is not None] == sent


@pytest.mark.parametrize("resender", RESENDERS.values(), ids=RESENDERS.keys())
async def test_recover_resends_the_recorded_body_and_finds_the_task(
    tmp_path: Path, resender: int | None
) -> None:
    """recover(resubmit_uncertain=True) from any session gets back the task the key made."""
    journal = tmp_path / "j.sqlite"
    async with _world() as world:
        await _uncertain(world, 0, journal)
        async with world.session(resender, journal) as zs:
            handles = await zs.recover(resubmit_uncertain=True)
            assert [handle.id for handle in handles] == world.billed()
            task = await handles[0].wait(timeout=10)
            assert task.status is TaskStatus.COMPLETED
            [record] = await zs.unfinished()
            assert (record.state, record.task_id) == (JournalState.COMPLETED, task.id)
        assert len(world.billed()) == 1


@pytest.mark.parametrize("journaled", [False, True], ids=["no-journal", "journal"])
@pytest.mark.parametrize("resender", RESENDERS.values(), ids=RESENDERS.keys())
async def test_resubmit_from_any_session_gets_the_task_back(
    tmp_path: Path, resender: int | None, journaled: bool
) -> None:
    """Session.resubmit(error) sends the body the error's create sent, not its own URL."""
    journal = tmp_path / "j.sqlite" if journaled else None
    async with _world() as world:
        error = await _uncertain(world, 0, journal)
        async with world.session(resender, journal) as zs:
            handle = await zs.resubmit(error)
            assert [handle.id] == world.billed()
            await handle.wait(timeout=10)


@pytest.mark.parametrize("journaled", [False, True], ids=["no-journal", "journal"])
async def test_a_create_sent_without_a_callback_url_is_resent_without_one(
    tmp_path: Path, journaled: bool
) -> None:
    """A session with callbacks resends a create first sent without any exactly so.

    Its task will call back nobody, so the handle polls at the normal pace: with the
    stretched schedule it would not see the task finish within the wait's 5 s.
    """
    journal = tmp_path / "j.sqlite" if journaled else None
    async with _world() as world:
        error = await _uncertain(world, None, journal)
        async with world.session(0, journal, callback_poll_factor=STRETCH) as zs:
            if journaled:
                [handle] = await zs.recover(resubmit_uncertain=True)
            else:
                handle = await zs.resubmit(error)
            assert [handle.id] == world.billed()
            task = await handle.wait(timeout=5)
        assert task.status is TaskStatus.COMPLETED
        assert world.receivers[0].accepted == 0


async def test_an_own_key_sent_again_from_another_session_gets_the_task_back(
    tmp_path: Path,
) -> None:
    """submit() with the key of an uncertain create sends the body recorded under it."""
    journal = tmp_path / "j.sqlite"
    key = "order-0002-image-0001"
    async with _world() as world:
        async with world.session(0, journal) as zs:
            with pytest.raises(SubmissionUncertainError):
                await zs.submit("a cat", idempotency_key=key)
        async with world.session(1, journal) as zs:
            handle = await zs.submit("a cat", idempotency_key=key)
            assert [handle.id] == world.billed()
            await handle.wait(timeout=10)


@pytest.mark.parametrize(
    ("first", "resender"),
    [(0, 1), (0, None), (None, 0)],
    ids=["another URL", "no callbacks", "callbacks only now"],
)
@pytest.mark.parametrize("own_journal", [False, True], ids=["session-journal", "batch-journal"])
async def test_a_batch_rerun_from_another_session_gets_the_task_back(
    tmp_path: Path, first: int | None, resender: int | None, own_journal: bool
) -> None:
    """A rerun with resubmit_uncertain resends the item's recorded body: the same task.

    The item's fingerprint is its request's, without the session's callback URL, so the
    rerun's list matches the journal's whatever URL its session has.
    """
    journal = tmp_path / "j.sqlite"
    session_journal = None if own_journal else journal
    batch_journal = journal if own_journal else None
    async with _world() as world:
        async with world.session(first, session_journal) as zs:
            async with zs.generate_many(["a cat"], journal=batch_journal) as batch:
                [item] = [item async for item in batch]
            assert isinstance(item.error, SubmissionUncertainError)
        async with (
            world.session(resender, session_journal) as zs,
            zs.generate_many(["a cat"], journal=batch_journal, resubmit_uncertain=True) as batch,
        ):
            [item] = [item async for item in batch]
        assert item.ok, item.error
        assert [item.task_id] == world.billed()


async def test_recover_resends_a_batch_item_with_its_recorded_body(tmp_path: Path) -> None:
    """A batch item left uncertain is resent by recover() from another session: same task."""
    journal = tmp_path / "j.sqlite"
    async with _world() as world:
        async with world.session(0, journal) as zs:
            async with zs.generate_many(["a cat"]) as batch:
                [item] = [item async for item in batch]
            assert isinstance(item.error, SubmissionUncertainError)
        async with world.session(1, journal) as zs:
            handles = await zs.recover(resubmit_uncertain=True)
            assert [handle.id for handle in handles] == world.billed()


@pytest.mark.parametrize("journaled", [False, True], ids=["no-journal", "journal"])
async def test_a_task_calling_back_another_url_polls_at_the_normal_pace(
    tmp_path: Path, journaled: bool
) -> None:
    """A task whose callback goes to another receiver's URL expects none here.

    Only polling can see it finish: with the stretched schedule, a handle expecting a
    callback would not within the wait's 5 s.
    """
    journal = tmp_path / "j.sqlite" if journaled else None
    async with _world(lost_answers=0) as world:
        async with world.session(0, journal, callback_poll_factor=STRETCH) as zs:
            handle = await zs.submit("a cat", callback_url=world.urls[1])
            task = await handle.wait(timeout=5)
        assert task.status is TaskStatus.COMPLETED
        assert world.receivers[0].accepted == 0


@pytest.mark.parametrize("journaled", [False, True], ids=["no-journal", "journal"])
async def test_a_task_calling_back_this_session_expects_its_callback(
    tmp_path: Path, journaled: bool
) -> None:
    """With its own URL (the session's, or the same one given to submit), a callback wakes it.

    The stretched schedule would make a poll wait 10 s: the task is seen to finish
    within the wait's 5 s only because its callback arrives.
    """
    journal = tmp_path / "j.sqlite" if journaled else None
    async with _world(lost_answers=0) as world:
        async with world.session(0, journal, callback_poll_factor=STRETCH) as zs:
            plain = await zs.submit("a cat")
            named = await zs.submit("a dog", callback_url=world.urls[0])
            for handle in (plain, named):
                assert (await handle.wait(timeout=5)).status is TaskStatus.COMPLETED
        assert world.receivers[0].accepted == 2


async def test_a_resend_recorded_with_another_sessions_url_polls_at_the_normal_pace(
    tmp_path: Path,
) -> None:
    """recover() resends a create recorded with another receiver's URL: no callback here."""
    journal = tmp_path / "j.sqlite"
    async with _world() as world:
        await _uncertain(world, 0, journal)
        async with world.session(1, journal, callback_poll_factor=STRETCH) as zs:
            [handle] = await zs.recover(resubmit_uncertain=True)
            task = await handle.wait(timeout=5)
        assert task.status is TaskStatus.COMPLETED
        assert world.receivers[1].accepted == 0
