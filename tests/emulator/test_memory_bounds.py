"""What the emulator keeps per request is bounded: the request log, its headers, the ledger."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from zimage_async.emulator import _records
from zimage_async.emulator._idempotency import body_fingerprint

if TYPE_CHECKING:
    from tests.emulator.conftest import Api, ApiFactory

KEY = "k" * 40
MEGABYTE_FIELD = "x" * 1_000_000


async def test_the_request_log_keeps_the_newest_records(
    api_factory: ApiFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past REQUEST_LOG_SIZE the oldest records go; the counts still count every request."""
    monkeypatch.setattr(_records, "REQUEST_LOG_SIZE", 20, raising=False)
    api = await api_factory()
    for number in range(30):  # no key: each answered 401, as in the flood that grew the log
        reply = await api.task(f"task-unified-{number}-abcdefgh", headers={})
        assert reply.status == 401
    records = api.emulator.requests
    assert len(records) == 20
    assert [record.path.rsplit("/", 1)[1] for record in records] == [
        f"task-unified-{number}-abcdefgh" for number in range(10, 30)
    ]
    assert api.emulator.request_counts == {"task": 30}


def test_the_request_log_size_is_documented() -> None:
    """The default bound is stated where the log is described."""
    assert _records.REQUEST_LOG_SIZE == 5_000
    assert "5000" in (_records.__doc__ or "").replace(",", "").replace("_", "")


async def test_recorded_headers_are_capped(api: Api) -> None:
    """60 headers of 8000 characters are kept as at most 32, each name and value cut short."""
    padding = {f"X-Pad-{number}": "a" * 8000 for number in range(60)}
    reply = await api.task("task-unified-1-abcdefgh", headers=padding)
    assert reply.status == 401
    (record,) = api.emulator.requests
    assert len(record.headers) <= 32
    assert all(len(name) <= 256 and len(value) <= 256 for name, value in record.headers)
    assert sum(len(name) + len(value) for name, value in record.headers) <= 4096
    assert record.header("X-Pad-0") == "a" * 256
    limits = (_records.MAX_RECORDED_HEADERS, _records.MAX_HEADER_CHARS)
    assert (*limits, _records.MAX_RECORDED_HEADER_CHARS) == (32, 256, 4096)


async def test_ordinary_headers_are_recorded_whole(api: Api) -> None:
    """A usual request (key, idempotency key, user agent) keeps every header as sent."""
    headers = {
        **api.auth(),
        "Content-Type": "application/json",
        "Idempotency-Key": "i" * 96,
        "User-Agent": "zimage-async/1.0 " + "u" * 200,
    }
    await api.create_raw(
        json.dumps({"model": "z-image-turbo", "prompt": "a cat"}).encode(), headers=headers
    )
    (record,) = api.emulator.requests
    assert record.header("Idempotency-Key") == "i" * 96
    assert record.header("User-Agent") == headers["User-Agent"]
    assert record.header("Authorization") == _records.REDACTED


async def test_a_long_path_is_cut_in_the_record(api: Api) -> None:
    """A path of thousands of characters is kept to MAX_PATH_CHARS."""
    task_id = "task-unified-1-" + "a" * 6000
    await api.task(task_id)
    (record,) = api.emulator.requests
    assert len(record.path) == 2048
    assert task_id.startswith(record.path.rsplit("/", 1)[1])


async def test_the_ledger_keeps_known_fields_and_small_unknown_ones(api: Api) -> None:
    """A 1 MB unknown field is left out of the billed body; the known fields stay whole."""
    prompt = "p" * 2000
    await api.create_task(prompt=prompt, seed=5, junk=MEGABYTE_FIELD, extra={"kept": True})
    (entry,) = api.emulator.ledger
    body = dict(entry.request_body)
    assert "junk" not in body
    assert body == {
        "model": "z-image-turbo",
        "prompt": prompt,
        "size": "1:1",
        "seed": 5,
        "extra": {"kept": True},
    }
    assert entry.prompt == prompt


async def test_unknown_fields_are_kept_up_to_a_budget(api: Api) -> None:
    """Many small unknown fields are kept only up to 4096 bytes of JSON in all."""
    fields = {f"field_{number:04d}": "v" * 50 for number in range(2000)}
    await api.create_task(**fields)
    (entry,) = api.emulator.ledger
    unknown = {
        name: value for name, value in entry.request_body.items() if name.startswith("field_")
    }
    assert 0 < len(unknown) < 2000
    assert len(json.dumps(unknown, separators=(",", ":"))) <= 4096 + 2


def test_the_idempotency_fingerprint_does_not_keep_the_body() -> None:
    """A keyed create is remembered by a digest of its body, not by the body's text."""
    big = {"model": "z-image-turbo", "prompt": "a cat", "junk": MEGABYTE_FIELD}
    assert len(body_fingerprint(big)) == 64
    assert body_fingerprint(big) != body_fingerprint({**big, "junk": "y"})
    assert body_fingerprint({"b": 1, "a": "x"}) == body_fingerprint({"a": "x", "b": 1})


async def test_a_keyed_create_with_a_large_body_still_replays(api: Api) -> None:
    """The same key and large body replays the task; a changed body is still a 409."""
    headers = {**api.auth(), "Content-Type": "application/json", "Idempotency-Key": KEY}
    body = {"model": "z-image-turbo", "prompt": "a cat", "junk": MEGABYTE_FIELD}
    first = await api.create_raw(json.dumps(body).encode(), headers=headers)
    again = await api.create_raw(json.dumps(body).encode(), headers=headers)
    changed = await api.create_raw(json.dumps({**body, "junk": "y"}).encode(), headers=headers)
    assert (first.status, again.status, changed.status) == (200, 200, 409)
    assert again.json()["id"] == first.json()["id"]
    assert len(api.emulator.ledger) == 1
