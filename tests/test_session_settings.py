"""A Session's settings are checked up front: each refusal names the setting and its rule.

Nothing is sent for a refused setting (no server is even started for most of these),
and a refused Session leaves no plain API key in the frames of its traceback.
"""

from __future__ import annotations

import asyncio
import math
import threading
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from zimage_async import InvalidRequestError, Session
from zimage_async.emulator import Emulator

KEY = "sk-test-SETTINGS-0123456789"
BASE = "http://127.0.0.1:9/apiv1"  # never contacted: every Session here is refused first


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:99999/apiv1",
        "http://127.0.0.1:abc/apiv1",
        "https://api.example.com:99999/apiv1",
        "http://127.0.0.1:8080/apiv1 ",
        "http://127.0.0.1:8080/api v1",
        "\thttp://127.0.0.1:8080/apiv1",
        "http://[::1/apiv1",
        "https://[api.example.com]/apiv1",
    ],
)
def test_a_base_url_that_cannot_be_requested_is_refused(base_url: str) -> None:
    """A port out of range or not a number, whitespace or an unclosed IPv6 bracket."""
    with pytest.raises(InvalidRequestError) as caught:
        Session(api_key=KEY, base_url=base_url)
    assert caught.value.field == "base_url"


async def test_a_base_url_with_a_bad_port_is_refused_before_any_create() -> None:
    """The create is never attempted (so it is never reported as maybe billed)."""
    async with Emulator() as emu:
        port = urlsplit(emu.base_url).port
        bad = emu.base_url.replace(f":{port}/", ":99999/")
        assert bad != emu.base_url
        with pytest.raises(InvalidRequestError):
            Session(api_key=emu.api_key, base_url=bad)
        assert len(emu.ledger) == 0


@pytest.mark.parametrize("key", [f"{KEY}\n", f"  {KEY}\r\n", f"\t{KEY}"])
def test_whitespace_around_the_key_is_dropped(key: str) -> None:
    """A key read from a file or a variable with its line end still works."""
    assert "\n" not in repr(Session(api_key=key, base_url=BASE))
    Session(api_key=key, base_url=BASE)


@pytest.mark.parametrize("key", ["sk-test two parts", "sk-test\x00nul", "sk-\u2028line"])
def test_a_key_with_whitespace_or_controls_inside_is_refused(key: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        Session(api_key=key, base_url=BASE)
    assert caught.value.field == "api_key"
    assert key not in str(caught.value)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("max_connections", math.nan),
        ("max_connections", "10"),
        ("max_connections", 2.5),
        ("max_connections", True),
        ("timeout", "30"),
        ("timeout", math.inf),
        ("timeout", math.nan),
        ("connect_timeout", None),
        ("image_timeout", -1),
        ("callback_poll_factor", "2"),
        ("user_agent", None),
        ("user_agent", b"agent"),
        ("poll", {"wait_min": 1}),
        ("retry", 5),
        ("http_session", "x"),
        ("api_key", b"sk-test-bytes-0123"),
        ("max_image_bytes", 1.5),
    ],
)
def test_a_setting_of_the_wrong_kind_is_refused_by_name(setting: str, value: Any) -> None:
    """Not a bare TypeError, AttributeError or a hang later: the setting and its rule."""
    options: dict[str, Any] = {"api_key": KEY, "base_url": BASE, setting: value}
    with pytest.raises(InvalidRequestError) as caught:
        Session(**options)
    assert caught.value.field == setting


@pytest.mark.parametrize("where", ["ca_bundle", "SSL_CERT_FILE"])
def test_a_missing_ca_bundle_is_refused_by_name(where: str, tmp_path: Path) -> None:
    """A CA file that does not exist (or is not PEM) is named when the Session is made."""
    missing = str(tmp_path / "no-such-ca.pem")
    options: dict[str, Any] = {"api_key": KEY, "base_url": BASE}
    if where == "ca_bundle":
        options["ca_bundle"] = missing
    else:
        options["environ"] = {"SSL_CERT_FILE": missing}
    with pytest.raises(InvalidRequestError) as caught:
        Session(**options)
    assert caught.value.field == where
    assert "no-such-ca.pem" in str(caught.value)


async def test_a_session_that_fails_to_open_leaves_its_journal_closed(tmp_path: Path) -> None:
    """``async with`` a Session whose pool cannot open: the journal it opened is closed."""
    before = set(threading.enumerate())
    session = Session(api_key=KEY, base_url=BASE, journal=tmp_path / "j.sqlite")
    session._transport.open = _broken_open  # type: ignore[method-assign]
    with pytest.raises(OSError, match="cannot open"):
        async with session:
            pass  # pragma: no cover - never entered
    for _ in range(200):  # the journal's thread ends once it is closed (at most 2 s)
        left = [t for t in set(threading.enumerate()) - before if "journal" in t.name]
        if not left:
            break
        await asyncio.sleep(0.01)
    assert left == []


def _broken_open() -> None:
    raise OSError("cannot open the connection pool")


def _locals_text(exc: BaseException) -> str:
    rendered = traceback.TracebackException.from_exception(exc, capture_locals=True)
    return "".join(rendered.format())


def test_a_refused_session_leaves_no_plain_key_in_its_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the key in ZIMAGE_API_KEY and a bad base URL, no frame's locals show the key."""
    monkeypatch.setenv("ZIMAGE_API_KEY", KEY)
    monkeypatch.setenv("ZIMAGE_BASE_URL", "http://api.example.com/apiv1")
    with pytest.raises(InvalidRequestError) as caught:
        Session()
    text = _locals_text(caught.value)  # the standard library's renderer of locals
    assert KEY not in text
    for frame, _ in traceback.walk_tb(caught.value.__traceback__):
        for value in frame.f_locals.values():
            if isinstance(value, str):
                assert KEY not in value
            elif isinstance(value, Mapping):
                assert KEY not in [v for v in value.values() if isinstance(v, str)]


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy", "ALL_PROXY"])
@pytest.mark.parametrize("value", ["http://user:pw-secret@[bad", "http://[::1:3128"])
def test_a_proxy_variable_that_cannot_be_read_is_refused_naming_it(
    variable: str, value: str
) -> None:
    """Not a bare ValueError: an InvalidRequestError naming the variable, never its value."""
    with pytest.raises(InvalidRequestError) as caught:
        Session(api_key=KEY, base_url=BASE, environ={variable: value})
    assert caught.value.field == variable.upper()
    assert "pw-secret" not in str(caught.value)
