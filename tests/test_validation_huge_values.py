"""Refusals of values too large to write, and seeds no encoding takes, name their field.

An int of more digits than Python converts to text (4300) used to break the message
meant to refuse it: ``generate_many(batch_id=10**5000)`` raised a bare ``ValueError``
("Exceeds the limit ... for integer string conversion") naming no field, as did
``resubmit(10**5000)`` and ``iter_bytes(10**5000)``'s ``IndexError``; a ``str`` seed
holding a lone surrogate raised a bare ``UnicodeEncodeError`` from ``random.Random``.
Each is now refused naming the field, with nothing sent (the emulator on 127.0.0.1
counts the requests).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from zimage_async import InvalidRequestError, Session
from zimage_async.emulator import Emulator

from .conftest import FAST_POLL

HUGE = 10**5000  # more digits than int -> str converts
UNENCODABLE = "seed-\udc80"  # a lone surrogate: no UTF-8 for it


@pytest.fixture
async def journaled(emulator: Emulator, tmp_path: Path) -> Any:
    journal = str(tmp_path / "journal.sqlite")
    async with Session(
        api_key=emulator.api_key, base_url=emulator.base_url, journal=journal, poll=FAST_POLL
    ) as zs:
        yield zs


CALLS: dict[str, tuple[str, Callable[[Session], object]]] = {
    "batch-id": ("batch_id", lambda zs: zs.generate_many(["a cat"], batch_id=HUGE)),  # type: ignore[arg-type]
    "worker-id": ("worker_id", lambda zs: zs.generate_many(["a cat"], worker_id=HUGE)),  # type: ignore[arg-type]
    "unfinished": ("batch_id", lambda zs: zs.unfinished(batch_id=HUGE)),  # type: ignore[arg-type]
    "spent": ("batch_id", lambda zs: zs.spent(batch_id=HUGE)),  # type: ignore[arg-type]
    "resubmit": ("error", lambda zs: zs.resubmit(HUGE)),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("call", CALLS)
async def test_a_huge_int_is_refused_naming_its_field(
    call: str, journaled: Session, emulator: Emulator
) -> None:
    """Refused as InvalidRequestError naming the field, the number described by its size."""
    field, run = CALLS[call]

    async def called() -> None:
        made = run(journaled)
        if isinstance(made, Awaitable):
            await made

    with pytest.raises(InvalidRequestError) as caught:
        await called()
    assert caught.value.field == field
    assert "digit" in str(caught.value) or "int" in str(caught.value)
    assert not emulator.requests


async def test_an_image_index_too_large_to_write_is_an_index_error(journaled: Session) -> None:
    """iter_bytes(10**5000) of a one-image task: the IndexError names the task and its count."""
    handle = await journaled.submit("a cat")
    await handle.wait()

    async def read() -> None:
        async with contextlib.aclosing(handle.iter_bytes(HUGE)) as chunks:
            async for _ in chunks:
                pass

    with pytest.raises(IndexError) as caught:
        await read()
    assert handle.id in str(caught.value)
    assert "1 image" in str(caught.value)


def test_a_seed_no_encoding_takes_is_refused_by_the_session(emulator: Emulator) -> None:
    r"""Session(seed="...\udc80"): InvalidRequestError naming seed, not a UnicodeEncodeError."""
    with pytest.raises(InvalidRequestError) as caught:
        Session(api_key=emulator.api_key, base_url=emulator.base_url, seed=UNENCODABLE)  # type: ignore[arg-type]
    assert caught.value.field == "seed"
    assert "U+DC80" in caught.value.problem


def test_a_seed_no_encoding_takes_is_refused_by_the_emulator() -> None:
    r"""Emulator(seed="...\udc80"): a ValueError naming seed, as its other options."""
    with pytest.raises(ValueError, match=r"^seed .*U\+DC80 at position 5"):
        Emulator(seed=UNENCODABLE)  # type: ignore[arg-type]
