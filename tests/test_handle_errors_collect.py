"""Errors met after a task was created name it, and say how to collect it when that can help.

A read that failed for good says so whichever way the handle was waiting (``updates()``,
``refresh()`` as ``wait()``); a 404 names the id it was about but never calls the task
billed; a download that gave up says how to collect the task, naming its image once; an
expired or refused link never offers a collection that cannot work.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from zimage_async import (
    ImageBlockedError,
    ImageDownloadError,
    ImageExpiredError,
    ImageLinkRefusedError,
    InternalServerError,
    NotFoundError,
    Session,
)
from zimage_async._cli_words import cli_words
from zimage_async._exceptions import note_task
from zimage_async.emulator import Emulator, FaultPlan, FaultRule

from .conftest import FAST_RETRY, CompletedHost, _png, loopback_session, serving

COLLECT = "collect it later with session.task("
BILLED = "was created and is billed"


def _says_how_to_collect(error: Exception, task_id: str) -> bool:
    return f"{COLLECT}{task_id!r})" in str(error) and BILLED in str(error)


async def test_a_read_failing_under_updates_names_the_task_and_how_to_collect_it(
    zs: Session, emulator: Emulator
) -> None:
    """updates() raises the read's error with the task's id and the collect note, as wait() does."""
    handle = await zs.submit("a cat")
    emulator.faults = FaultPlan.script("task", ["http_500"] * 20)
    with pytest.raises(InternalServerError) as info:
        async for _ in handle.updates(timeout=10):
            pass
    assert info.value.task_id == handle.id
    assert _says_how_to_collect(info.value, handle.id)


async def test_a_failing_refresh_names_the_task_and_how_to_collect_it(
    zs: Session, emulator: Emulator
) -> None:
    """refresh() raises the read's error with the task's id and the collect note."""
    handle = await zs.submit("a cat")
    emulator.faults = FaultPlan.script("task", ["http_500"] * 20)
    with pytest.raises(InternalServerError) as info:
        await handle.refresh()
    assert info.value.task_id == handle.id
    assert _says_how_to_collect(info.value, handle.id)
    assert str(info.value).count(BILLED) == 1


async def test_an_unknown_task_keeps_its_id_but_is_never_called_billed(
    zs: Session, emulator: Emulator
) -> None:
    """A 404 for an id the service never had names the id, and offers no collection."""
    unknown = "task-unified-1796000000-doesnotexist"
    with pytest.raises(NotFoundError) as info:
        await zs.task(unknown)
    assert info.value.task_id == unknown
    assert BILLED not in str(info.value)
    assert "collect it" not in str(info.value)
    assert not emulator.ledger


@pytest.mark.parametrize(
    ("fault", "how"),
    [
        pytest.param(FaultRule(kind="http_500"), "await", id="500-await"),
        pytest.param(FaultRule(kind="http_500"), "save", id="500-save"),
        pytest.param(FaultRule(kind="truncate"), "await", id="cut-await"),
        pytest.param(FaultRule(kind="truncate"), "save", id="cut-save"),
    ],
)
async def test_a_download_that_gave_up_names_its_image_once_and_how_to_collect_it(
    zs: Session, emulator: Emulator, tmp_path: Path, fault: FaultRule, how: str
) -> None:
    """The last attempt's reason follows "gave up", without the image named again."""
    handle = await zs.submit("a cat")
    await handle.wait()
    emulator.faults = FaultPlan.script("image", [fault] * FAST_RETRY.max_attempts)
    delivery = handle.save(tmp_path) if how == "save" else handle.result()
    with pytest.raises(ImageDownloadError) as info:
        await delivery
    error = info.value
    assert type(error) is ImageDownloadError
    assert error.task_id == handle.id
    assert error.reason.startswith(f"gave up after {FAST_RETRY.max_attempts} attempts: ")
    assert str(error).count(error.url) == 1
    assert str(error).count(f"image 0 of task {handle.id}") == 1
    assert _says_how_to_collect(error, handle.id)
    assert COLLECT not in error.reason  # the note is the message's, not the reason's


class _RefusingHost(CompletedHost):
    """A completed task whose link is refused: credentials in it, or a Cloudflare 403."""

    def __init__(self) -> None:
        super().__init__(self.image, route="/img/{kind}")

    def link(self, task_id: str) -> str:
        kind = self.prompts[task_id]
        if kind == "credentials":
            return self.base.replace("http://", "http://user:secret@") + "/img/ok"
        return f"{self.base}/img/{kind}"

    async def image(self, request: web.Request) -> web.Response:
        if request.match_info["kind"] == "cloudflare":
            return web.Response(status=403, text="error code: 1010")
        return web.Response(body=_png(), content_type="image/png")


@pytest.fixture
async def refusing() -> AsyncIterator[_RefusingHost]:
    host = _RefusingHost()
    async with serving(host.app) as host.base:
        yield host


async def test_a_refused_link_offers_no_collection(refusing: _RefusingHost) -> None:
    """A link the SDK never fetches would be refused again: no collect note."""
    async with loopback_session(refusing.base) as session:
        handle = await session.submit("credentials")
        with pytest.raises(ImageLinkRefusedError) as info:
            await handle
    assert info.value.task_id == handle.id
    assert "collect it" not in str(info.value)


async def test_an_expired_link_offers_no_collection(refusing: _RefusingHost) -> None:
    """Links past their lifetime are gone: no collect note."""
    async with loopback_session(refusing.base, link_ttl=1e-9) as session:
        handle = await session.submit("ok")
        with pytest.raises(ImageExpiredError) as info:
            await handle
    assert info.value.task_id == handle.id
    assert "collect it" not in str(info.value)


async def test_a_blocked_client_is_told_how_to_collect_the_task(refusing: _RefusingHost) -> None:
    """A block of this client leaves the link valid: collecting later (another agent) can work."""
    async with loopback_session(refusing.base) as session:
        handle = await session.submit("cloudflare")
        with pytest.raises(ImageBlockedError) as info:
            await handle
    assert info.value.task_id == handle.id
    assert _says_how_to_collect(info.value, handle.id)


def test_the_collect_note_is_put_in_the_commands_words() -> None:
    """On the command line, the note names the command that collects the task."""
    error = note_task(InternalServerError("boom", status=500), "task-unified-1-a")
    assert cli_words(str(error)).endswith(
        "[task task-unified-1-a was created and is billed: collect it later with "
        "`zimage task task-unified-1-a -o DIR` instead of generating it again]"
    )
