"""The create call's request rules, over HTTP, and the validators behind them."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zimage_async.emulator._sizes import RATIO_SIZES, parse_size
from zimage_async.emulator._validation import validate_create

if TYPE_CHECKING:
    from tests.emulator.conftest import Api, ApiFactory, SchemaCheck

GOOD_BODY: dict[str, object] = {"model": "z-image-turbo", "prompt": "a cute cat", "size": "1:1"}


def _body(**fields: object) -> bytes:
    merged = {**GOOD_BODY, **fields}
    return json.dumps({k: v for k, v in merged.items() if v is not _DROP}).encode()


_DROP = object()

INTERNAL_CALLBACKS = [
    "https://127.0.0.1/hook",
    "https://127.1.2.3:8443/hook",
    "https://10.0.0.1/hook",
    "https://172.16.0.1/hook",
    "https://172.31.255.255/hook",
    "https://192.168.1.1/hook",
    "https://169.254.169.254/latest/meta-data",
    "https://0.0.0.0/hook",
    "https://[::1]/hook",
    "https://[::]/hook",
    "https://[fe80::1]/hook",
    "https://[fc00::1]/hook",
    "https://[fd12:3456::1]/hook",
    "https://[::ffff:127.0.0.1]/hook",
    "https://[::ffff:10.0.0.1]/hook",
    "https://localhost/hook",
    "https://LOCALHOST./hook",
    "https://api.localhost/hook",
    "https://2130706433/hook",
    "https://0x7f.1/hook",
    "https://0x7f000001/hook",
    "https://0177.0.0.1/hook",
    "https://127.1/hook",
    "https://017700000001/hook",
]

BAD_REQUESTS = [
    pytest.param(b"not json", 400, None, id="not-json"),
    pytest.param(b"", 400, None, id="empty-body"),
    pytest.param(b"\xff\xfe{}", 400, None, id="not-utf8"),
    pytest.param(b"[]", 400, None, id="json-array"),
    pytest.param(b'"a cute cat"', 400, None, id="json-string"),
    pytest.param(b"null", 400, None, id="json-null"),
    pytest.param(b'{"model": "z-image-turbo", "prompt": NaN}', 400, None, id="nan-constant"),
    pytest.param(b"[" * 200_000 + b"]" * 200_000, 400, None, id="deeply-nested"),
    pytest.param(_body(prompt=_DROP), 400, "prompt", id="prompt-missing"),
    pytest.param(_body(prompt=None), 400, "prompt", id="prompt-null"),
    pytest.param(_body(prompt=42), 400, "prompt", id="prompt-number"),
    pytest.param(_body(prompt=["a", "cat"]), 400, "prompt", id="prompt-list"),
    pytest.param(_body(prompt=""), 400, "prompt", id="prompt-empty"),
    pytest.param(_body(prompt="   \n\t"), 400, "prompt", id="prompt-whitespace"),
    pytest.param(_body(prompt="x" * 2001), 400, "prompt", id="prompt-2001-chars"),
    pytest.param(_body(model=_DROP), 400, "model", id="model-missing"),
    pytest.param(_body(model=None), 400, "model", id="model-null"),
    pytest.param(_body(model=1), 400, "model", id="model-number"),
    pytest.param(_body(size="0x0"), 400, "size", id="size-0x0"),
    pytest.param(_body(size="375x400"), 400, "size", id="size-375x400"),
    pytest.param(_body(size="1537x800"), 400, "size", id="size-1537x800"),
    pytest.param(_body(size="16:10"), 400, "size", id="size-16:10"),
    pytest.param(_body(size="abc"), 400, "size", id="size-abc"),
    pytest.param(_body(size="1024X768"), 400, "size", id="size-capital-x"),
    pytest.param(_body(size=" 1024x768"), 400, "size", id="size-leading-space"),
    pytest.param(_body(size="1024x768 "), 400, "size", id="size-trailing-space"),
    pytest.param(_body(size=""), 400, "size", id="size-empty"),
    pytest.param(_body(size=1024), 400, "size", id="size-number"),
    pytest.param(_body(size=None), 400, "size", id="size-null"),
    pytest.param(_body(seed=0), 400, "seed", id="seed-0"),
    pytest.param(_body(seed=-5), 400, "seed", id="seed-negative"),
    pytest.param(_body(seed=2147483648), 400, "seed", id="seed-2147483648"),
    pytest.param(_body(seed=True), 400, "seed", id="seed-true"),
    pytest.param(_body(seed=1.5), 400, "seed", id="seed-float"),
    pytest.param(_body(seed=1.0), 400, "seed", id="seed-integral-float"),
    pytest.param(_body(seed="7"), 400, "seed", id="seed-string"),
    pytest.param(_body(seed=None), 400, "seed", id="seed-null"),
    pytest.param(_body(nsfw_check="true"), 400, "nsfw_check", id="nsfw-string"),
    pytest.param(_body(nsfw_check=1), 400, "nsfw_check", id="nsfw-number"),
    pytest.param(_body(nsfw_check=None), 400, "nsfw_check", id="nsfw-null"),
    pytest.param(_body(callback_url=5), 400, "callback_url", id="callback-number"),
    pytest.param(
        _body(callback_url="http://example.com/hook"), 400, "callback_url", id="callback-http"
    ),
    pytest.param(
        _body(callback_url="ftp://example.com/hook"), 400, "callback_url", id="callback-ftp"
    ),
    pytest.param(_body(callback_url="https://"), 400, "callback_url", id="callback-no-host"),
    pytest.param(_body(callback_url="not a url"), 400, "callback_url", id="callback-not-url"),
    pytest.param(
        _body(callback_url="https://example.com:99999/"),
        400,
        "callback_url",
        id="callback-bad-port",
    ),
    pytest.param(
        _body(callback_url="https://example.com/" + "a" * 2030),
        400,
        "callback_url",
        id="callback-2049-chars",
    ),
    *(
        pytest.param(_body(callback_url=url), 400, "callback_url", id=f"callback-{url[8:30]}")
        for url in INTERNAL_CALLBACKS
    ),
]


@pytest.mark.parametrize(("data", "status", "param"), BAD_REQUESTS)
async def test_bad_create_bodies_are_refused_with_the_envelope(
    strict_api: Api, validate: SchemaCheck, data: bytes, status: int, param: str | None
) -> None:
    """Each broken rule answers 400 invalid_request_error naming the field, bills nothing."""
    api = strict_api
    reply = await api.create_raw(data)
    assert reply.status == status
    body = reply.json()
    validate("ErrorResponse", body)
    assert body["error"]["code"] == status
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"].get("param") == param
    assert param is None or param in body["error"]["message"]
    assert api.emulator.ledger == ()
    assert api.emulator.internal_errors == ()


async def test_unknown_model_answers_404_with_a_suggestion(api: Api) -> None:
    """A model other than z-image-turbo answers 404 not_found_error suggesting the model."""
    reply = await api.create(model="dall-e-3")
    assert reply.status == 404
    assert reply.json() == {
        "error": {
            "code": 404,
            "message": "Specified model not found",
            "type": "not_found_error",
            "param": "model",
            "fallback_suggestion": "z-image-turbo",
        }
    }


async def test_multi_megabyte_body_answers_413_with_the_envelope(api: Api) -> None:
    """A 3 MiB body answers 413 with the JSON envelope instead of crashing or hanging."""
    data = _body(prompt="x" * 100, padding="y" * (3 * 1024 * 1024))
    reply = await api.create_raw(data)
    assert reply.status == 413
    assert reply.json()["error"]["type"] == "invalid_request_error"
    assert api.emulator.internal_errors == ()


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param({"Authorization": "Bearer wrong-key"}, id="unknown-key"),
        pytest.param({"Authorization": "Basic emVtdTp4"}, id="basic-scheme"),
        pytest.param({"Authorization": "Bearer"}, id="empty-bearer"),
    ],
)
async def test_create_without_a_valid_key_answers_401(api: Api, headers: dict[str, str]) -> None:
    """A missing or unknown key answers the documented 401 envelope, before validation."""
    reply = await api.create_raw(b"not json", headers=headers)
    assert reply.status == 401
    assert reply.json() == {
        "error": {
            "code": 401,
            "message": "Invalid or expired token",
            "type": "authentication_error",
        }
    }


async def test_task_query_without_a_valid_key_answers_401(api: Api) -> None:
    """Getting a task with an unknown key answers the documented 401 envelope."""
    created = await api.create_task()
    reply = await api.task(created["id"], headers=api.auth("someone-else"))
    assert reply.status == 401
    assert reply.json()["error"]["type"] == "authentication_error"


async def test_any_configured_key_is_accepted(api_factory: ApiFactory) -> None:
    """Every key in api_keys is accepted, not just the first."""
    api = await api_factory(api_keys=("first", "second"))
    reply = await api.create_raw(_body(), headers=api.auth("second"))
    assert reply.status == 200


@pytest.mark.parametrize(
    "fields",
    [
        *(pytest.param({"size": ratio}, id=f"ratio-{ratio}") for ratio in RATIO_SIZES),
        pytest.param({"size": "376x1536"}, id="size-min-width"),
        pytest.param({"size": "1536x376"}, id="size-min-height"),
        pytest.param({"seed": 1}, id="seed-1"),
        pytest.param({"seed": 2147483647}, id="seed-max"),
        pytest.param({"nsfw_check": True}, id="nsfw-true"),
        pytest.param({"prompt": "x" * 2000}, id="prompt-2000-chars"),
        pytest.param({"prompt": "猫" * 2000}, id="prompt-2000-cjk-chars"),
        pytest.param({"callback_url": "https://example.com/hook?a=1"}, id="callback-public"),
        pytest.param({"callback_url": "https://8.8.8.8/hook"}, id="callback-public-ip"),
        pytest.param({"unknown_field": {"nested": [1]}, "n": 4}, id="unknown-fields-ignored"),
    ],
)
async def test_valid_create_bodies_are_accepted(api: Api, fields: dict[str, object]) -> None:
    """Bodies within the documented rules create a task."""
    reply = await api.create(**fields)
    assert reply.status == 200, reply.data
    assert reply.json()["status"] == "pending"


async def test_strict_mode_refuses_a_loopback_http_callback(api_factory: ApiFactory) -> None:
    """The default strict callback mode refuses http://127.0.0.1 receivers."""
    api = await api_factory(callback_mode="strict")
    reply = await api.create(callback_url="http://127.0.0.1:8080/hook")
    assert reply.status == 400
    assert reply.json()["error"]["param"] == "callback_url"


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://127.0.0.1:8080/hook", id="http-loopback"),
        pytest.param("https://127.0.0.1:8443/hook", id="https-loopback"),
        pytest.param("http://[::1]:8080/hook", id="http-ipv6-loopback"),
    ],
)
async def test_permissive_mode_accepts_loopback_callbacks(api: Api, url: str) -> None:
    """Permissive callback mode accepts loopback receivers so tests can run one."""
    reply = await api.create(callback_url=url)
    assert reply.status == 200, reply.data


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://10.0.0.1/hook", id="http-private"),
        pytest.param("https://192.168.1.1/hook", id="https-private"),
        pytest.param("http://example.com/hook", id="http-public"),
        pytest.param("http://localhost.:8080/hook", id="http-localhost-dot"),
        pytest.param("https://api.localhost/hook", id="https-under-localhost"),
    ],
)
async def test_permissive_mode_still_refuses_other_internal_or_http_urls(
    api: Api, url: str
) -> None:
    """Permissive mode relaxes the rules for loopback addresses only."""
    reply = await api.create(callback_url=url)
    assert reply.status == 400
    assert reply.json()["error"]["param"] == "callback_url"


async def test_malformed_task_id_answers_the_documented_400(api: Api) -> None:
    """A task id without the task-unified- prefix answers the documented string-code 400."""
    reply = await api.task("12345")
    assert reply.status == 400
    assert reply.json() == {
        "error": {
            "code": "invalid_task_id",
            "message": "Invalid task ID format, must start with 'task-unified-'",
            "type": "invalid_request_error",
            "param": "task_id",
        }
    }


async def test_unknown_task_id_answers_404(api: Api, validate: SchemaCheck) -> None:
    """A well-formed but unknown task id answers 404 not_found_error naming task_id."""
    reply = await api.task("task-unified-1757165031-zzzzzzzz")
    assert reply.status == 404
    body = reply.json()
    validate("ErrorResponse", body)
    assert body["error"]["code"] == 404
    assert body["error"]["type"] == "not_found_error"
    assert body["error"]["param"] == "task_id"


@given(st.integers(0, 2000), st.integers(0, 2000))
def test_custom_sizes_follow_the_side_limits(width: int, height: int) -> None:
    """WIDTHxHEIGHT is accepted exactly when both sides are from 376 to 1536."""
    in_range = 376 <= width <= 1536 and 376 <= height <= 1536
    assert (parse_size(f"{width}x{height}") is not None) == in_range


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.sampled_from(["z-image-turbo", "a cat", "16:9", "800x600", "https://example.com/h"]),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(["model", "prompt", "size", "seed", "nsfw_check", "callback_url", "other"]),
        _JSON,
    )
)
def test_validation_never_raises_on_any_json_object(body: dict[str, object]) -> None:
    """Any JSON object yields either an accepted request or an error envelope, never a crash."""
    result = validate_create(json.dumps(body).encode(), allow_loopback_callbacks=False)
    assert result is not None


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_validation_never_raises_on_any_bytes(data: bytes) -> None:
    """Arbitrary bytes yield an error envelope or a request, never an exception."""
    assert validate_create(data, allow_loopback_callbacks=True) is not None
