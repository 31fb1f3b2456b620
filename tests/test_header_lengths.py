"""An API key or User-Agent too long for any server's header line is refused up front.

A 9,000-character key (a whole file pasted, say) or User-Agent used to be sent: the
server's header parser answered 400 before reading the request, and a create ended in
``SubmissionUncertainError`` ("a task may have been created and billed"), a read in a
bad-request error, for a value the SDK could have refused. Servers take header lines
of about 8 KB (aiohttp's and nginx's defaults); each value is now refused above
4,096 characters, naming the field and never quoting the key. The emulator on
127.0.0.1 counts the requests.
"""

from __future__ import annotations

import pytest

from zimage_async import InvalidRequestError, Session
from zimage_async.emulator import Emulator

LONG = "s" * 9000
MAX_HEADER_CHARS = 4096


def test_a_key_too_long_for_a_header_line_is_refused(emulator: Emulator) -> None:
    """api_key of 9,000 characters: refused naming api_key, the key not quoted."""
    with pytest.raises(InvalidRequestError) as caught:
        Session(api_key=LONG, base_url=emulator.base_url)
    assert caught.value.field == "api_key"
    assert str(MAX_HEADER_CHARS) in caught.value.rule
    assert "9000 characters" in caught.value.problem
    assert "sss" not in str(caught.value)
    assert not emulator.requests


def test_a_key_from_the_environment_too_long_is_refused(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ZIMAGE_API_KEY of 9,000 characters: the same refusal, before any request."""
    monkeypatch.setenv("ZIMAGE_API_KEY", LONG)
    with pytest.raises(InvalidRequestError) as caught:
        Session(base_url=emulator.base_url)
    assert caught.value.field == "api_key"
    assert "sss" not in str(caught.value)


def test_a_user_agent_too_long_for_a_header_line_is_refused(emulator: Emulator) -> None:
    """user_agent of 9,000 characters: refused naming user_agent."""
    with pytest.raises(InvalidRequestError) as caught:
        Session(api_key=emulator.api_key, base_url=emulator.base_url, user_agent="u" * 9000)
    assert caught.value.field == "user_agent"
    assert "9000 characters" in caught.value.problem
    assert not emulator.requests


async def test_values_at_the_limit_are_sent(emulator: Emulator) -> None:
    """A User-Agent of exactly 4,096 characters is taken, sent, and the create answered."""
    agent = "u" * MAX_HEADER_CHARS
    async with Session(
        api_key=emulator.api_key, base_url=emulator.base_url, user_agent=agent
    ) as zs:
        await zs.submit("a cat")
    (create,) = emulator.requests
    assert create.status == 200
    assert (create.header("User-Agent") or "").startswith("uuuu")
