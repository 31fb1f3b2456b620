"""The billed create call against replies the real gateway sends, not only our emulator's.

An independent loopback server plays the gateway here: proxies' HTML pages, typeless
envelopes, pre-charge refusals, and idempotency keys honoured (or not). Nothing in it
comes from the emulator, so a mistake the emulator shares with the SDK cannot hide.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from hypothesis import assume, given
from hypothesis import strategies as st

from zimage_async import (
    InsufficientQuotaError,
    InvalidRequestError,
    JournalError,
    RateLimitError,
    Session,
    SubmissionUncertainError,
    _journal_sqlite_file,
)
from zimage_async._exceptions import api_error_class
from zimage_async._outcome import PRE_CHARGE_REFUSALS, CreateVerdict, Stage, judge_create

from .conftest import _png, loopback_session, serving

Answer = Callable[[web.Request, str], Awaitable[web.StreamResponse]]


def html(status: int) -> Answer:
    """A proxy's HTML error page with *status*, sent after the task was made."""

    async def answer(request: web.Request, task_id: str) -> web.StreamResponse:
        return web.Response(
            status=status,
            text=f"<html><body><h1>{status}</h1>cloudflare</body></html>",
            content_type="text/html",
        )

    return answer


def envelope(status: int, **error: object) -> Answer:
    """An error envelope with *status* and the given fields (no task is made)."""

    async def answer(request: web.Request, task_id: str) -> web.StreamResponse:
        return web.json_response({"error": error}, status=status)

    return answer


class Gateway:
    """A loopback gateway whose create answers follow a script, one entry per POST.

    Every POST whose script entry says so makes a task first (as a gateway whose proxy
    fails after the API answered would). With ``honour_keys``, a POST repeating an
    ``Idempotency-Key`` gets the task that key made, with ``idempotency-replayed: true``.
    """

    def __init__(self) -> None:
        self.script: list[tuple[bool, Answer | None]] = []
        self.posts: list[dict[str, object]] = []
        self.tasks: list[str] = []
        self.by_key: dict[str, str] = {}
        self.honour_keys = False
        self.on_post: Callable[[], None] | None = None
        self.base = ""
        self.app = web.Application()
        self.app.router.add_post("/apiv1/v1/images/generations", self.create)
        self.app.router.add_get("/apiv1/v1/tasks/{task_id}", self.task)
        self.app.router.add_get("/img/{task_id}", self.image)

    def then(self, answer: Answer | None = None, *, makes_task: bool = True) -> Gateway:
        """Script the next POST: make a task (or not), then send *answer* (or the task)."""
        self.script.append((makes_task, answer))
        return self

    async def create(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        key = request.headers.get("Idempotency-Key")
        self.posts.append({"key": key, "prompt": body["prompt"]})
        if self.on_post is not None:
            self.on_post()
        if self.honour_keys and key in self.by_key:
            return web.json_response(
                {"id": self.by_key[key], "status": "pending", "progress": 0},
                headers={"idempotency-replayed": "true"},
            )
        makes_task, answer = self.script.pop(0) if self.script else (True, None)
        task_id = f"task-unified-1-{len(self.posts)}"
        if makes_task:
            self.tasks.append(task_id)
            if key is not None:
                self.by_key[key] = task_id
        if answer is not None:
            return await answer(request, task_id)
        return web.json_response({"id": task_id, "status": "pending", "progress": 0})

    async def task(self, request: web.Request) -> web.Response:
        task_id = request.match_info["task_id"]
        return web.json_response(
            {
                "id": task_id,
                "status": "completed",
                "progress": 100,
                "results": [f"{self.base}/img/{task_id}"],
            }
        )

    async def image(self, request: web.Request) -> web.Response:
        return web.Response(body=_png(), content_type="image/png")


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    host = Gateway()
    async with serving(host.app) as host.base:
        yield host


@pytest.fixture
async def gs(gateway: Gateway) -> AsyncIterator[Session]:
    async with loopback_session(gateway.base) as session:
        yield session


PROXY_PAGES = [
    pytest.param(html(status), id=f"html-{status}")
    for status in (500, 502, 503, 504, 520, 521, 522, 523, 524)
] + [
    pytest.param(envelope(502, code=502, message="bad gateway"), id="typeless-502"),
    pytest.param(envelope(503, code=503, message="busy"), id="typeless-503"),
    pytest.param(envelope(500, code=500, message="oops", type="internal_server_error"), id="500"),
]


@pytest.mark.parametrize("answer", PROXY_PAGES)
async def test_proxy_page_on_create_is_uncertain(
    gateway: Gateway, gs: Session, answer: Answer
) -> None:
    """A 5xx that is not the API's own typed refusal is uncertain, and is not sent again."""
    gateway.then(answer)
    with pytest.raises(SubmissionUncertainError) as caught:
        await gs.submit("a fox")
    assert len(gateway.posts) == 1
    assert caught.value.idempotency_key == gateway.posts[0]["key"]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429])
async def test_untyped_client_error_on_create_is_uncertain(
    gateway: Gateway, gs: Session, status: int
) -> None:
    """A 4xx page without the API's typed envelope is never taken as a certain refusal."""
    gateway.then(html(status))
    with pytest.raises(SubmissionUncertainError):
        await gs.submit("a fox")
    assert len(gateway.posts) == 1


@pytest.mark.parametrize("status", [500, 502, 504, 520, 524])
async def test_batch_rerun_after_proxy_page_does_not_pay_twice(
    gateway: Gateway, gs: Session, tmp_path: Path, status: int
) -> None:
    """A batch item answered by a proxy's HTML 5xx is not submitted again by a rerun."""
    gateway.then(html(status))
    manifest = tmp_path / "m.sqlite"
    async with gs.generate_many(["a fox"], output_dir=tmp_path, manifest=manifest) as batch:
        first = [item async for item in batch]
    assert isinstance(first[0].error, SubmissionUncertainError)
    async with gs.generate_many(["a fox"], output_dir=tmp_path, manifest=manifest) as batch:
        second = [item async for item in batch]
    assert isinstance(second[0].error, SubmissionUncertainError)
    assert len(gateway.posts) == 1
    assert len(gateway.tasks) == 1


async def test_every_create_carries_an_idempotency_key(gateway: Gateway, gs: Session) -> None:
    """Each submission sends its own Idempotency-Key of 16 to 96 characters."""
    await gs.submit("a fox")
    await gs.submit("a fox")
    keys = [post["key"] for post in gateway.posts]
    assert all(isinstance(k, str) and 16 <= len(k) <= 96 for k in keys)
    assert keys[0] != keys[1]


async def test_a_retried_create_keeps_its_key(gateway: Gateway, gs: Session) -> None:
    """A create retried after the API's typed 503 is sent again with the same key."""
    gateway.then(
        envelope(503, code=503, message="busy", type="service_unavailable_error"),
        makes_task=False,
    )
    handle = await gs.submit("a fox")
    assert handle.id == "task-unified-1-2"
    assert len(gateway.posts) == 2
    assert gateway.posts[0]["key"] == gateway.posts[1]["key"]


async def test_the_callers_key_is_sent(gateway: Gateway, gs: Session) -> None:
    """``submit(..., idempotency_key=...)`` sends the caller's key as it is."""
    await gs.submit("a fox", idempotency_key="order-4711-image-0001")
    assert gateway.posts[0]["key"] == "order-4711-image-0001"


@pytest.mark.parametrize(
    "key", ["short", "x" * 97, "has space in it ok", "tab\there-0123456789", "ключ-0123456789abc"]
)
async def test_a_bad_key_is_refused_before_sending(gateway: Gateway, gs: Session, key: str) -> None:
    """An idempotency key outside 16-96 printable ASCII characters fails before any request."""
    with pytest.raises(InvalidRequestError) as caught:
        await gs.submit("a fox", idempotency_key=key)
    assert caught.value.field == "idempotency_key"
    assert gateway.posts == []


async def test_resubmit_sends_the_original_key(gateway: Gateway, gs: Session) -> None:
    """Resubmitting an uncertain create reuses its key and gets the task it made."""
    gateway.honour_keys = True
    gateway.then(html(524))
    with pytest.raises(SubmissionUncertainError) as caught:
        await gs.submit("a fox", size="16:9")
    handle = await gs.resubmit(caught.value)
    assert handle.id == gateway.tasks[0]
    assert [post["key"] for post in gateway.posts] == [caught.value.idempotency_key] * 2
    assert len(gateway.tasks) == 1


async def test_a_replayed_answer_is_logged(
    gateway: Gateway, gs: Session, caplog: pytest.LogCaptureFixture
) -> None:
    """An answer marked ``idempotency-replayed: true`` is logged as the original task."""
    gateway.honour_keys = True
    await gs.submit("a fox", idempotency_key="order-4711-image-0001")
    with caplog.at_level(logging.INFO, logger="zimage_async"):
        handle = await gs.submit("a fox", idempotency_key="order-4711-image-0001")
    assert handle.id == gateway.tasks[0]
    assert any("replayed" in r.getMessage() and handle.id in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (429, "insufficient_quota"),
        (402, "quota_not_enough"),
        (503, "key_disabled"),
        (403, "key_model_not_allowed"),
    ],
)
async def test_pre_charge_refusals_are_not_retried(
    gateway: Gateway, gs: Session, status: int, code: str
) -> None:
    """A gateway admission refusal (quota, key, account) is raised at once, without retries."""
    gateway.then(envelope(status, code=code, message="no", type="refused"), makes_task=False)
    with pytest.raises(api_error_class(status)) as caught:
        await gs.submit("a fox")
    assert caught.value.code == code
    assert len(gateway.posts) == 1


async def test_typed_402_is_a_certain_refusal_a_rerun_resubmits_with_its_key(
    gateway: Gateway, gs: Session, tmp_path: Path
) -> None:
    """A typed 402 leaves the item refused; the rerun submits it with the same key."""
    gateway.then(
        envelope(402, code=402, message="no credit", type="insufficient_quota_error"),
        makes_task=False,
    )
    manifest = tmp_path / "m.sqlite"
    async with gs.generate_many(["a fox"], output_dir=tmp_path, manifest=manifest) as batch:
        first = [item async for item in batch]
    assert isinstance(first[0].error, InsufficientQuotaError)
    async with gs.generate_many(["a fox"], output_dir=tmp_path, manifest=manifest) as batch:
        second = [item async for item in batch]
    assert second[0].ok
    assert gateway.posts[0]["key"] == gateway.posts[1]["key"]


async def test_typed_429s_are_sent_twice_at_most(gateway: Gateway, tmp_path: Path) -> None:
    """A typed 429 may follow a task: resent once with the same key, then uncertain."""
    for _ in range(5):
        gateway.then(
            envelope(429, code=429, message="slow", type="rate_limit_error"), makes_task=False
        )
    async with loopback_session(gateway.base) as session:
        with pytest.raises(SubmissionUncertainError) as caught:
            await session.submit("a fox")
    assert isinstance(caught.value.cause, RateLimitError)
    assert len(gateway.posts) == 2
    assert {post["key"] for post in gateway.posts} == {caught.value.idempotency_key}


async def test_the_manifest_holds_the_key_before_the_create_is_sent(
    gateway: Gateway, gs: Session, tmp_path: Path
) -> None:
    """The batch writes the item's key to its journal before the POST leaves."""
    manifest = tmp_path / "m.sqlite"
    seen: list[object] = []

    def look() -> None:
        with contextlib.closing(sqlite3.connect(manifest)) as db, db:
            seen.extend(db.execute("SELECT key, state FROM zimage_creates"))

    gateway.on_post = look
    async with gs.generate_many(["a fox"], output_dir=tmp_path, manifest=manifest) as batch:
        items = [item async for item in batch]
    assert items[0].ok
    assert seen == [(gateway.posts[0]["key"], "submitting")]


async def test_resubmit_uncertain_in_a_batch_reuses_the_key(
    gateway: Gateway, gs: Session, tmp_path: Path
) -> None:
    """``resubmit_uncertain=True`` resends an uncertain item with its original key."""
    gateway.honour_keys = True
    gateway.then(html(520))
    manifest = tmp_path / "m.sqlite"
    async with gs.generate_many(["a fox"], output_dir=tmp_path, manifest=manifest) as batch:
        [item async for item in batch]
    async with gs.generate_many(
        ["a fox"], output_dir=tmp_path, manifest=manifest, resubmit_uncertain=True
    ) as batch:
        items = [item async for item in batch]
    assert items[0].ok
    assert items[0].task_id == gateway.tasks[0]
    assert gateway.posts[0]["key"] == gateway.posts[1]["key"]
    assert len(gateway.tasks) == 1


def _policy_rows() -> list[tuple[str, ...]]:
    text = (Path(__file__).parents[1] / "docs" / "protocol.md").read_text(encoding="utf-8")
    table = text.split("<!-- create-policy-table -->")[1].split("<!-- /create-policy-table -->")[0]
    lines = [line for line in table.strip().splitlines()[2:] if line.startswith("|")]
    return [tuple(cell.strip() for cell in line.strip("|").split("|")) for line in lines]


_STAGES = {
    "connection never opened": Stage.NOT_SENT,
    "sent, then reset / timed out / stalled": Stage.SENT,
    "answered": Stage.ANSWERED,
}


@pytest.mark.parametrize("row", _policy_rows(), ids=lambda row: "/".join(row[:4]))
def test_the_documented_policy_table_is_the_policy(row: tuple[str, ...]) -> None:
    """Every row of the create-policy table in the docs is what ``judge_create`` decides."""
    stage, status, error_type, code, verdict = row

    def value(cell: str) -> str | None:
        return None if cell == "-" else cell

    code_value: int | str | None = value(code)
    if isinstance(code_value, str) and code_value.isdigit():
        code_value = int(code_value)
    judged = judge_create(
        _STAGES[stage],
        status=None if status == "-" else int(status),
        error_type=value(error_type),
        error_code=code_value,
    )
    assert judged is CreateVerdict(verdict)


def test_the_policy_table_covers_every_verdict() -> None:
    """The docs' table shows each verdict at least once, and has a row for every stage."""
    rows = _policy_rows()
    assert {row[4] for row in rows} == {verdict.value for verdict in CreateVerdict}
    assert {row[0] for row in rows} == set(_STAGES)


@given(
    status=st.integers(min_value=400, max_value=599),
    code=st.one_of(st.none(), st.integers(), st.text(max_size=30)),
)
def test_an_untyped_answer_is_never_a_certain_refusal(status: int, code: int | str | None) -> None:
    """Without the API's typed envelope, no error status is refused or retried.

    A pre-charge code is the exception: refused whatever the envelope.
    """
    assume(code not in PRE_CHARGE_REFUSALS)
    for error_type in (None, ""):
        verdict = judge_create(
            Stage.ANSWERED, status=status, error_type=error_type, error_code=code
        )
        assert verdict is CreateVerdict.UNCERTAIN


@given(status=st.integers(min_value=400, max_value=599), error_type=st.text(min_size=1))
def test_a_pre_charge_code_is_always_refused(status: int, error_type: str) -> None:
    """An admission-check code in a typed envelope is a refusal at any error status."""
    for code in PRE_CHARGE_REFUSALS:
        verdict = judge_create(
            Stage.ANSWERED, status=status, error_type=error_type, error_code=code
        )
        assert verdict is CreateVerdict.REFUSED


async def test_a_task_that_cannot_be_recorded_is_named_in_the_error(
    gateway: Gateway, gs: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the journal cannot take a created task's id, the error names the billed task."""
    monkeypatch.setattr(_journal_sqlite_file, "BUSY_TIMEOUT_MS", 200)
    manifest = tmp_path / "m.sqlite"
    lock = sqlite3.connect(manifest, timeout=0, isolation_level=None)

    def hold_the_manifest() -> None:  # another process holding it, as a full disk would
        lock.execute("BEGIN EXCLUSIVE")

    gateway.on_post = hold_the_manifest
    try:
        with pytest.raises(JournalError) as caught:
            async with gs.generate_many(["a fox"], output_dir=tmp_path, manifest=manifest) as b:
                [item async for item in b]
    finally:
        lock.close()
    assert gateway.tasks[0] in str(caught.value)
    assert f"zimage task {gateway.tasks[0]}" in str(caught.value)


async def test_a_journal_row_that_cannot_be_read_is_a_journal_error(
    gs: Session, tmp_path: Path
) -> None:
    """A damaged row gives JournalError naming the file, not a raw traceback."""
    manifest = tmp_path / "m.sqlite"
    async with gs.generate_many(["a fox"], output_dir=tmp_path, manifest=manifest) as batch:
        [item async for item in batch]
    with contextlib.closing(sqlite3.connect(manifest)) as db, db:
        db.execute("UPDATE zimage_creates SET state = 'bogus'")
    with pytest.raises(JournalError, match=f"{manifest}.*cannot be read"):
        async with gs.generate_many(["a fox"], output_dir=tmp_path, manifest=manifest) as batch:
            [item async for item in batch]


BUSY = [
    pytest.param(envelope(429, code=429, message="slow", type="rate_limit_error"), id="429"),
    pytest.param(envelope(502, code=502, message="upstream", type="upstream_error"), id="502"),
    pytest.param(
        envelope(503, code=503, message="busy", type="service_unavailable_error"), id="503"
    ),
]


@pytest.mark.parametrize("answer", BUSY)
async def test_a_typed_busy_answer_after_billing_is_paid_twice_at_most(
    gateway: Gateway, gs: Session, answer: Answer
) -> None:
    """Each POST bills a task, then answers 429/502/503; the key is ignored: two tasks."""
    for _ in range(5):
        gateway.then(answer)
    with pytest.raises(SubmissionUncertainError) as caught:
        await gs.submit("a fox")
    assert len(gateway.tasks) == 2
    assert [post["key"] for post in gateway.posts] == [caught.value.idempotency_key] * 2
    assert caught.value.request is not None


async def test_a_typed_503_after_billing_with_keys_honoured_is_paid_once(
    gateway: Gateway, gs: Session
) -> None:
    """The resend carries the key, so a gateway that honours it answers with the task."""
    gateway.honour_keys = True
    gateway.then(envelope(503, code=503, message="busy", type="service_unavailable_error"))
    handle = await gs.submit("a fox")
    assert gateway.tasks == [handle.id]
    assert len(gateway.posts) == 2


async def test_a_refusal_after_a_billed_503_leaves_the_item_uncertain(
    gateway: Gateway, gs: Session, tmp_path: Path
) -> None:
    """503 after the task was made, then 402 (that task took the last credit): uncertain."""
    gateway.then(envelope(503, code=503, message="busy", type="service_unavailable_error"))
    gateway.then(
        envelope(402, code=402, message="no credit", type="insufficient_quota_error"),
        makes_task=False,
    )
    manifest = tmp_path / "m.sqlite"
    async with gs.generate_many(["a fox"], output_dir=tmp_path, manifest=manifest) as batch:
        first = [item async for item in batch]
    error = first[0].error
    assert isinstance(error, SubmissionUncertainError)
    assert isinstance(error.cause, InsufficientQuotaError) and error.resent
    assert error.idempotency_key == gateway.posts[0]["key"]
    async with gs.generate_many(["a fox"], output_dir=tmp_path, manifest=manifest) as batch:
        second = [item async for item in batch]
    assert isinstance(second[0].error, SubmissionUncertainError)
    assert len(gateway.posts) == 2  # the rerun does not pay for it again
    assert len(gateway.tasks) == 1
