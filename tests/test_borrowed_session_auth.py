"""A borrowed aiohttp.ClientSession made with ``auth=`` is refused when the Session is made.

aiohttp will not combine a session's Basic credentials with the ``Authorization``
header that carries the API key: it raises before sending. Taken at face value, every
create would then be reported as maybe billed although nothing was sent, and every task
read retried for nothing. So such a session is refused up front, naming
``http_session`` and never showing its credentials.
"""

from __future__ import annotations

import traceback
import warnings

import aiohttp
import pytest

from zimage_async import InvalidRequestError, Session
from zimage_async.emulator import Emulator

PASSWORD = "corp-PASSWORD-0123456789"


def _with_auth() -> aiohttp.ClientSession:
    """Make a ClientSession with Basic credentials (``auth=`` is deprecated in aiohttp 3.14)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return aiohttp.ClientSession(auth=aiohttp.BasicAuth("corp", PASSWORD))


async def test_a_borrowed_session_with_auth_is_refused_before_anything_is_sent() -> None:
    """Before: the Session was made, and each create raised SubmissionUncertainError."""
    async with Emulator() as emu, _with_auth() as http:
        with pytest.raises(InvalidRequestError) as caught:
            Session(api_key=emu.api_key, base_url=emu.base_url, http_session=http, environ={})
        assert not http.closed  # still the caller's, untouched
        assert not emu.requests
    error = caught.value
    message = str(error)
    assert error.field == "http_session"
    assert "auth" in message and "Authorization" in message
    assert PASSWORD not in message
    assert "corp" not in message
    shown = "".join(traceback.format_exception(error))
    assert PASSWORD not in shown


async def test_a_borrowed_session_without_auth_is_still_taken() -> None:
    """Default headers and the rest of a borrowed session are its owner's business."""
    async with (
        Emulator(task_duration=0.01) as emu,
        aiohttp.ClientSession(headers={"X-Team": "renders"}) as http,
        Session(api_key=emu.api_key, base_url=emu.base_url, http_session=http, environ={}) as zs,
    ):
        handle = await zs.submit("a cat")
        assert handle.id
    assert len(emu.billed_tasks()) == 1
