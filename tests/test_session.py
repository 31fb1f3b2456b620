"""Session configuration and lifecycle, over real HTTP to the emulator."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

import zimage_async
from zimage_async import (
    AuthenticationError,
    GenerationRequest,
    InvalidRequestError,
    Session,
    SessionState,
)
from zimage_async.emulator import Emulator

from .conftest import FAST_POLL, FAST_RETRY


def test_public_names_match_all() -> None:
    """__all__ lists exactly the public names of the package, sorted."""
    public = {
        name
        for name in dir(zimage_async)
        if not name.startswith("_")
        and not inspect.ismodule(getattr(zimage_async, name))
        and name != "annotations"
    }
    assert set(zimage_async.__all__) - {"__version__"} == public


def test_import_does_not_load_the_web_server() -> None:
    """``import zimage_async`` leaves aiohttp.web unloaded until CallbackReceiver is used."""
    code = (
        "import sys, zimage_async; assert 'aiohttp.web' not in sys.modules; "
        "zimage_async.CallbackReceiver; assert 'aiohttp.web' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])  # noqa: S603


def test_import_does_not_load_the_xml_parser() -> None:
    """``import zimage_async`` leaves the XML parser unloaded until metadata is read."""
    code = (
        "import sys, zimage_async; assert 'xml.etree.ElementTree' not in sys.modules; "
        "from zimage_async._metadata import _xmp_read; _xmp_read(b'<a/>'); "
        "assert 'xml.etree.ElementTree' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])  # noqa: S603


def test_missing_key_says_how_to_set_one() -> None:
    """With no key anywhere, the error names ZIMAGE_API_KEY and the emulator."""
    with pytest.raises(InvalidRequestError) as info:
        Session(environ={})
    assert info.value.field == "api_key"
    assert "ZIMAGE_API_KEY" in str(info.value)
    assert "emulator" in str(info.value)


def test_key_and_base_url_come_from_the_environment() -> None:
    """ZIMAGE_API_KEY and ZIMAGE_BASE_URL configure a Session made without arguments."""
    session = Session(environ={"ZIMAGE_API_KEY": "k", "ZIMAGE_BASE_URL": "https://h.example/v/"})
    assert session.base_url == "https://h.example/v"


def test_default_base_url_is_production() -> None:
    """Without ZIMAGE_BASE_URL the production base URL is used."""
    assert Session(environ={"ZIMAGE_API_KEY": "k"}).base_url == "https://ai.odkkk.com/apiv1"


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://api.example.com/apiv1", id="plain-http-remote"),
        pytest.param("ftp://api.example.com", id="ftp"),
        pytest.param("api.example.com", id="no-scheme"),
        pytest.param("https://user:pw@api.example.com", id="credentials"),
    ],
)
def test_bad_base_url_is_refused(url: str) -> None:
    """A base URL that would leak the key or cannot work is refused up front."""
    with pytest.raises(InvalidRequestError) as info:
        Session(api_key="k", base_url=url)
    assert info.value.field == "base_url"


def test_plain_http_allowed_on_loopback() -> None:
    """Plain http is accepted for loopback hosts such as the emulator."""
    assert Session(api_key="k", base_url="http://127.0.0.1:9/apiv1").base_url.startswith("http:")


async def test_use_before_open_is_a_runtime_error(emulator: Emulator) -> None:
    """Submitting on a Session that was never opened raises RuntimeError, sending nothing."""
    session = Session(api_key=emulator.api_key, base_url=emulator.base_url)
    with pytest.raises(RuntimeError, match="not open"):
        await session.submit("a cat")
    assert emulator.request_counts.get("create", 0) == 0


async def test_use_after_close_is_a_runtime_error(emulator: Emulator) -> None:
    """A closed Session refuses new work with a clear RuntimeError."""
    async with Session(api_key=emulator.api_key, base_url=emulator.base_url) as session:
        pass
    assert session.state is SessionState.CLOSED
    with pytest.raises(RuntimeError, match="closed"):
        await session.submit("a cat")
    with pytest.raises(RuntimeError, match="closed"):
        await session.open()


async def test_close_is_idempotent(emulator: Emulator) -> None:
    """Closing twice is harmless."""
    session = await Session(api_key=emulator.api_key, base_url=emulator.base_url).open()
    await session.close()
    await session.close()
    assert session.state is SessionState.CLOSED


async def test_borrowed_http_session_is_not_closed(emulator: Emulator) -> None:
    """A caller-owned aiohttp session is used and left open."""
    async with aiohttp.ClientSession() as http:
        async with Session(
            api_key=emulator.api_key,
            base_url=emulator.base_url,
            http_session=http,
            poll=FAST_POLL,
            retry=FAST_RETRY,
        ) as session:
            result = await session.generate("a borrowed connection")
        assert not http.closed
        assert result.images[0].data


async def test_wrong_key_is_not_retried(emulator: Emulator) -> None:
    """A 401 raises AuthenticationError after one request."""
    async with Session(api_key="wrong", base_url=emulator.base_url, retry=FAST_RETRY) as session:
        with pytest.raises(AuthenticationError):
            await session.submit("a cat")
    assert emulator.request_counts["create"] == 1
    assert len(emulator.ledger) == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({"prompt": ""}, "prompt", id="empty-prompt"),
        pytest.param({"prompt": "x" * 2001}, "prompt", id="long-prompt"),
        pytest.param({"prompt": "a", "size": "16:10"}, "size", id="bad-ratio"),
        pytest.param({"prompt": "a", "seed": 0}, "seed", id="seed-zero"),
        pytest.param({"prompt": "a", "nsfw_check": "yes"}, "nsfw_check", id="nsfw-string"),
        pytest.param(
            {"prompt": "a", "callback_url": "http://example.com/h"},
            "callback_url",
            id="http-callback",
        ),
        pytest.param(
            {"prompt": "a", "callback_url": "https://10.0.0.1/h"},
            "callback_url",
            id="private-callback",
        ),
    ],
)
async def test_invalid_request_sends_nothing(
    zs: Session, emulator: Emulator, kwargs: dict[str, object], field: str
) -> None:
    """Bad input raises InvalidRequestError naming the field, before any request."""
    prompt = kwargs.pop("prompt")
    with pytest.raises(InvalidRequestError) as info:
        await zs.submit(prompt, **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    assert isinstance(info.value, ValueError)
    assert emulator.request_counts.get("create", 0) == 0


async def test_request_object_and_fields_are_exclusive(zs: Session) -> None:
    """Passing a GenerationRequest together with keyword fields is a TypeError."""
    with pytest.raises(TypeError):
        await zs.submit(GenerationRequest(prompt="a"), seed=3)


def test_task_id_is_validated(emulator: Emulator) -> None:
    """A stored id that is not a task id is refused without a request."""
    session = Session(api_key="k", base_url=emulator.base_url)
    with pytest.raises(InvalidRequestError) as info:
        session.task("../../etc/passwd")
    assert info.value.field == "task_id"


def test_repr_hides_the_key() -> None:
    """The Session's repr shows the URL and state, never the key."""
    session = Session(api_key="sk-very-secret", base_url="https://h.example")
    assert "sk-very-secret" not in repr(session)
    assert "sk-very-secret" not in repr(vars(session))
