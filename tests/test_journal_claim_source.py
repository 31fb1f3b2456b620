"""A claim tells an item given back in order from one whose holder's lease ran out.

A worker that stops in order (Ctrl-C) gives its unfinished items back; the next run
resumes them, and that is no takeover of another worker's claim. Only an item whose
holder's lease lapsed (a killed worker) is taken from that worker, and only then does
the taker warn. In SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import asyncio

from zimage_async import GenerationRequest
from zimage_async._journal import Journal, JournalRecord

REQUESTS = [GenerationRequest(prompt="a cat"), GenerationRequest(prompt="a dog")]


async def _begin_both(journal: Journal, worker: str) -> None:
    """Enqueue batch ``b`` (two items), claim both for *worker* and begin their creates."""
    await journal.enqueue("b", REQUESTS)
    for item in await journal.claim("b", worker, lease_seconds=600, limit=10):
        await journal.begin(
            JournalRecord.for_request(
                REQUESTS[item.index],
                key=item.key,
                base_url="http://127.0.0.1:9",
                batch_id="b",
                item_index=item.index,
            ),
            worker_id=worker,
        )


async def test_a_fresh_item_is_taken_from_nobody(journal: Journal) -> None:
    """An item never claimed before comes with no earlier holder."""
    await journal.enqueue("b", REQUESTS)
    items = await journal.claim("b", "w1", lease_seconds=600, limit=10)
    assert [item.taken_from for item in items] == [None, None]


async def test_an_item_given_back_in_order_is_taken_from_nobody(journal: Journal) -> None:
    """Released unsettled (an orderly stop), the item is claimed again as a free one."""
    await _begin_both(journal, "w1")
    for index in (0, 1):
        assert await journal.release("b", "w1", index, settled=False)
    items = await journal.claim("b", "w2", lease_seconds=600, limit=10)
    assert [item.index for item in items] == [0, 1]
    assert [item.taken_from for item in items] == [None, None]
    assert all(item.record is not None and item.record.state.unfinished for item in items)


async def test_an_item_whose_lease_ran_out_is_taken_from_its_holder(journal: Journal) -> None:
    """A lapsed lease names the worker the item is taken from; a released one does not."""
    await journal.enqueue("b", REQUESTS)
    assert len(await journal.claim("b", "dead", lease_seconds=0.05, limit=1)) == 1
    assert len(await journal.claim("b", "alive", lease_seconds=600, limit=1)) == 1
    assert await journal.release("b", "alive", 1, settled=False)
    await asyncio.sleep(0.2)  # the dead worker's lease runs out
    items = await journal.claim("b", "w3", lease_seconds=600, limit=10)
    assert {item.index: item.taken_from for item in items} == {0: "dead", 1: None}
    assert all(item.claimed_by == "w3" for item in items)
