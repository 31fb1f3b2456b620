"""A task whose ``created`` is an integer no float holds, over real HTTP on loopback.

``json`` reads an integer of 309 to 4,300 digits as an int (beyond that it reads as
infinite, and :mod:`tests.test_hostile_numbers` covers it), and ``float()`` of it raises
:class:`OverflowError`. ``created`` is a hint: such a value is dropped, as an estimate no
float holds is, and the task and its images are delivered as if it had not been sent.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from zimage_async import Session, Task
from zimage_async._parsing_quick import quick_task
from zimage_async._parsing_task import parse_task

from .conftest import CompletedHost, _png, loopback_session, serving

PNG = _png((64, 64))
#: int() reads it, but no float holds it.
BIG = 10**400
#: The largest and smallest integers a float holds (to within its precision).
LARGEST = int(1.7976931348623157e308)
TASK_ID = "task-unified-1-abcdefgh"
BEYOND = [
    pytest.param(BIG, id="401-digits"),
    pytest.param(-BIG, id="minus-401-digits"),
    pytest.param(10**4299, id="4300-digits"),
    pytest.param(2**1024, id="2**1024"),
]


def _png_handler() -> web.Response:
    return web.Response(body=PNG, content_type="image/png")


class Host(CompletedHost):
    """A gateway whose tasks state ``created`` as :attr:`created`, in every answer."""

    def __init__(self, created: int) -> None:
        super().__init__(self.image)
        self.created = created

    async def create(self, request: web.Request) -> web.StreamResponse:
        task_id = f"task-unified-1-{len(self.prompts)}"
        self.prompts[task_id] = (await request.json())["prompt"]
        return web.json_response(
            {"id": task_id, "status": "pending", "progress": 0, "created": self.created}
        )

    def completed(self, task_id: str) -> dict[str, object]:
        return super().completed(task_id) | {"created": self.created, "model": "z-image-turbo"}

    async def image(self, request: web.Request) -> web.Response:
        return _png_handler()


@pytest.fixture(params=[p.values[0] for p in BEYOND], ids=[p.id for p in BEYOND])
async def host(request: pytest.FixtureRequest) -> AsyncIterator[Host]:
    server = Host(request.param)
    async with serving(server.app) as server.base:
        yield server


@pytest.fixture
async def session(host: Host) -> AsyncIterator[Session]:
    async with loopback_session(host.base) as zs:
        yield zs


# -- the readers ----------------------------------------------------------------------------


@pytest.mark.parametrize("created", BEYOND)
def test_both_readers_drop_a_created_no_float_holds(
    created: int, caplog: pytest.LogCaptureFixture
) -> None:
    """The quick reader leaves it to the general one, which drops it alone, quietly."""
    caplog.set_level(logging.DEBUG, logger="zimage_async")
    payload = {"id": TASK_ID, "status": "processing", "progress": 40, "created": created}
    assert quick_task(payload) is None
    task = parse_task(payload | {"model": "z-image-turbo"})
    assert task.created is None
    assert task.progress == 40 and task.model == "z-image-turbo"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    noted = " ".join(r.getMessage() for r in caplog.records)
    assert "$.created" in noted
    assert len(noted) < 2000  # the number itself is not written out


@pytest.mark.parametrize("created", [LARGEST, -LARGEST, 0, 1757165031, 1757165031000])
def test_both_readers_keep_a_created_a_float_holds(created: int) -> None:
    """Any integer a float holds is kept, by either reader, as sent."""
    payload = {"id": TASK_ID, "status": "processing", "progress": 40, "created": created}
    quick = quick_task(payload)
    assert quick is not None and quick.created == created
    assert parse_task(payload | {"progress": 40.0}).created == created


@pytest.mark.parametrize("created", BEYOND)
def test_believed_expiry_of_a_task_built_with_such_a_created_ignores_it(created: int) -> None:
    """A Task built directly with such a ``created`` does not fail: the value is ignored."""
    stated = 1_800_000_000 + 3600
    task = Task(
        id=TASK_ID,
        raw_status="completed",
        created=created,
        results=(f"https://cdn.example/0.png?expires={stated}",),
    )
    assert task.believed_expiry(1_800_000_000.0) == stated
    assert task.links_expire_at(1_800_000_000.0 + 86400) == stated


# -- on the wire ----------------------------------------------------------------------------


async def test_generate_delivers_the_image(session: Session) -> None:
    """generate() gives the image, and the task without its ``created``."""
    result = await session.generate("a cat")
    assert result.image.data == PNG
    assert result.task.created is None
    assert result.task.model == "z-image-turbo"


async def test_expires_at_is_the_24_hours(session: Session) -> None:
    """handle.expires_at is read without the hint: completion plus the links' lifetime."""
    handle = await session.submit("a cat")
    await handle.wait()
    assert handle.expires_at is not None


async def test_save_writes_the_image(session: Session, tmp_path: Path) -> None:
    """handle.save() writes the image, with and without metadata."""
    handle = await session.submit("a cat")
    paths = await handle.save(tmp_path / "plain")
    assert [path.read_bytes() for path in paths] == [PNG]
    embedded = await handle.save(tmp_path / "meta", metadata=True)
    assert len(embedded) == 1 and embedded[0].stat().st_size > len(PNG)


async def test_a_journalled_batch_completes_every_item(session: Session, tmp_path: Path) -> None:
    """generate_many with a journal delivers every item, each with its task id."""
    journal = tmp_path / "journal.sqlite"
    async with session.generate_many(
        ["a cat", "a dog"], output_dir=tmp_path / "out", journal=journal, timeout=10
    ) as batch:
        items = [item async for item in batch]
    assert sorted(item.index for item in items) == [0, 1]
    assert all(item.ok and item.task_id and len(item.paths) == 1 for item in items), items
