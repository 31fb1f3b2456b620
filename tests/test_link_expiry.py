"""What a link's query says of its expiry never stops a download the host would serve.

A loopback gateway and image host on 127.0.0.1 answer a task completed just now whose link
carries an ``exp`` / ``expires`` / ``Expires`` value that is not its expiry (a flag, the
seconds of validity, milliseconds, a time before the task was made) or a believable expiry
already past. The host's answer decides: the image is delivered when it is served, and a
403, 404 or 410 is still :class:`ImageExpiredError`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from zimage_async import ImageBlockedError, ImageExpiredError, Session, Task
from zimage_async._links import STATED_EXPIRY_HORIZON, believed_expiry

from .conftest import CompletedHost, _png, loopback_session, serving

PNG = _png((64, 64))
NOW = time.time()  # only to build query values: a day either way makes no difference
DAY = 86400.0


def _amz(signed: float, lifetime: int) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(signed))
    return f"X-Amz-Date={stamp}&X-Amz-Expires={lifetime}&X-Amz-Signature=abc"


#: Query strings whose stated expiry is not a plausible Unix time for a task made now.
IMPLAUSIBLE = [
    pytest.param("exp=1&sig=abc", id="exp-flag"),
    pytest.param("Expires=86400&Signature=abc", id="Expires-seconds-of-validity"),
    pytest.param("expires=3600", id="expires-seconds"),
    pytest.param(f"expires={int(NOW * 1000)}&sig=abc", id="expires-milliseconds"),
    pytest.param(f"expires={int(NOW - 30 * DAY)}&sig=abc", id="expires-before-creation"),
    pytest.param(f"expires={int(NOW + 90 * DAY)}&sig=abc", id="expires-months-ahead"),
]
#: Query strings stating a believable expiry that has already passed.
PAST = [
    pytest.param(f"expires={int(NOW - 60)}&sig=abc", id="expires-a-minute-ago"),
    pytest.param(_amz(NOW - 120, 60), id="presigned-lapsed"),
]


class Host(CompletedHost):
    """A gateway whose task completes at once with one link ``/img/<kind>?<query>``.

    The prompt is ``kind?query``; *kind* ``ok`` serves a PNG, ``403``/``404``/``410``
    answer that status. ``created`` is stated as a minute before the task is read,
    unless the prompt's kind ends in ``-nocreated``.
    """

    def __init__(self) -> None:
        super().__init__(self.image, route="/img/{kind}")
        self.image_requests: list[str] = []

    def link(self, task_id: str) -> str:
        kind, _, query = self.prompts[task_id].partition("?")
        return f"{self.base}/img/{kind}?{query}"

    def completed(self, task_id: str) -> dict[str, object]:
        reply = super().completed(task_id)
        if not self.prompts[task_id].partition("?")[0].endswith("-nocreated"):
            reply["created"] = int(time.time()) - 60
        return reply

    async def image(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"].removesuffix("-nocreated")
        self.image_requests.append(kind)
        if kind == "ok":
            return web.Response(body=PNG, content_type="image/png")
        if kind == "403":
            return web.Response(status=403, text="<Error><Code>AccessDenied</Code></Error>")
        return web.Response(status=int(kind), text="gone")


@pytest.fixture
async def host() -> AsyncIterator[Host]:
    host = Host()
    async with serving(host.app) as host.base:
        yield host


@pytest.fixture
async def session(host: Host) -> AsyncIterator[Session]:
    async with loopback_session(host.base) as session:
        yield session


# -- on the wire ----------------------------------------------------------------------------


@pytest.mark.parametrize("query", IMPLAUSIBLE + PAST)
@pytest.mark.parametrize("kind", ["ok", "ok-nocreated"])
async def test_a_served_image_is_delivered_whatever_the_query_says(
    session: Session, host: Host, query: str, kind: str
) -> None:
    """A task completed just now: its image is fetched and delivered, not called expired."""
    result = await session.generate(f"{kind}?{query}")
    assert result.image.data == PNG
    assert host.image_requests == ["ok"]


@pytest.mark.parametrize("query", IMPLAUSIBLE)
async def test_an_implausible_stated_expiry_leaves_the_24_hours(
    session: Session, query: str
) -> None:
    """handle.expires_at is completion + 24 h when the stated value is not a time to believe."""
    handle = await session.submit(f"ok?{query}")
    await handle.wait()
    assert handle.expires_at is not None
    assert handle.expires_at > time.time() + DAY - 3600


async def test_a_believed_past_expiry_is_what_expires_at_says(session: Session) -> None:
    """A believable stated expiry is kept: expires_at says it, though the host is still asked."""
    stated = int(time.time()) - 60
    handle = await session.submit(f"ok-nocreated?expires={stated}&sig=abc")
    await handle.wait()
    assert handle.expires_at == stated
    assert (await handle).image.data == PNG


async def test_a_save_delivers_a_link_with_an_implausible_expiry(
    session: Session, host: Host, tmp_path: Path
) -> None:
    """The path `zimage tasks collect` takes (a handle by task id, then save) saves it."""
    first = await session.submit("ok?Expires=86400&Signature=abc")
    again = session.task(first.id)
    (path,) = await again.save(tmp_path)
    assert path.read_bytes() == PNG
    assert host.image_requests == ["ok"]


@pytest.mark.parametrize("status", ["403", "404", "410"])
@pytest.mark.parametrize("query", IMPLAUSIBLE + PAST)
async def test_a_refusing_host_is_still_expiry(
    session: Session, host: Host, status: str, query: str
) -> None:
    """A genuinely expired link (the host answers 403, 404 or 410) is ImageExpiredError."""
    with pytest.raises(ImageExpiredError) as info:
        await session.generate(f"{status}?{query}")
    assert not isinstance(info.value, ImageBlockedError)
    assert "expired or is gone" in str(info.value)
    assert host.image_requests and set(host.image_requests) == {status}


async def test_a_refusal_of_a_believed_past_expiry_names_it(session: Session) -> None:
    """A 403 after a believable stated expiry is expiry, with the stated time as its evidence."""
    stated = int(time.time()) - 60
    with pytest.raises(ImageExpiredError) as info:
        await session.generate(f"403-nocreated?expires={stated}&sig=abc")
    assert info.value.expired_at == stated
    assert "the link states it expired at" in str(info.value)


async def test_past_the_24_hours_nothing_is_requested(host: Host) -> None:
    """Once the service's own lifetime is over, the download is refused without a request."""
    async with loopback_session(host.base, link_ttl=1e-9) as session:
        with pytest.raises(ImageExpiredError) as info:
            await session.generate("ok?exp=1&sig=abc")
    assert "nothing was requested" in str(info.value)
    assert host.image_requests == []


# -- the rule, pure -------------------------------------------------------------------------

DONE = 1_757_200_000.0  # when completion was seen


@pytest.mark.parametrize(
    ("stated", "created", "believed"),
    [
        pytest.param([1.0], None, None, id="flag"),
        pytest.param([86400.0], None, None, id="seconds-of-validity"),
        pytest.param([DONE * 1000], None, None, id="milliseconds"),
        pytest.param([DONE + DAY], None, DONE + DAY, id="the-24-hours"),
        pytest.param([DONE + 3600], DONE - 30, DONE + 3600, id="an-hour"),
        pytest.param([DONE - 60], None, DONE - 60, id="a-minute-before"),
        pytest.param([DONE - 60], DONE - 30, None, id="before-creation"),
        pytest.param([DONE - DAY], None, None, id="a-day-before"),
        pytest.param(
            [DONE + STATED_EXPIRY_HORIZON], None, DONE + STATED_EXPIRY_HORIZON, id="horizon"
        ),
        pytest.param([DONE + STATED_EXPIRY_HORIZON + 1], None, None, id="past-the-horizon"),
        pytest.param([1.0, DONE + 7200, DONE + 3600], None, DONE + 3600, id="earliest-kept"),
        pytest.param([], None, None, id="none"),
    ],
)
def test_believed_expiry(
    stated: list[float], created: float | None, believed: float | None
) -> None:
    """Believed: after creation and a lifetime before completion, within the horizon."""
    got = believed_expiry(sorted(stated), completed_at=DONE, lifetime=DAY, created=created)
    assert got == believed


def test_links_expire_at_ignores_an_implausible_stated_expiry() -> None:
    """Task.links_expire_at gives the 24 hours, or a believed earlier stated expiry."""
    flags = Task(id="t", raw_status="completed", results=("https://a.example/0.png?exp=1",))
    assert flags.stated_expiry == 1.0
    assert flags.links_expire_at(DONE + DAY) == DONE + DAY
    hour = ("https://a.example/0.png?exp=1", f"https://a.example/1.png?expires={DONE + 3600:.0f}")
    task = Task(id="t", raw_status="completed", results=hour)
    assert task.links_expire_at(DONE + DAY) == DONE + 3600
    assert task.believed_expiry(DONE, lifetime=DAY) == DONE + 3600


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999"])
def test_a_value_that_is_no_number_of_seconds_is_no_expiry(value: str) -> None:
    """Not-a-number and infinities state nothing, and do not hide a believable expiry."""
    links = (f"https://a.example/0.png?exp={value}", f"https://a.example/1.png?exp={DONE + 60:.0f}")
    task = Task(id="t", raw_status="completed", results=links)
    assert task.stated_expiry == DONE + 60
    assert task.links_expire_at(DONE + DAY) == DONE + 60


async def test_expires_at_judges_a_stated_expiry_by_the_sessions_link_ttl(host: Host) -> None:
    """With link_ttl=1 h, a stated expiry 2 h before completion is not believed."""
    async with loopback_session(host.base, link_ttl=3600.0) as session:
        stated = int(time.time()) - 2 * 3600
        handle = await session.submit(f"ok-nocreated?expires={stated}&sig=abc")
        await handle.wait()
        assert handle.expires_at is not None
        assert handle.expires_at > time.time() + 3000  # completion + 1 h, not the stated time
