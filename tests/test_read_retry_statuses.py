"""A read answered 408 Request Timeout or 425 Too Early is sent again, as a 429 or a 5xx.

Both say "send it again" (RFC 9110, RFC 8470), and a read is safe to repeat: a proxy's
408 on one task read ended the wait on a billed task, and an image host's 408 the
download. A create answered so stays uncertain (it may have been handled): see
``docs/protocol.md``.
"""

from __future__ import annotations

import pytest
from aiohttp import web

from zimage_async import APIError, PollSchedule
from zimage_async._api import judge_read_failure
from zimage_async._imagereply import ImageVerdict, judge_image_reply

from .conftest import _png, loopback_session, serving

TASK_ID = "task-unified-1796285667-early001"


@pytest.mark.parametrize("status", [408, 425])
def test_a_read_answered_408_or_425_is_tried_again(status: int) -> None:
    error = APIError("try again", status=status)
    assert judge_read_failure(error) == 0.0
    sample = b"<html>Request Timeout</html>"
    reply = judge_image_reply(
        status, sample=sample, stated_expiry=None, now=0, fresh=False, resuming=False
    )
    assert reply.verdict is ImageVerdict.TRANSIENT


@pytest.mark.parametrize("status", [400, 404, 409, 410, 422])
def test_other_4xx_reads_are_not_tried_again(status: int) -> None:
    assert judge_read_failure(APIError("no", status=status)) is None


@pytest.mark.parametrize("status", [408, 425])
async def test_a_wait_goes_on_past_a_proxys_408_or_425(status: int) -> None:
    """One task read and one image read answered *status* (an HTML page): the wait succeeds."""
    answered: list[str] = []
    where: list[str] = []  # the server's base URL, once it listens

    async def create(request: web.Request) -> web.Response:
        return web.json_response({"id": TASK_ID, "status": "processing", "progress": 10})

    async def read(request: web.Request) -> web.Response:
        answered.append("read")
        if answered.count("read") == 1:
            return web.Response(text="<html>try again</html>", status=status)
        body = {"id": TASK_ID, "status": "completed", "results": [f"{where[0]}/img/0.png"]}
        return web.json_response(body)

    async def image(request: web.Request) -> web.Response:
        answered.append("image")
        if answered.count("image") == 1:
            return web.Response(text="<html>try again</html>", status=status)
        return web.Response(body=_png((64, 64)), content_type="image/png")

    app = web.Application()
    app.router.add_post("/apiv1/v1/images/generations", create)
    app.router.add_get(f"/apiv1/v1/tasks/{TASK_ID}", read)
    app.router.add_get("/img/0.png", image)
    poll = PollSchedule(wait_min=0.01, wait_max=0.05, jitter=0.0, timeout=20.0)
    async with serving(app) as base, loopback_session(base, poll=poll) as zs:
        where.append(base)
        result = await (await zs.submit("a cat"))
    assert len(result.images) == 1
    assert answered.count("read") == 2 and answered.count("image") == 2
