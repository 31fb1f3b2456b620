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
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from yarl import URL

from zimage_async import (
    DEFAULT_BASE_URL,
    CallbackReceiver,
    InvalidRequestError,
    Session,
    SessionState,
)
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


class _NotAReceiver:
    """Has what a receiver has for a wait (``watch``), but is no CallbackReceiver."""

    def watch(self, task_id: str) -> None:  # pragma: no cover - never called
        raise AssertionError(task_id)


@pytest.mark.parametrize(
    "callbacks",
    [
        pytest.param("https://hooks.example.com/cb", id="the-url-instead"),
        pytest.param(object(), id="object"),
        pytest.param(_NotAReceiver(), id="look-alike"),
    ],
)
def test_callbacks_that_are_no_receiver_are_refused_when_the_session_is_made(
    callbacks: object,
) -> None:
    """Before: accepted, and every create was billed before a bare AttributeError."""
    with pytest.raises(InvalidRequestError) as caught:
        Session(api_key=KEY, base_url=BASE, callbacks=callbacks)  # type: ignore[arg-type]
    assert caught.value.field == "callbacks"
    assert "CallbackReceiver" in caught.value.rule
    assert "hooks.example.com" not in str(caught.value)


HUGE = 10**400


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        *[
            pytest.param(name, HUGE, id=f"{name}-huge")
            for name in (
                "timeout",
                "connect_timeout",
                "read_timeout",
                "link_ttl",
                "total_timeout",
                "image_timeout",
                "callback_poll_factor",
            )
        ],
        pytest.param("seed", [1], id="seed-list"),
        pytest.param("seed", True, id="seed-bool"),
        pytest.param("seed", {"a": 1}, id="seed-dict"),
        pytest.param("ca_bundle", 123, id="ca-bundle-int"),
        pytest.param("ca_bundle", b"ca.pem", id="ca-bundle-bytes"),
        pytest.param("ca_bundle", "", id="ca-bundle-empty"),
        pytest.param("environ", ["ZIMAGE_API_KEY"], id="environ-list"),
        pytest.param("environ", {"HTTPS_PROXY": 3128}, id="environ-int-value"),
        pytest.param("environ", {1: "x"}, id="environ-int-name"),
        pytest.param("max_credits", "5", id="max-credits-str"),
        pytest.param("max_credits", HUGE, id="max-credits-huge"),
        pytest.param("trust_env", "no", id="trust-env-str"),
        pytest.param("trust_env", 0, id="trust-env-int"),
        pytest.param("base_url", "", id="base-url-empty"),
        pytest.param("journal", "", id="journal-empty"),
    ],
)
def test_a_setting_no_check_caught_is_refused_by_name(
    setting: str, value: Any, tmp_path: Path
) -> None:
    """Before: a bare OverflowError, TypeError or AttributeError, or silently accepted."""
    options: dict[str, Any] = {"api_key": KEY, "base_url": BASE, "environ": {}, setting: value}
    if setting == "max_credits":
        options["journal"] = tmp_path / "j.sqlite"
    with pytest.raises(InvalidRequestError) as caught:
        Session(**options)
    assert caught.value.field == setting
    assert len(str(caught.value)) < 400  # a huge number is described, not written out


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        pytest.param("seed", "nightly-run", id="seed-str"),
        pytest.param("seed", 7.5, id="seed-float"),
        pytest.param("seed", b"x", id="seed-bytes"),
        pytest.param("max_credits", Decimal("5"), id="max-credits-decimal"),
        pytest.param("max_credits", Fraction(1, 2), id="max-credits-fraction"),
    ],
)
async def test_seeds_and_credits_that_worked_before_the_checks_are_still_taken(
    setting: str, value: Any, tmp_path: Path
) -> None:
    """What ``random.Random`` takes as a seed, and any real number of credits, work."""
    async with (
        Emulator(task_duration=0.05) as emu,
        Session(
            api_key=emu.api_key,
            base_url=emu.base_url,
            journal=tmp_path / "j.sqlite",
            **{setting: value},
        ) as zs,
    ):
        assert (await zs.generate("a cat")).images


def test_an_empty_base_url_says_to_leave_it_out() -> None:
    """``base_url=""`` went to production with the key; ``None`` is the way to the default."""
    with pytest.raises(InvalidRequestError) as caught:
        Session(api_key=KEY, base_url="", environ={"ZIMAGE_BASE_URL": BASE})
    assert caught.value.field == "base_url"
    assert "None" in str(caught.value)


def test_an_empty_base_url_variable_still_means_unset() -> None:
    """``ZIMAGE_BASE_URL=""`` is the default (the Session is made, never opened)."""
    session = Session(api_key=KEY, environ={"ZIMAGE_BASE_URL": ""})
    assert session.base_url == DEFAULT_BASE_URL
    assert session.state is SessionState.UNOPENED


@pytest.mark.parametrize(
    "base_url",
    [
        "https://svc:hunter2pw@api.example.com/apiv1\n",
        "https://svc:hunter2pw@api.example.com/api v1",
        "https://svc:hunter2pw@api.example.com:99999/apiv1",
        "https://svc:hunter2pw@api.example.com:port/apiv1",
        "ftp://svc:hunter2pw@api.example.com/apiv1",
        "svc:hunter2pw@api.example.com/apiv1",
        "http://svc:hunter2pw@api.example.com/apiv1",
        "https://svc:hunter2pw@[api.example.com]/apiv1",
        "https://api.example.com/apiv1?key=hunter2pw ",
    ],
)
@pytest.mark.parametrize("where", ["argument", "ZIMAGE_BASE_URL"])
def test_a_refused_base_url_never_shows_its_password(base_url: str, where: str) -> None:
    """Whichever rule refuses it (spaces, scheme, port), the credentials are not quoted."""
    options: dict[str, Any] = {"api_key": KEY, "environ": {}}
    if where == "argument":
        options["base_url"] = base_url
    else:
        options["environ"] = {"ZIMAGE_BASE_URL": base_url}
    with pytest.raises(InvalidRequestError) as caught:
        Session(**options)
    assert caught.value.field == "base_url"
    assert "hunter2pw" not in str(caught.value)


@pytest.mark.parametrize(
    "callback_url",
    [
        pytest.param(URL("https://hooks.example.com/z?t=cbtok_9f8e7d6c5b4a"), id="yarl"),
        pytest.param(b"https://hooks.example.com/z?t=cbtok_9f8e7d6c5b4a", id="bytes"),
    ],
)
def test_a_callback_url_of_another_type_is_named_by_its_type_only(callback_url: object) -> None:
    """Its query is a token: the refusal says what type it was, never what it held."""
    with pytest.raises(InvalidRequestError) as caught:
        Session(
            api_key=KEY,
            base_url=BASE,
            callbacks=CallbackReceiver(),
            callback_url=callback_url,  # type: ignore[arg-type]
        )
    assert caught.value.field == "callback_url"
    assert "cbtok_9f8e7d6c5b4a" not in str(caught.value)
    assert type(callback_url).__name__ in str(caught.value)


def test_a_journal_url_of_another_type_never_shows_its_password() -> None:
    """A bytes postgresql:// URL was quoted whole in the refusal, password and all."""
    with pytest.raises(InvalidRequestError) as caught:
        Session(api_key=KEY, base_url=BASE, journal=b"postgresql://app:hunter2pw@db/zimage")  # type: ignore[arg-type]
    assert caught.value.field == "journal"
    assert "hunter2pw" not in str(caught.value)
    assert "bytes" in str(caught.value)
