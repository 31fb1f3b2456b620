"""Hardening of the pure core: statuses, hints, retry advice, redaction and link expiry."""

from __future__ import annotations

import logging
import math

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from zimage_async import AuthenticationError, TaskStatus, _links, _models
from zimage_async._models import Task
from zimage_async._parsing import parse_error, parse_retry_after, parse_task
from zimage_async._secret import redact_text
from zimage_async._urlpolicy import LinkPolicy

TASK_ID = "task-unified-1757165031-uyujaw3d"
KEY = "sk-live-abcdefghijklmnop"


def test_task_status_compares_equal_to_its_wire_string() -> None:
    """A TaskStatus member equals its wire string and prints as it."""
    wire: str = "completed"
    assert wire == TaskStatus.COMPLETED
    assert str(TaskStatus.COMPLETED) == "completed"
    assert f"{TaskStatus.FAILED}" == "failed"
    assert isinstance(TaskStatus.PENDING, str)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        pytest.param("succeeded", TaskStatus.COMPLETED, id="succeeded"),
        pytest.param("Success", TaskStatus.COMPLETED, id="success"),
        pytest.param("error", TaskStatus.FAILED, id="error"),
        pytest.param("expired", TaskStatus.FAILED, id="expired"),
        pytest.param("canceled", TaskStatus.CANCELLED, id="canceled"),
        pytest.param("queued", TaskStatus.UNKNOWN, id="queued-stays-unknown"),
    ],
)
def test_status_synonyms_map_to_the_documented_members(raw: str, status: TaskStatus) -> None:
    """Synonyms of the documented statuses read as their member; the raw value is kept."""
    task = parse_task({"id": TASK_ID, "status": raw})
    assert task.status is status
    assert task.raw_status == raw


def test_expired_task_fails_with_the_not_found_code() -> None:
    """An ``expired`` task without an error reads as failed with ``resource_not_found``."""
    task = parse_task({"id": TASK_ID, "status": "expired"})
    assert task.error is not None and task.error.code == "resource_not_found"


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_estimate_is_dropped_without_a_warning(
    value: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A NaN or infinite estimated_time is read as absent and logged at DEBUG only."""
    caplog.set_level(logging.DEBUG, logger="zimage_async")
    estimate = float(value)
    info = {"estimated_time": estimate}
    task = parse_task({"id": TASK_ID, "status": "pending", "task_info": info})
    assert task.estimated_time is None
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("estimated_time" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("suggestion", "seconds"),
    [
        pytest.param("retry after 1e9 seconds", 1e9, id="exponent"),
        pytest.param("retry after 2.5E3 s", 2500.0, id="upper-exponent"),
        pytest.param("retry after 60 seconds", 60.0, id="plain"),
    ],
)
def test_suggested_wait_reads_exponents(suggestion: str, seconds: float) -> None:
    """A suggestion written with an exponent is read as the whole number it names."""
    assert parse_retry_after(None, suggestion) == seconds


def test_overflowing_suggestion_stays_finite() -> None:
    """A suggested wait too large for a float is read as a huge finite wait."""
    wait = parse_retry_after(None, "retry after 1e999 seconds")
    assert wait is not None and math.isfinite(wait) and wait >= 1e9


def test_error_message_echoing_a_bearer_token_is_masked() -> None:
    """An error envelope that echoes ``Bearer <key>`` shows neither in text nor attributes."""
    body = (
        b'{"error": {"code": 401, "type": "authentication_error", '
        b'"message": "key Bearer ' + KEY.encode() + b' is invalid", '
        b'"fallback_suggestion": "check Bearer ' + KEY.encode() + b'"}}'
    )
    error = parse_error(401, {}, body, method="GET", path="/v1/tasks/x")
    assert isinstance(error, AuthenticationError)
    shown = f"{error} {error.message} {error.fallback_suggestion} {error!r} {error.args}"
    assert KEY not in shown


def test_redact_text_masks_given_secrets_and_bearer_tokens() -> None:
    """redact_text hides the named secrets anywhere and any Bearer token."""
    text = f"got {KEY} and Authorization: Bearer other-token-123"
    masked = redact_text(text, secrets=(KEY,))
    assert KEY not in masked and "other-token-123" not in masked


def test_task_repr_hides_signed_query_strings() -> None:
    """repr(Task) shows result links without their signatures."""
    task = Task(
        id=TASK_ID,
        raw_status="completed",
        results=("https://cdn.example/a/0.png?X-Amz-Signature=deadbeefcafe&exp=1",),
    )
    assert "deadbeefcafe" not in repr(task)
    assert "https://cdn.example/a/0.png" in repr(task)


def test_link_expiry_of_many_links_is_parsed_once_per_link(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Asking a 5,000-link task for its expiry once per image parses each link once."""
    calls = 0
    original = _links.link_expiry

    def counting(url: str) -> float | None:
        nonlocal calls
        calls += 1
        return original(url)

    monkeypatch.setattr(_links, "link_expiry", counting)
    links = tuple(f"https://cdn.example/{i}.png?expires={1_800_000_000 + i}" for i in range(5000))
    task = Task(id=TASK_ID, raw_status="completed", results=links)
    expiries = {task.stated_expiry for _ in links}
    assert expiries == {1_800_000_000.0}
    assert calls == len(links)
    assert _models.Task is Task


@given(st.text(alphabet=st.sampled_from(list("aZ09:/.-_~%@?#;= \t\x00\x7fé")), max_size=30))
def test_redacting_a_plain_link_quickly_gives_what_the_full_reading_gives(rest: str) -> None:
    """The quick path of redact_url agrees with splitting the URL, for every link."""
    from urllib.parse import urlsplit

    from zimage_async._links import redact_url

    for url in (f"https://{rest}", f"http://{rest}", f"HTTPS://{rest}"):
        try:
            parts = urlsplit(url)
        except ValueError:
            continue
        assert redact_url(url) == f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


# Links built from the pieces where URL parsers go wrong: user info, brackets, ports,
# percent signs and pluses, a fragment before a query, empty and blank parameters.
_URL_TEXT = st.text(alphabet="ab1:@[]%+=&?#/.-_ ~", max_size=12)
_LINKS = st.builds(
    lambda scheme, host, path, query, tail: f"{scheme}{host}{path}{query}{tail}",
    st.sampled_from(["https://", "http://", "HTTPS://", "ftp://", "https:", "//", ""]),
    st.one_of(st.sampled_from(["cdn.example", "127.0.0.1:8080", "[::1]", "u:p@h"]), _URL_TEXT),
    st.one_of(st.just("/0.png"), _URL_TEXT),
    st.one_of(st.just("?expires=1700000000&sig=ab"), st.just(""), _URL_TEXT.map("?".__add__)),
    st.one_of(st.just(""), _URL_TEXT.map("#".__add__)),
)


@given(_LINKS)
@example("https://cdn.example/0.png?sig=a+b&expires=1")  # parse_qs reads + as a space
@example("https://cdn.example/0.png?sig=a%2Fb&expires=1")  # and unquotes %
@example("https://[::1]:8080/0.png?exp=1")
def test_link_readers_agree_with_the_standard_library(url: str) -> None:
    """The shortcuts for common links read every link as urlsplit and parse_qs do."""
    from urllib.parse import parse_qs, urlsplit

    from zimage_async._links import _query, redact_url
    from zimage_async._urlpolicy import _ORIGIN

    try:
        parts = urlsplit(url)
    except ValueError:
        return
    assert _query(url) == parse_qs(parts.query)
    assert redact_url(url) == f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
    origin = _ORIGIN.match(url)
    if origin is not None and url.isprintable() and " " not in url:
        assert (origin[1].lower(), origin[2]) == (parts.scheme, parts.netloc)


def _refusal_by_urlsplit(policy: LinkPolicy, url: str) -> str | None:
    """LinkPolicy.refusal as first written: urlsplit and its port and host, every time."""
    from urllib.parse import urlsplit

    from zimage_async._urlpolicy import _host_refusal

    if not url.isprintable() or not frozenset("\\\t\n\r ").isdisjoint(url):
        return "it contains spaces, backslashes or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "it is not a valid URL (bad port or host)"
    scheme = parts.scheme.lower()
    if scheme != "https" and not (scheme == "http" and policy.allow_http):
        if scheme == "http":
            return "plain http is refused (https only, except for a loopback API)"
        return f"the scheme {scheme!r} is not https"
    if "@" in parts.netloc:
        return "it carries user info (credentials are never sent to an image host)"
    if not parts.hostname:
        return "it has no host"
    if port == 0:
        return "its port is 0"
    return _host_refusal(
        parts.hostname, allow_loopback=policy.allow_loopback, private=policy.allow_private
    )


# The same links with a character that parsers disagree on, or a control character.
_ODD_LINKS = st.builds(
    lambda url, at, odd: url[:at] + odd + url[at:],
    _LINKS,
    st.integers(0, 40),
    st.sampled_from(["\\", " ", "\t", "\n", "\r", "\x00", "\x7f", "\u00a0"]),
)


@given(
    st.one_of(_LINKS, _ODD_LINKS),
    st.sampled_from([LinkPolicy(), LinkPolicy.for_api("http://127.0.0.1:1")]),
)
def test_the_link_policy_judges_each_origin_once_as_it_judged_each_link(
    url: str, policy: LinkPolicy
) -> None:
    """Keeping verdicts per origin changes none of them."""
    assert policy.refusal(url) == _refusal_by_urlsplit(policy, url)
