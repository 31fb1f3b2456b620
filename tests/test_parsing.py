"""Reading the API's answers: tasks, error envelopes, retry hints (no network)."""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zimage_async import (
    APIError,
    BadRequestError,
    InternalServerError,
    MalformedResponseError,
    NotFoundError,
    RateLimitError,
    ServiceUnavailableError,
    Task,
    TaskInfo,
    TaskStatus,
    UpstreamError,
)
from zimage_async._parsing import (
    parse_error,
    parse_json,
    parse_retry_after,
    parse_task,
    parse_task_reply,
    salvage_task_id,
)

COMPLETED: dict[str, Any] = {
    "created": 1756817821,
    "id": "task-unified-1756817821-4x3rx6ny",
    "model": "z-image-turbo",
    "object": "image.generation.task",
    "progress": 100,
    "results": ["https://files.example.com/task-unified-1756817821-4x3rx6ny/0.png"],
    "status": "completed",
    "task_info": {"can_cancel": False},
    "type": "image",
}


def test_documented_completed_example_parses() -> None:
    """The documented completed task parses with its result URL."""
    task = parse_task(COMPLETED)
    assert task.status is TaskStatus.COMPLETED
    assert task.results == (COMPLETED["results"][0],)
    assert task.task_info is not None and task.task_info.can_cancel is False


def test_unknown_fields_are_ignored() -> None:
    """Fields the SDK does not know are ignored, nested ones too."""
    payload = {**COMPLETED, "future": {"x": 1}, "task_info": {"can_cancel": False, "new": 2}}
    assert parse_task(payload).id == COMPLETED["id"]


def test_unknown_status_is_kept_raw() -> None:
    """An undocumented status reads as UNKNOWN and keeps its raw text."""
    task = parse_task({"id": "task-unified-1-a", "status": "queued"})
    assert task.status is TaskStatus.UNKNOWN
    assert task.raw_status == "queued"
    assert not task.is_terminal


@pytest.mark.parametrize("raw", ["cancelled", "canceled", "CANCELLED"])
def test_cancelled_is_terminal(raw: str) -> None:
    """The cancelled status the callback text mentions ends a task."""
    assert parse_task({"id": "task-unified-1-a", "status": raw}).is_terminal


@pytest.mark.parametrize(
    "code", [pytest.param("service_error", id="str"), pytest.param(500, id="int")]
)
def test_task_error_code_accepts_int_or_string(code: object) -> None:
    """A failed task's error code is kept as text, whether sent as int or string."""
    task = parse_task(
        {"id": "task-unified-1-a", "status": "failed", "error": {"code": code, "message": "m"}}
    )
    assert task.error is not None and task.error.code == str(code)


def test_failed_task_without_error_gets_unknown_error() -> None:
    """A failed task with no error block still carries a code."""
    task = parse_task({"id": "task-unified-1-a", "status": "failed"})
    assert task.error is not None and task.error.code == "unknown_error"


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        pytest.param({"status": "pending"}, "$.id", id="missing-id"),
        pytest.param({"id": 5, "status": "pending"}, "$.id", id="int-id"),
        pytest.param({"id": None, "status": "pending"}, "$.id", id="null-id"),
        pytest.param({"id": "task-unified-1-a", "status": None}, "$.status", id="null-status"),
        pytest.param(
            {"id": "task-unified-1-a", "status": "completed", "results": [None]},
            "$.results",
            id="null-result-link",
        ),
        pytest.param(
            {"id": "task-unified-1-a", "status": "completed", "results": "http://x"},
            "$.results",
            id="results-not-a-list",
        ),
        pytest.param([1, 2], "$", id="not-an-object"),
    ],
)
def test_malformed_task_names_the_path(payload: object, path: str) -> None:
    """A task that breaks the schema raises MalformedResponseError naming the bad path."""
    with pytest.raises(MalformedResponseError) as info:
        parse_task(payload)
    assert info.value.path == path


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"id": "task-unified-1', id="cut-json"),
        pytest.param(b"<html>oops</html>", id="html"),
        pytest.param(b"\xff\xfe", id="binary"),
        pytest.param(b"", id="empty"),
    ],
)
def test_non_json_2xx_is_malformed(body: bytes) -> None:
    """A 2xx answer that is not JSON raises MalformedResponseError."""
    with pytest.raises(MalformedResponseError):
        parse_task_reply(200, {}, body)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        max_leaves=20,
    )
)
def test_parser_raises_only_malformed_on_random_json(payload: object) -> None:
    """Random JSON either parses or raises MalformedResponseError, nothing else."""
    body = json.dumps(payload).encode()
    with contextlib.suppress(MalformedResponseError):
        parse_task_reply(200, {}, body)


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "id",
                "status",
                "progress",
                "results",
                "error",
                "task_info",
                "usage",
                "created",
                "model",
            ]
        ),
        st.none()
        | st.booleans()
        | st.integers()
        | st.text()
        | st.lists(st.text())
        | st.dictionaries(st.text(), st.integers() | st.text()),
    )
)
def test_parser_raises_only_malformed_on_task_like_json(payload: dict[str, object]) -> None:
    """Task-shaped JSON with random values parses or raises MalformedResponseError."""
    with contextlib.suppress(MalformedResponseError):
        parse_task(payload)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        pytest.param(400, BadRequestError, id="400"),
        pytest.param(404, NotFoundError, id="404"),
        pytest.param(429, RateLimitError, id="429"),
        pytest.param(500, InternalServerError, id="500"),
        pytest.param(502, UpstreamError, id="502"),
        pytest.param(503, ServiceUnavailableError, id="503"),
        pytest.param(418, APIError, id="undocumented"),
    ],
)
def test_error_status_maps_to_class(status: int, cls: type[APIError]) -> None:
    """Each documented status gets its own APIError subclass."""
    error = parse_error(status, {}, b"{}")
    assert type(error) is cls
    assert error.status == status


def test_error_envelope_fields_are_kept() -> None:
    """The envelope's type, param, code and suggestion reach the exception."""
    body = json.dumps(
        {
            "error": {
                "code": "invalid_task_id",
                "message": "bad id",
                "type": "invalid_request_error",
                "param": "task_id",
            }
        }
    ).encode()
    error = parse_error(400, {}, body, method="GET", path="/v1/tasks/x")
    assert (error.code, error.type, error.param) == (
        "invalid_task_id",
        "invalid_request_error",
        "task_id",
    )
    assert "bad id" in str(error) and "task_id" in str(error)


def test_error_without_envelope_still_typed() -> None:
    """An HTML error page from a proxy still gives the status's class, with no type."""
    error = parse_error(502, {}, b"<html>Bad Gateway</html>")
    assert isinstance(error, UpstreamError)
    assert error.type is None


@pytest.mark.parametrize(
    ("header", "suggestion", "expected"),
    [
        pytest.param("7", None, 7.0, id="header-seconds"),
        pytest.param(None, "retry after 60 seconds", 60.0, id="suggestion"),
        pytest.param(None, "Retry after 2 minutes", 120.0, id="minutes"),
        pytest.param("5", "retry after 30 seconds", 30.0, id="longest-wins"),
        pytest.param(None, "try again later", None, id="no-number"),
        pytest.param("soon", None, None, id="garbage-header"),
        pytest.param("-3", None, None, id="negative"),
        pytest.param("Wed, 21 Oct 2015 07:28:10 GMT", None, 10.0, id="http-date"),
        pytest.param(" 12 ", None, 12.0, id="spaces"),
        pytest.param("1.5", None, 1.5, id="fraction"),
        # Not delay-seconds (digits, RFC 9110): Python's float() reads them, a server
        # did not mean them: no advice, the policy's own wait.
        pytest.param("1_0", None, None, id="underscore"),
        pytest.param("inf", None, None, id="infinity"),
        pytest.param("1e400", None, None, id="exponent"),
        pytest.param("+5", None, None, id="sign"),
        pytest.param("\u0665", None, None, id="arabic-digit"),
        pytest.param("9" * 30, None, 1e11, id="huge-digits"),
    ],
)
def test_retry_after(header: str | None, suggestion: str | None, expected: float | None) -> None:
    """Retry-After headers and 'retry after N seconds' suggestions give the wait."""
    now = 1445412480.0  # 07:28:00 GMT that day
    assert parse_retry_after(header, suggestion, now=now) == expected


def test_rate_limit_error_carries_retry_after() -> None:
    """A 429 envelope's suggestion becomes the error's retry_after."""
    body = json.dumps(
        {
            "error": {
                "code": 429,
                "message": "Rate limit exceeded",
                "type": "rate_limit_error",
                "fallback_suggestion": "retry after 60 seconds",
            }
        }
    ).encode()
    error = parse_error(429, {"Retry-After": "3"}, body)
    assert error.retry_after == 60.0


@pytest.mark.parametrize(
    "hints",
    [
        pytest.param({"task_info": {"can_cancel": "yes"}}, id="string-bool"),
        pytest.param({"task_info": {"estimated_time": "10 s"}}, id="string-estimate"),
        pytest.param({"usage": "free"}, id="usage-not-object"),
        pytest.param({"created": "yesterday"}, id="string-created"),
    ],
)
def test_malformed_hints_are_dropped_not_fatal(hints: dict[str, object]) -> None:
    """A task with garbled hint fields still parses; only the garbled values are lost."""
    task = parse_task({"id": "task-unified-1-a", "status": "pending", **hints})
    assert task.id == "task-unified-1-a"
    assert task.estimated_time is None and task.created is None
    assert task.task_info is None or task.task_info.can_cancel is None
    assert task.usage is None


def test_salvage_finds_only_complete_ids() -> None:
    """An id is recovered from a cut answer only when it is complete."""
    assert salvage_task_id(b'{"id": "task-unified-1757165031-uyujaw3d", "st') == (
        "task-unified-1757165031-uyujaw3d"
    )
    assert salvage_task_id(b'{"id": "task-unified-1757165031-uyu') is None


PENDING: dict[str, Any] = {
    "id": "task-unified-1757165031-uyujaw3d",
    "status": "pending",
    "progress": 0,
    "created": 1757165031,
    "model": "z-image-turbo",
    "task_info": {"can_cancel": True, "estimated_time": 12},
    "usage": {"billing_rule": "per_image", "credits_reserved": 2.5, "user_group": "default"},
}
OPTIONAL_FIELDS = ["progress", "results", "error", "created", "model", "task_info", "usage"]


@pytest.mark.parametrize("field", OPTIONAL_FIELDS)
def test_null_optional_field_reads_as_absent(field: str) -> None:
    """Each optional task field sent as null parses as if it were left out."""
    absent = {k: v for k, v in PENDING.items() if k != field}
    assert parse_task({**PENDING, field: None}) == parse_task(absent)


@pytest.mark.parametrize(
    ("block", "field"),
    [
        pytest.param("task_info", "can_cancel", id="can_cancel"),
        pytest.param("task_info", "estimated_time", id="estimated_time"),
        pytest.param("usage", "billing_rule", id="billing_rule"),
        pytest.param("usage", "credits_reserved", id="credits_reserved"),
        pytest.param("usage", "user_group", id="user_group"),
    ],
)
def test_null_hint_subfield_reads_as_absent(block: str, field: str) -> None:
    """A null inside task_info or usage reads as absent and keeps the block's other fields."""
    inner = {k: v for k, v in PENDING[block].items() if k != field}
    nulled = parse_task({**PENDING, block: {**inner, field: None}})
    assert nulled == parse_task({**PENDING, block: inner})
    assert getattr(getattr(nulled, block), field) is None


@pytest.mark.parametrize(
    ("payload", "kept"),
    [
        pytest.param(
            {"task_info": {"can_cancel": True, "estimated_time": "soon"}},
            {"task_info": {"can_cancel": True}},
            id="bad-estimate-keeps-can-cancel",
        ),
        pytest.param(
            {"task_info": {"can_cancel": "yes", "estimated_time": 3}},
            {"task_info": {"estimated_time": 3}},
            id="bad-can-cancel-keeps-estimate",
        ),
        pytest.param(
            {"usage": {"credits_reserved": "lots", "billing_rule": "per_image"}},
            {"usage": {"billing_rule": "per_image"}},
            id="bad-credits-keep-rule",
        ),
        pytest.param(
            {"task_info": [], "usage": {"credits_reserved": 1}, "model": "z-image-turbo"},
            {"usage": {"credits_reserved": 1}, "model": "z-image-turbo"},
            id="bad-block-keeps-other-blocks",
        ),
        pytest.param(
            {"created": "yesterday", "model": "z-image-turbo", "usage": {"user_group": "vip"}},
            {"model": "z-image-turbo", "usage": {"user_group": "vip"}},
            id="bad-created-keeps-model-and-usage",
        ),
    ],
)
def test_bad_hint_drops_only_itself(
    payload: dict[str, object], kept: dict[str, object], caplog: pytest.LogCaptureFixture
) -> None:
    """A malformed hint value is dropped and logged; its siblings are kept."""
    caplog.set_level(logging.DEBUG, logger="zimage_async")  # a warning once per task
    base = {"id": "task-unified-1-a", "status": "pending"}
    assert parse_task({**base, **payload}) == parse_task({**base, **kept})
    assert "ignored malformed hint" in caplog.text


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        pytest.param("gpu on fire", "unknown_error", "gpu on fire", id="bare-string"),
        pytest.param({"message": "it broke"}, "unknown_error", "it broke", id="no-code"),
        pytest.param(
            {"code": None, "message": "it broke"}, "unknown_error", "it broke", id="null-code"
        ),
        pytest.param(
            {"code": True, "message": "it broke"}, "unknown_error", "it broke", id="bool-code"
        ),
        pytest.param(
            {"code": {"x": 1}}, "unknown_error", "the service gave no error code", id="dict-code"
        ),
        pytest.param({"code": ""}, "unknown_error", "the service gave no error code", id="empty"),
        pytest.param(42, "unknown_error", "the service gave no error code", id="number"),
        pytest.param(
            {"code": "service_error", "message": None}, "service_error", "", id="null-message"
        ),
        pytest.param(
            {"code": "service_error", "message": ["m"]}, "service_error", "", id="list-message"
        ),
    ],
)
def test_failed_task_unusable_error_becomes_unknown_error(
    error: object, code: str, message: str
) -> None:
    """A failed task whose error is not {code, message} gets a usable code; the raw value stays."""
    task = parse_task({"id": "task-unified-1-a", "status": "failed", "error": error})
    assert task.error is not None
    assert (task.error.code, task.error.message) == (code, message)
    assert task.raw_error == error


def test_raw_error_is_not_part_of_equality_or_repr() -> None:
    """Two snapshots that differ only in the raw error value compare equal."""
    first = parse_task({"id": "task-unified-1-a", "status": "failed", "error": "a"})
    second = parse_task({"id": "task-unified-1-a", "status": "failed", "error": {"message": "a"}})
    assert first == second
    assert "raw_error" not in repr(first)


def test_cancelled_with_unusable_error_keeps_request_cancelled() -> None:
    """A cancelled task with a bare-string error reads as request_cancelled with that text."""
    task = parse_task({"id": "task-unified-1-a", "status": "cancelled", "error": "by user"})
    assert task.error is not None
    assert (task.error.code, task.error.message) == ("request_cancelled", "by user")


@pytest.mark.parametrize(
    "results",
    [
        pytest.param({"results": None}, id="null"),
        pytest.param({"results": []}, id="empty"),
        pytest.param({}, id="missing"),
    ],
)
def test_completed_without_results_parses(results: dict[str, object]) -> None:
    """A completed task without links is a valid answer (the handle decides what it means)."""
    task = parse_task({"id": "task-unified-1-a", "status": "completed", **results})
    assert task.status is TaskStatus.COMPLETED
    assert task.results == ()


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(st.sets(st.sampled_from(OPTIONAL_FIELDS)))
def test_any_nulls_read_as_absent(nulled: set[str]) -> None:
    """Whatever set of optional fields is null, the task equals the one without them."""
    with_nulls = {**PENDING, **dict.fromkeys(nulled)}
    without = {k: v for k, v in PENDING.items() if k not in nulled}
    assert parse_task(with_nulls) == parse_task(without)


@given(_JSON)
def test_failed_task_always_has_a_code(error: object) -> None:
    """A failed task parses with a non-empty error code, whatever its error value is."""
    task = parse_task({"id": "task-unified-1-a", "status": "failed", "error": error})
    assert task.error is not None and task.error.code
    assert task.raw_error is error


@given(_JSON, _JSON)
def test_hint_values_never_fail_a_task(estimate: object, usage: object) -> None:
    """Any JSON in hint fields leaves a parsable task that keeps its good hint values."""
    task = parse_task(
        {
            "id": "task-unified-1-a",
            "status": "pending",
            "task_info": {"can_cancel": False, "estimated_time": estimate},
            "usage": usage,
        }
    )
    assert task.task_info is not None and task.task_info.can_cancel is False


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-5, max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.lists(st.one_of(st.text(max_size=3), st.integers()), max_size=2),
)


_NUMBERS = st.one_of(st.integers(0, 10**6), st.floats(0, 1e6))
_STATUSES = st.sampled_from(["pending", "processing", "completed", "queued", "failed", "cancelled"])


def _answers(plain: bool) -> st.SearchStrategy[dict[str, object]]:
    """Task answers with plain values only, or with any value in any field."""

    def field(value: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
        return value if plain else st.one_of(value, _VALUES)

    task_info = st.fixed_dictionaries(
        {},
        optional={
            "can_cancel": field(st.booleans()),
            "estimated_time": field(_NUMBERS),
            "x": _VALUES,
        },
    )
    usage = st.fixed_dictionaries(
        {},
        optional={
            "billing_rule": field(st.text(max_size=4)),
            "credits_reserved": field(_NUMBERS),
            "user_group": field(st.text(max_size=4)),
            "y": _VALUES,
        },
    )
    return st.fixed_dictionaries(
        {"id": st.just("task-unified-1-a"), "status": field(_STATUSES)},
        optional={
            "progress": field(st.integers(0, 100)),
            "results": field(st.lists(st.text(max_size=5), max_size=2)),
            "created": field(st.integers(0, 2**40)),
            "model": field(st.text(max_size=5)),
            "error": field(st.none()),
            "task_info": field(task_info),
            "usage": field(usage),
            "other": _VALUES,
        },
    )


_ANSWERS = st.one_of(_answers(plain=True), _answers(plain=False))


@given(_ANSWERS)
def test_the_quick_reading_agrees_with_the_general_one(payload: dict[str, object]) -> None:
    """Whatever an answer holds, reading it quickly gives what the general reader gives."""
    from zimage_async import _parsing_task

    def read() -> object:
        try:
            return parse_task(payload)
        except MalformedResponseError as exc:
            return ("malformed", str(exc))

    quick = read()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_parsing_task, "quick_task", lambda payload: None)
        general = read()
    assert quick == general
    if isinstance(quick, tuple):
        return
    assert isinstance(quick, Task) and isinstance(general, Task)
    # repr, not only ==: an estimate of 5 and one of 5.0 are equal, but only 5.0 is right.
    assert repr((quick, quick.task_info, quick.usage, quick.created, quick.model)) == repr(
        (general, general.task_info, general.usage, general.created, general.model)
    )
    assert (quick.status, quick.error, quick.raw_error) == (
        general.status,
        general.error,
        general.raw_error,
    )


def test_snapshots_with_the_same_hints_share_one_block_each() -> None:
    """A poll's hint blocks are shared with earlier snapshots that held the same values."""
    hints = {"task_info": {"estimated_time": 7}, "usage": {"credits_reserved": 0.25}}
    first, second = (
        parse_task({"id": f"task-unified-1-{n}", "status": "processing", **hints}) for n in "ab"
    )
    assert first.task_info is second.task_info and first.usage is second.usage
    assert first.task_info == TaskInfo(estimated_time=7.0)
    other = parse_task({"id": "task-unified-1-c", "status": "processing", "task_info": {}})
    assert other.task_info == TaskInfo() and other.task_info is not first.task_info


def test_a_zero_estimate_keeps_its_sign_after_the_other_zero_was_read() -> None:
    """0.0 and -0.0 are equal keys, so neither is shared: each snapshot reads as sent."""
    read = [
        parse_task(
            {"id": "task-unified-1-a", "status": "pending", "task_info": {"estimated_time": zero}}
        )
        for zero in (0.0, -0.0, 0.0)
    ]
    assert [repr(task.estimated_time) for task in read] == ["0.0", "-0.0", "0.0"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": "task-unified-1-a", "progress": 40}',
        '\ufeff{"a": "\u00e9"}'.encode(),  # UTF-8 with a byte order mark
        '{"a": "\u00e9"}'.encode("utf-16"),
        '{"a": 1}'.encode("utf-32-le"),
        b'{"a": "\xed\xa0\x80"}',  # a lone surrogate, as Python's own JSON reading allows
        b'{"a": ',  # cut short
        b"\xff\xfe\xfd",  # no text at all
        b"[" * 100_000,  # nested past the interpreter's limit
    ],
)
def test_json_bodies_read_as_the_standard_library_reads_bytes(body: bytes) -> None:
    """``parse_json`` reads UTF-8 directly, and every other body as ``json.loads`` does."""
    try:
        expected = json.loads(body)
    except (ValueError, RecursionError):
        with pytest.raises(MalformedResponseError):
            parse_json(body)
    else:
        assert parse_json(body) == expected


def test_a_retry_after_date_with_zone_minus_0000_is_read_as_utc(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``-0000`` (a date in UTC, RFC 5322) is not read in the machine's local time."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        now = 1_800_000_000.0
        header = email.utils.formatdate(now + 30, usegmt=True).replace("GMT", "-0000")
        assert parse_retry_after(header, None, now=now) == pytest.approx(30.0)
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_answer_says_it_is_one_and_is_not_followed(status: int) -> None:
    """Not "HTTP 301 with no error envelope": where it pointed (no query), and why not there."""
    location = "https://elsewhere.example/v1/tasks/x?token=abc123"
    error = parse_error(status, {"Location": location}, b"<html>Moved</html>")
    message = str(error)
    assert "redirect to https://elsewhere.example/v1/tasks/x" in message
    assert "not followed" in message and "base_url" in message
    assert "abc123" not in message
    bare = str(parse_error(status, {}, b""))
    assert "redirect" in bare and "not followed" in bare
    relative = str(parse_error(status, {"Location": "/v2/tasks/x?sig=s3cret"}, b""))
    assert "redirect to /v2/tasks/x," in relative and "s3cret" not in relative
