"""A wait's ``timeout`` is checked before anything is sent, whichever call takes it.

``generate()`` sends the billed create before it waits: a timeout it cannot use must be
refused first, with the field and the rule, as every other bad input is.
"""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from zimage_async import InvalidRequestError, PollSchedule, Session
from zimage_async.emulator import Emulator

BAD = [
    pytest.param(0, id="zero"),
    pytest.param(-1.5, id="negative"),
    pytest.param(math.nan, id="nan"),
    pytest.param(True, id="bool"),
    pytest.param("5", id="text"),
    pytest.param(10**400, id="no-float-holds-it"),
]


@pytest.mark.parametrize("timeout", BAD)
async def test_generate_refuses_a_bad_timeout_before_sending(
    zs: Session, emulator: Emulator, timeout: object
) -> None:
    """Nothing is billed for a generate() whose wait could not run."""
    with pytest.raises(InvalidRequestError) as info:
        await zs.generate("a cat", timeout=timeout)  # type: ignore[arg-type]
    assert info.value.field == "timeout"
    assert len(emulator.ledger) == 0


@pytest.mark.parametrize("timeout", BAD)
async def test_generate_many_refuses_a_bad_timeout_before_sending(
    zs: Session, emulator: Emulator, timeout: object
) -> None:
    """The batch's timeout is checked with its other options."""
    with pytest.raises(InvalidRequestError) as info:
        zs.generate_many(["a cat"], timeout=timeout)  # type: ignore[arg-type]
    assert info.value.field == "timeout"
    assert len(emulator.ledger) == 0


@pytest.mark.parametrize("timeout", BAD)
async def test_a_handles_waits_refuse_a_bad_timeout_with_the_field_and_rule(
    zs: Session, timeout: object
) -> None:
    """wait(), result(), save() and updates() say which field and rule, as a ValueError too."""
    handle = await zs.submit("a cat")
    for wait in (handle.wait, handle.result):
        with pytest.raises(InvalidRequestError) as info:
            await wait(timeout=timeout)  # type: ignore[arg-type]
        assert info.value.field == "timeout"
        assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"timeout": 10**400}, id="timeout-no-float-holds-it"),
        pytest.param({"timeout": True}, id="timeout-bool"),
        pytest.param({"timeout": Decimal(5)}, id="timeout-decimal"),
        pytest.param({"timeout": math.nan}, id="timeout-nan"),
        pytest.param({"wait_max": 10**400}, id="wait_max-no-float-holds-it"),
        pytest.param({"jitter": True}, id="jitter-bool"),
    ],
)
def test_a_poll_schedule_refuses_numbers_its_waits_could_not_use(fields: dict[str, object]) -> None:
    """The session's default timeout is a wait's timeout too: refused when made, not billed."""
    with pytest.raises(ValueError, match=next(iter(fields))):
        PollSchedule(**fields)  # type: ignore[arg-type]


async def test_an_infinite_timeout_is_refused_as_the_poll_schedule_refuses_it(
    zs: Session, emulator: Emulator
) -> None:
    """generate(timeout=inf) was accepted while PollSchedule(timeout=inf) was refused.

    ``None`` is the one way to say "no limit", everywhere.
    """
    refusals = []
    with pytest.raises(InvalidRequestError) as info:
        await zs.generate("a cat", timeout=math.inf)
    refusals.append(info.value)
    with pytest.raises(InvalidRequestError) as info:
        zs.generate_many(["a cat"], timeout=math.inf)
    refusals.append(info.value)
    handle = zs.task("task-unified-1-abcdefgh")
    with pytest.raises(InvalidRequestError) as info:
        await handle.wait(timeout=math.inf)
    refusals.append(info.value)
    with pytest.raises(InvalidRequestError) as info:
        PollSchedule(timeout=math.inf)
    refusals.append(info.value)
    for refused in refusals:
        assert refused.field == "timeout"
        assert "finite" in refused.rule
        assert "None for no limit" in refused.rule
    assert not emulator.requests
