"""Arguments a caller gets wrong are refused before anything is read, sent or billed.

``recover(resubmit_uncertain=...)`` decides whether a create that may have been billed
is sent again: a string (``"false"``, truthy) must not send it. ``unfinished`` and
``spent`` with a ``batch_id`` that is not a batch id must not answer "nothing unfinished,
nothing spent". A handle whose result is held still checks the ``timeout`` it is given.
Everything runs against the emulator on 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from zimage_async import InvalidRequestError, Session, SubmissionUncertainError
from zimage_async._journal import JournalState
from zimage_async.emulator import Emulator, FaultPlan, FaultRule

from .conftest import FAST_POLL, FAST_RETRY


async def _one_uncertain(emu: Emulator, journal: Path) -> None:
    """Make one create whose answer was a 500 after the task was made: ``uncertain``."""
    async with Session(
        api_key=emu.api_key,
        base_url=emu.base_url,
        poll=FAST_POLL,
        retry=FAST_RETRY,
        journal=journal,
    ) as zs:
        with pytest.raises(SubmissionUncertainError):
            await zs.submit("a fox")
        (record,) = await zs.unfinished()
    assert record.state is JournalState.UNCERTAIN


@pytest.mark.parametrize("flag", ["false", "no", 0.0, 1, None, [True]])
async def test_recover_refuses_a_flag_that_is_not_a_bool(tmp_path: Path, flag: Any) -> None:
    """``recover(resubmit_uncertain=<not a bool>)`` names the option and sends nothing."""
    journal = tmp_path / "j.sqlite"
    faults = FaultPlan(
        rules=(FaultRule(kind="http_500_after_create", endpoint="create", rate=1.0),)
    )
    async with Emulator(task_duration=0.05, idempotency="ignore", faults=faults) as emu:
        await _one_uncertain(emu, journal)
        billed = len(emu.ledger)
        async with Session(
            api_key=emu.api_key,
            base_url=emu.base_url,
            poll=FAST_POLL,
            retry=FAST_RETRY,
            journal=journal,
        ) as zs:
            with pytest.raises(InvalidRequestError) as caught:
                await zs.recover(resubmit_uncertain=flag)
            (record,) = await zs.unfinished()
        assert len(emu.ledger) == billed  # nothing sent again
    assert caught.value.field == "resubmit_uncertain"
    assert "True or False" in str(caught.value)
    assert record.state is JournalState.UNCERTAIN


@pytest.mark.parametrize("batch_id", [b"b", 7, 7.0, True, ["b"], ""])
async def test_unfinished_and_spent_refuse_a_batch_id_that_is_not_one(
    tmp_path: Path, emulator: Emulator, batch_id: Any
) -> None:
    """A wrong ``batch_id`` is refused by name, not answered with an empty list or spend."""
    async with Session(
        api_key=emulator.api_key, base_url=emulator.base_url, journal=tmp_path / "j.sqlite"
    ) as zs:
        for call in (zs.unfinished, zs.spent):
            with pytest.raises(InvalidRequestError) as caught:
                await call(batch_id=batch_id)
            assert caught.value.field == "batch_id"


@pytest.mark.parametrize("timeout", ["5", -1, float("nan"), object()])
async def test_a_delivered_result_still_checks_its_timeout(
    emulator: Emulator, timeout: Any
) -> None:
    """``result(timeout=<wrong>)`` is refused by name also once the result is held."""
    async with Session(
        api_key=emulator.api_key, base_url=emulator.base_url, poll=FAST_POLL, retry=FAST_RETRY
    ) as zs:
        handle = await zs.submit("a fox")
        await handle  # the result is held from now on
        with pytest.raises(InvalidRequestError) as caught:
            await handle.result(timeout=timeout)
    assert caught.value.field == "timeout"


@pytest.mark.parametrize(
    ("options", "field", "said"),
    [
        ({"user_agent": ""}, "user_agent", "it is empty"),
        ({"user_agent": "   "}, "user_agent", "it is blank"),
        ({"user_agent": "zimage\nX-Injected: 1"}, "user_agent", "a control character"),
        ({"base_url": "  "}, "base_url", "is blank"),
        ({"base_url": "https://a b.example/apiv1"}, "base_url", "contains a space"),
        ({"base_url": "https://a.example/api\x07v1"}, "base_url", "a control character"),
    ],
)
def test_a_refused_setting_says_what_is_wrong_with_it(
    options: dict[str, Any], field: str, said: str
) -> None:
    """The message says what the value has wrong, not "it is not" or "has some"."""
    with pytest.raises(InvalidRequestError) as caught:
        Session(api_key="sk-test-0123456789", **options)
    assert caught.value.field == field
    assert said in str(caught.value)
    assert "it is not;" not in str(caught.value) and "has some" not in str(caught.value)


def test_a_nul_in_a_name_template_is_not_called_a_path_separator(tmp_path: Path) -> None:
    """A NUL in ``name`` is named as what it is: a character no file name may hold."""
    from zimage_async._naming import check_template

    with pytest.raises(InvalidRequestError) as caught:
        check_template("a\x00b")
    assert "NUL" in str(caught.value)
    assert "contains a path separator" not in str(caught.value)


async def test_a_session_cannot_be_pickled_or_copied(emulator: Emulator) -> None:
    """A copy would share the session's connections: closing it would close the original."""
    import copy
    import pickle

    async with Session(api_key=emulator.api_key, base_url=emulator.base_url) as zs:
        for attempt in (pickle.dumps, copy.copy, copy.deepcopy):
            with pytest.raises(TypeError) as caught:
                attempt(zs)
            assert "a Session cannot be pickled or copied" in str(caught.value)
            assert emulator.api_key not in str(caught.value)
        assert zs.state.value == "open"


async def test_a_handle_cannot_be_pickled_or_copied_and_says_what_to_keep(
    emulator: Emulator,
) -> None:
    """Pickling or copying a handle says to keep its id and resume with ``session.task``."""
    import copy
    import pickle

    async with Session(
        api_key=emulator.api_key, base_url=emulator.base_url, poll=FAST_POLL, retry=FAST_RETRY
    ) as zs:
        handle = await zs.submit("a fox")
        for attempt in (pickle.dumps, copy.copy, copy.deepcopy):
            with pytest.raises(TypeError) as caught:
                attempt(handle)
            assert handle.id in str(caught.value)
            assert "session.task(" in str(caught.value)
        await handle
