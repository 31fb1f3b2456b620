"""A resumed image download is one image: If-Range, validators, and bounded Content-Range.

The image host's first answer for each link ends cleanly halfway through the image (a
chunked body: nothing but the image's framing says bytes are missing), so the download
asks again with ``Range``; each test picks what the host answers then. The two images
are stored PNGs of one size and layout, so bytes of one joined to bytes of the other
pass the framing check: only the validators tell them apart.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable, Mapping
from email.utils import formatdate

import aiohttp
import pytest
from aiohttp import web
from PIL import Image as PILImage

from zimage_async import ImageDownloadError, Session
from zimage_async.emulator import Emulator

from .conftest import CompletedHost, loopback_session, serving


def _stored_png(colour: tuple[int, int, int]) -> bytes:
    """A 64x64 PNG without compression: its length and chunks do not depend on *colour*."""
    buffer = io.BytesIO()
    PILImage.new("RGB", (64, 64), colour).save(buffer, format="PNG", compress_level=0)
    return buffer.getvalue()


A = _stored_png((255, 0, 0))
B = _stored_png((0, 0, 255))
assert len(A) == len(B) and A != B
HALF = len(A) // 2
NOW = 1_900_000_000.0  # a fixed Date for the Last-Modified cases

Reply = tuple[int, dict[str, str], bytes]


def dated(age: float) -> dict[str, str]:
    """Headers of an answer dated NOW whose Last-Modified is *age* seconds before it."""
    modified, date = formatdate(NOW - age, usegmt=True), formatdate(NOW, usegmt=True)
    return {"Last-Modified": modified, "Date": date}


def _start(headers: Mapping[str, str]) -> int:
    return int(headers["Range"].removeprefix("bytes=").removesuffix("-"))


def partial(image: bytes, **extra: str) -> Callable[[Mapping[str, str]], Reply]:
    """Answer a resume with 206 and the rest of *image*, whatever If-Range says."""

    def answer(headers: Mapping[str, str]) -> Reply:
        start = _start(headers)
        content_range = f"bytes {start}-{len(image) - 1}/{len(image)}"
        return 206, {"Content-Range": content_range} | extra, image[start:]

    return answer


def whole(image: bytes, **extra: str) -> Callable[[Mapping[str, str]], Reply]:
    """Answer a resume with 200 and all of *image* (Range ignored, or If-Range unmatched)."""
    return lambda headers: (200, dict(extra), image)


def honouring(etag: str) -> Callable[[Mapping[str, str]], Reply]:
    """Answer as a CDN holding image B under *etag*: 206 only if If-Range matches it."""

    def answer(headers: Mapping[str, str]) -> Reply:
        if headers.get("If-Range") == etag:
            return partial(B, ETag=etag)(headers)
        return 200, {"ETag": etag}, B

    return answer


class ResumeHost(CompletedHost):
    """A loopback gateway whose image host cuts each image's first answer short cleanly.

    ``first`` holds the validators of that first answer, ``resume`` answers every later
    request; ``image_requests`` records the headers of each image request.
    """

    def __init__(self) -> None:
        super().__init__(self.image)
        self.first: dict[str, str] = {}
        self.resume: Callable[[Mapping[str, str]], Reply] = partial(A)
        self.image_requests: list[dict[str, str]] = []

    async def image(self, request: web.Request) -> web.StreamResponse:
        self.image_requests.append(dict(request.headers))
        typed = {"Content-Type": "image/png"}
        if len(self.image_requests) == 1:
            reply = web.StreamResponse(headers=typed | self.first)
            reply.enable_chunked_encoding()
            await reply.prepare(request)
            await reply.write(A[:HALF])
            await reply.write_eof()  # a clean end: only the PNG's framing says it is short
            return reply
        status, headers, body = self.resume(request.headers)
        return web.Response(status=status, headers=typed | headers, body=body)


@pytest.fixture
async def host() -> AsyncIterator[ResumeHost]:
    resume_host = ResumeHost()
    async with serving(resume_host.app) as resume_host.base:
        yield resume_host


@pytest.fixture
async def session(host: ResumeHost) -> AsyncIterator[Session]:
    async with loopback_session(host.base) as opened:
        yield opened


def _resumes(host: ResumeHost) -> list[tuple[str | None, str | None]]:
    """The (Range, If-Range) of every image request after the first."""
    return [(h.get("Range"), h.get("If-Range")) for h in host.image_requests[1:]]


# --- If-Range is sent with the first answer's strong validator -----------------------


async def test_resume_sends_if_range_with_the_strong_etag(
    session: Session, host: ResumeHost
) -> None:
    """A cut body is resumed with If-Range set to the first answer's ETag; bytes are exact."""
    host.first = {"ETag": '"a-1"'}
    host.resume = partial(A, ETag='"a-1"')
    result = await session.generate("strong etag")
    assert result.image.data == A
    assert _resumes(host) == [(f"bytes={HALF}-", '"a-1"')]


async def test_every_resume_carries_the_first_answers_etag(
    session: Session, host: ResumeHost
) -> None:
    """A resume cut short again is resumed with the first answer's ETag, not the last one's."""
    host.first = {"ETag": '"a-1"'}

    def answer(headers: Mapping[str, str]) -> Reply:
        status, extra, body = partial(A)(headers)  # states no ETag
        if len(host.image_requests) == 2:
            body = body[:1000]  # shorter than its Content-Range: cut short again
        return status, extra, body

    host.resume = answer
    result = await session.generate("cut twice")
    assert result.image.data == A
    assert _resumes(host) == [(f"bytes={HALF}-", '"a-1"'), (f"bytes={HALF + 1000}-", '"a-1"')]


async def test_weak_etag_is_never_sent_as_if_range(session: Session, host: ResumeHost) -> None:
    """A weak ETag (W/"...") is not used for If-Range: the resume sends Range alone."""
    host.first = {"ETag": 'W/"a-1"'}
    host.resume = partial(A, ETag='W/"a-1"')
    result = await session.generate("weak etag")
    assert result.image.data == A
    assert _resumes(host) == [(f"bytes={HALF}-", None)]


@pytest.mark.parametrize("age", [pytest.param(60, id="60-s"), pytest.param(3600, id="1-h")])
async def test_old_last_modified_is_sent_as_if_range(
    session: Session, host: ResumeHost, age: int
) -> None:
    """Without an ETag, a Last-Modified a minute or more before the Date is If-Range."""
    host.first = dated(age)
    modified = host.first["Last-Modified"]
    host.resume = partial(A, **{"Last-Modified": modified})
    result = await session.generate("old last-modified")
    assert result.image.data == A
    assert _resumes(host) == [(f"bytes={HALF}-", modified)]


@pytest.mark.parametrize(
    "first",
    [
        pytest.param(dated(59), id="modified-59-s-before-the-date"),
        pytest.param(dated(-3600), id="modified-after-the-date"),
        pytest.param({"Last-Modified": "yesterday", "Date": "today"}, id="not-dates"),
        pytest.param({}, id="no-validator"),
    ],
)
async def test_no_usable_validator_resumes_with_range_alone(
    session: Session, host: ResumeHost, first: dict[str, str]
) -> None:
    """Without a strong ETag or a safely old Last-Modified, Range alone is sent, as before."""
    host.first = first
    result = await session.generate("no usable validator")
    assert result.image.data == A
    assert _resumes(host) == [(f"bytes={HALF}-", None)]


# --- an answer of another image is refused, never spliced ----------------------------


@pytest.mark.parametrize(
    ("first", "resume"),
    [
        pytest.param({"ETag": '"a-1"'}, partial(B, ETag='"b-2"'), id="206-other-etag"),
        pytest.param({"ETag": 'W/"a-1"'}, partial(B, ETag='W/"b-2"'), id="206-other-weak-etag"),
        pytest.param(
            {"Last-Modified": formatdate(NOW - 3600, usegmt=True)},
            partial(B, **{"Last-Modified": formatdate(NOW - 60, usegmt=True)}),
            id="206-other-last-modified",
        ),
        pytest.param({"ETag": '"a-1"'}, honouring('"b-2"'), id="200-if-range-unmatched"),
        pytest.param({"ETag": '"a-1"'}, whole(B, ETag='"b-2"'), id="200-range-ignored"),
    ],
)
async def test_answer_of_a_changed_image_is_refused_not_spliced(
    session: Session,
    host: ResumeHost,
    first: dict[str, str],
    resume: Callable[[Mapping[str, str]], Reply],
) -> None:
    """A resume answered with another validator raises ImageDownloadError, not a splice."""
    host.first = first
    host.resume = resume
    with pytest.raises(ImageDownloadError) as info:
        await session.generate("changed between attempts")
    assert "the image changed between attempts" in str(info.value)
    assert len(host.image_requests) == 2  # asking again cannot help: not retried


async def test_whole_answer_of_the_same_image_is_skipped_to_the_resume_point(
    session: Session, host: ResumeHost
) -> None:
    """A 200 with the first answer's ETag (Range ignored): the delivered bytes are skipped."""
    host.first = {"ETag": '"a-1"'}
    host.resume = whole(A, ETag='"a-1"')
    result = await session.generate("range ignored")
    assert result.image.data == A
    assert _resumes(host) == [(f"bytes={HALF}-", '"a-1"')]


async def test_answers_without_validators_are_resumed_as_before(
    session: Session, host: ResumeHost
) -> None:
    """A host stating no validator at all: the resume is trusted on its length, as before."""
    host.resume = whole(A)
    result = await session.generate("no validators")
    assert result.image.data == A
    assert _resumes(host) == [(f"bytes={HALF}-", None)]


# --- a Content-Range must have a bounded number of digits -----------------------------


@pytest.mark.parametrize(
    "content_range",
    [
        pytest.param(f"bytes {HALF}-{len(A) - 1}/{'9' * 5000}", id="5000-digit-total"),
        pytest.param(f"bytes {'0' * 4990}{HALF}-{len(A) - 1}/{len(A)}", id="5000-digit-start"),
        pytest.param(f"bytes {HALF}-{'9' * 5000}/{len(A)}", id="5000-digit-end"),
        pytest.param(f"bytes {HALF}-{len(A) - 1}/{'9' * 19}", id="19-digit-total"),
    ],
)
async def test_content_range_with_too_many_digits_is_a_download_error(
    session: Session, host: ResumeHost, content_range: str
) -> None:
    """A Content-Range number longer than 18 digits is a malformed answer: ImageDownloadError."""

    def answer(headers: Mapping[str, str]) -> Reply:
        return 206, {"Content-Range": content_range}, A[_start(headers) :]

    host.resume = answer
    with pytest.raises(ImageDownloadError) as info:
        await session.generate("long content-range")
    assert "Content-Range" in str(info.value)
    assert len(host.image_requests) == 2


# --- the emulator's image host honours If-Range --------------------------------------


async def test_emulator_image_host_honours_if_range(zs: Session, emulator: Emulator) -> None:
    """The emulator answers 206 only when If-Range is its strong ETag, else the whole 200."""
    task = await (await zs.submit("if-range at the origin")).wait()
    url = task.results[0]
    async with aiohttp.ClientSession() as client:
        async with client.get(url) as full:
            data, etag = await full.read(), full.headers["ETag"]
        answers = {}
        for name, if_range in [
            ("match", etag),
            ("other", '"another"'),
            ("weak", f"W/{etag}"),
            ("date", formatdate(NOW, usegmt=True)),
        ]:
            headers = {"Range": "bytes=100-", "If-Range": if_range}
            async with client.get(url, headers=headers) as reply:
                answers[name] = (reply.status, await reply.read())
    assert answers["match"] == (206, data[100:])
    assert answers["other"] == (200, data)
    assert answers["weak"] == (200, data)
    assert answers["date"] == (200, data)


@pytest.mark.parametrize("digits", [pytest.param(19, id="19"), pytest.param(5000, id="5000")])
async def test_emulator_image_host_ignores_a_range_with_a_long_number(
    zs: Session, emulator: Emulator, digits: int
) -> None:
    """A Range number longer than 18 digits is not a range: the whole file, 200."""
    task = await (await zs.submit("a long range")).wait()
    url = task.results[0]
    async with aiohttp.ClientSession() as client:
        async with client.get(url) as full:
            data = await full.read()
        async with client.get(url, headers={"Range": f"bytes={'9' * digits}-"}) as reply:
            assert (reply.status, await reply.read()) == (200, data)
