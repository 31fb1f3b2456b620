"""The bad-input catalogue: each concrete bad input and the typed error it must give.

The same list is the table in ``docs/bad-inputs.md``; a test keeps the two identical.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

import zimage_async
from zimage_async import GenerationRequest, RetryPolicy, Session
from zimage_async.emulator import Emulator, FaultPlan, FaultRule

from .conftest import FAST_POLL, FAST_RETRY, KEY, OddHost

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = "https://example.com/hook"


@attrs.frozen
class Case:
    """One bad input: where it enters, what it is, and the error it must raise."""

    id: str
    area: str
    given: str
    error: type[BaseException]
    detail: str = ""  # the field an InvalidRequestError names, or a phrase of the message


def _request_case(case_id: str, given: str, field: str, **kwargs: Any) -> tuple[Case, Any]:
    return Case(case_id, "request field", given, zimage_async.InvalidRequestError, field), kwargs


REQUEST_CASES = [
    _request_case("empty-prompt", 'prompt=""', "prompt", prompt=""),
    _request_case("blank-prompt", 'prompt="   "', "prompt", prompt="   "),
    _request_case("long-prompt", "prompt of 2001 characters", "prompt", prompt="x" * 2001),
    _request_case("prompt-not-str", "prompt=42", "prompt", prompt=42),
    _request_case("size-0x0", 'size="0x0"', "size", size="0x0"),
    _request_case("size-small", 'size="375x400"', "size", size="375x400"),
    _request_case("size-large", 'size="1537x800"', "size", size="1537x800"),
    _request_case("size-16-10", 'size="16:10"', "size", size="16:10"),
    _request_case("size-abc", 'size="abc"', "size", size="abc"),
    _request_case("size-upper-x", 'size="1024X768"', "size", size="1024X768"),
    _request_case("size-tuple", "size=(1024, 768)", "size", size=(1024, 768)),
    _request_case("seed-zero", "seed=0", "seed", seed=0),
    _request_case("seed-too-big", "seed=2147483648", "seed", seed=2147483648),
    _request_case("seed-bool", "seed=True", "seed", seed=True),
    _request_case("seed-str", 'seed="7"', "seed", seed="7"),
    _request_case("nsfw-str", 'nsfw_check="yes"', "nsfw_check", nsfw_check="yes"),
    _request_case("nsfw-int", "nsfw_check=1", "nsfw_check", nsfw_check=1),
    _request_case("model-other", 'model="sdxl"', "model", model="sdxl"),
    _request_case(
        "cb-http",
        "callback_url=http://example.com/h",
        "callback_url",
        callback_url="http://example.com/h",
    ),
    _request_case(
        "cb-loopback",
        "callback_url=https://127.0.0.1/h",
        "callback_url",
        callback_url="https://127.0.0.1/h",
    ),
    _request_case(
        "cb-private",
        "callback_url=https://10.1.2.3/h",
        "callback_url",
        callback_url="https://10.1.2.3/h",
    ),
    _request_case(
        "cb-link-local",
        "callback_url=https://169.254.169.254/",
        "callback_url",
        callback_url="https://169.254.169.254/",
    ),
    _request_case(
        "cb-unique-local",
        "callback_url=https://[fd00::1]/h",
        "callback_url",
        callback_url="https://[fd00::1]/h",
    ),
    _request_case(
        "cb-mapped",
        "callback_url=https://[::ffff:127.0.0.1]/h",
        "callback_url",
        callback_url="https://[::ffff:127.0.0.1]/h",
    ),
    _request_case(
        "cb-decimal",
        "callback_url=https://2130706433/h",
        "callback_url",
        callback_url="https://2130706433/h",
    ),
    _request_case(
        "cb-hex", "callback_url=https://0x7f.1/h", "callback_url", callback_url="https://0x7f.1/h"
    ),
    _request_case(
        "cb-octal",
        "callback_url=https://0177.0.0.1/h",
        "callback_url",
        callback_url="https://0177.0.0.1/h",
    ),
    _request_case(
        "cb-localhost",
        "callback_url=https://api.localhost/h",
        "callback_url",
        callback_url="https://api.localhost/h",
    ),
    _request_case(
        "cb-userinfo",
        "callback_url=https://api.example.com@10.0.0.1/",
        "callback_url",
        callback_url="https://api.example.com@10.0.0.1/",
    ),
    _request_case(
        "cb-too-long",
        "callback_url of 2049 characters",
        "callback_url",
        callback_url=PUBLIC + "?" + "a" * (2049 - len(PUBLIC) - 1),
    ),
]

SESSION_CASES = [
    (
        Case(
            "base-http-remote",
            "base URL",
            "http://api.example.com/apiv1",
            zimage_async.InvalidRequestError,
            "base_url",
        ),
        {"base_url": "http://api.example.com/apiv1"},
    ),
    (
        Case(
            "base-ftp",
            "base URL",
            "ftp://api.example.com",
            zimage_async.InvalidRequestError,
            "base_url",
        ),
        {"base_url": "ftp://api.example.com"},
    ),
    (
        Case(
            "base-no-scheme",
            "base URL",
            "api.example.com",
            zimage_async.InvalidRequestError,
            "base_url",
        ),
        {"base_url": "api.example.com"},
    ),
    (
        Case(
            "base-credentials",
            "base URL",
            "https://u:p@api.example.com",
            zimage_async.InvalidRequestError,
            "base_url",
        ),
        {"base_url": "https://u:p@api.example.com"},
    ),
    (
        Case(
            "no-api-key",
            "API key",
            "no key and no ZIMAGE_API_KEY",
            zimage_async.InvalidRequestError,
            "api_key",
        ),
        {"api_key": None},
    ),
    (
        Case(
            "key-with-space",
            "API key",
            'api_key="sk one"',
            zimage_async.InvalidRequestError,
            "api_key",
        ),
        {"api_key": "sk one"},
    ),
    (
        Case(
            "task-id-path",
            "task id",
            'session.task("../../etc/passwd")',
            zimage_async.InvalidRequestError,
            "task_id",
        ),
        {"task_id": "../../etc/passwd"},
    ),
    (
        Case(
            "task-id-prefix",
            "task id",
            'session.task("abc")',
            zimage_async.InvalidRequestError,
            "task_id",
        ),
        {"task_id": "abc"},
    ),
]

Scenario = Callable[[Emulator, OddHost, Path], Awaitable[object]]


def _emulator_session(emu: Emulator, **options: Any) -> Session:
    settings: dict[str, Any] = {"poll": FAST_POLL, "retry": FAST_RETRY, **options}
    return Session(
        api_key=options.pop("api_key", emu.api_key),
        base_url=emu.base_url,
        **{k: v for k, v in settings.items() if k != "api_key"},
    )


def _odd_session(host: OddHost) -> Session:
    return Session(
        api_key=KEY,
        base_url=f"{host.base}/apiv1",
        poll=FAST_POLL,
        retry=FAST_RETRY,
        max_image_bytes=200_000,
    )


async def _with_faults(emu: Emulator, plan: FaultPlan, prompt: str = "catalogue") -> object:
    emu.faults = plan
    async with _emulator_session(emu) as session:
        return await session.generate(prompt)


async def _odd(host: OddHost, prompt: str) -> object:
    async with _odd_session(host) as session:
        return await session.generate(prompt)


async def _wrong_key(emu: Emulator, host: OddHost, tmp: Path) -> object:
    async with _emulator_session(emu, api_key="sk-wrong") as session:
        return await session.submit("who am I")


async def _unknown_task(emu: Emulator, host: OddHost, tmp: Path) -> object:
    async with _emulator_session(emu) as session:
        return await session.get_task("task-unified-1-zzzzzzzz")


async def _refused(emu: Emulator, host: OddHost, tmp: Path) -> object:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with Session(
        api_key=KEY,
        base_url=f"http://127.0.0.1:{port}/apiv1",
        retry=RetryPolicy(wait_initial=0.01, max_attempts=2),
    ) as session:
        return await session.submit("nobody there")


async def _local_expiry(emu: Emulator, host: OddHost, tmp: Path) -> object:
    async with _emulator_session(emu, link_ttl=1e-9) as session:
        return await session.generate("too late")


async def _save_under_file(emu: Emulator, host: OddHost, tmp: Path) -> object:
    (tmp / "afile").write_text("not a folder")
    async with _emulator_session(emu) as session:
        handle = await session.submit("save me")
        return await handle.save(tmp / "afile" / "out.png")


async def _save_long_name(emu: Emulator, host: OddHost, tmp: Path) -> object:
    async with _emulator_session(emu) as session:
        handle = await session.submit("save me")
        return await handle.save(tmp / ("n" * 300 + ".png"))


SERVER_CASES: list[tuple[Case, Scenario]] = [
    (
        Case("reply-401", "server reply", "401 for a wrong key", zimage_async.AuthenticationError),
        _wrong_key,
    ),
    (
        Case(
            "reply-404-task",
            "server reply",
            "404 for an unknown task id",
            zimage_async.NotFoundError,
        ),
        _unknown_task,
    ),
    (
        Case(
            "reply-create-500",
            "server reply",
            "500 to the create call",
            zimage_async.SubmissionUncertainError,
        ),
        lambda e, h, t: _with_faults(e, FaultPlan.script("create", ["http_500"])),
    ),
    (
        Case(
            "reply-create-reset",
            "server reply",
            "connection reset on create",
            zimage_async.SubmissionUncertainError,
        ),
        lambda e, h, t: _with_faults(e, FaultPlan.script("create", ["reset"])),
    ),
    (
        Case(
            "reply-create-cloudflare-524",
            "server reply",
            "Cloudflare 524 page after the task was made",
            zimage_async.SubmissionUncertainError,
        ),
        lambda e, h, t: _with_faults(
            e,
            FaultPlan.script("create", [FaultRule(kind="html_5xx_after_create", http_status=524)]),
        ),
    ),
    (
        Case(
            "reply-create-typeless-503",
            "server reply",
            "503 envelope without type on create",
            zimage_async.SubmissionUncertainError,
        ),
        lambda e, h, t: _with_faults(
            e, FaultPlan.script("create", [FaultRule(kind="typeless_5xx", http_status=503)])
        ),
    ),
    (
        Case(
            "reply-create-quota",
            "server reply",
            "402 quota_not_enough on create",
            zimage_async.InsufficientQuotaError,
        ),
        lambda e, h, t: _with_faults(
            e,
            FaultPlan.script("create", [FaultRule(kind="http_402", error_code="quota_not_enough")]),
        ),
    ),
    (
        Case(
            "reply-create-bad-json",
            "server reply",
            "200 with cut JSON on create",
            zimage_async.SubmissionUncertainError,
        ),
        lambda e, h, t: _with_faults(e, FaultPlan.script("create", ["malformed_json"])),
    ),
    (
        Case(
            "reply-bare-503",
            "server reply",
            "503 HTML page from a proxy on create",
            zimage_async.SubmissionUncertainError,
        ),
        lambda e, h, t: _odd(h, "bare-503"),
    ),
    (
        Case(
            "reply-429-long",
            "server reply",
            "429 asking to wait an hour",
            zimage_async.SubmissionUncertainError,
        ),
        lambda e, h, t: _with_faults(
            e, FaultPlan.script("create", [FaultRule(kind="http_429", retry_after_seconds=3600)])
        ),
    ),
    (
        Case("reply-redirect", "server reply", "307 redirect from the API", zimage_async.APIError),
        lambda e, h, t: _odd(h, "redirect-api"),
    ),
    (
        Case(
            "reply-bad-json-always",
            "server reply",
            "cut JSON on every poll",
            zimage_async.MalformedResponseError,
        ),
        lambda e, h, t: _with_faults(e, FaultPlan.script("task", ["malformed_json"] * 5)),
    ),
    (
        Case("reply-502-always", "server reply", "502 on every poll", zimage_async.UpstreamError),
        lambda e, h, t: _with_faults(e, FaultPlan.script("task", ["http_502"] * 5)),
    ),
    (
        Case(
            "reply-no-results",
            "server reply",
            "completed task without results",
            zimage_async.NoResultsError,
        ),
        lambda e, h, t: _odd(h, "noresults"),
    ),
    (
        Case(
            "reply-task-failed",
            "server reply",
            "task failed: content_policy_violation",
            zimage_async.TaskFailedError,
        ),
        lambda e, h, t: _with_faults(e, FaultPlan(), "x [[fail:content_policy_violation]]"),
    ),
    (
        Case(
            "reply-refused",
            "server reply",
            "nothing listening on the port",
            zimage_async.APIConnectionError,
        ),
        _refused,
    ),
    (
        Case(
            "image-html",
            "image body",
            "HTML page with status 200",
            zimage_async.ImageDownloadError,
            "HTML page",
        ),
        lambda e, h, t: _odd(h, "html"),
    ),
    (
        Case(
            "image-mislabelled",
            "image body",
            "PNG bytes declared image/jpeg",
            zimage_async.ImageDownloadError,
            "declared image/jpeg",
        ),
        lambda e, h, t: _odd(h, "mislabelled"),
    ),
    (
        Case(
            "image-oversized",
            "image body",
            "480 kB image over a 200 kB limit",
            zimage_async.ImageDownloadError,
            "limit",
        ),
        lambda e, h, t: _odd(h, "huge"),
    ),
    (
        Case(
            "image-too-short",
            "image body",
            "3-byte body",
            zimage_async.ImageDownloadError,
            "not an image",
        ),
        lambda e, h, t: _odd(h, "tiny"),
    ),
    (
        Case(
            "image-truncated-always",
            "image body",
            "cut short on every try",
            zimage_async.ImageDownloadError,
            "gave up",
        ),
        lambda e, h, t: _with_faults(e, FaultPlan.script("image", ["truncate"] * 5)),
    ),
    (
        Case("image-410", "image body", "410 from the image host", zimage_async.ImageExpiredError),
        lambda e, h, t: _odd(h, "gone"),
    ),
    (
        Case("image-403", "image body", "403 from the image host", zimage_async.ImageExpiredError),
        lambda e, h, t: _odd(h, "forbidden"),
    ),
    (
        Case(
            "image-expired-locally",
            "image body",
            "link past its known expiry",
            zimage_async.ImageExpiredError,
            "nothing was requested",
        ),
        _local_expiry,
    ),
    (
        Case("path-under-file", "output path", "save() below an existing file", NotADirectoryError),
        _save_under_file,
    ),
    (
        Case("path-name-too-long", "output path", "save() to a 300-character file name", OSError),
        _save_long_name,
    ),
]

ALL_CASES = (
    [c for c, _ in REQUEST_CASES] + [c for c, _ in SESSION_CASES] + [c for c, _ in SERVER_CASES]
)


def test_catalogue_is_large_and_unique() -> None:
    """The catalogue holds at least 40 distinct bad inputs."""
    ids = [case.id for case in ALL_CASES]
    assert len(ids) >= 40
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    ("case", "kwargs"), [pytest.param(c, k, id=c.id) for c, k in REQUEST_CASES]
)
def test_bad_request_field(case: Case, kwargs: dict[str, Any]) -> None:
    """A bad request field raises InvalidRequestError naming it, before any I/O."""
    fields = {"prompt": "a cat", **kwargs}
    with pytest.raises(zimage_async.InvalidRequestError) as info:
        GenerationRequest(**fields)
    assert info.value.field == case.detail
    assert "the rule is:" in str(info.value)


@pytest.mark.parametrize(
    ("case", "kwargs"), [pytest.param(c, k, id=c.id) for c, k in SESSION_CASES]
)
def test_bad_session_setting(case: Case, kwargs: dict[str, Any]) -> None:
    """A bad base URL, key or task id raises InvalidRequestError naming it."""

    def attempt() -> object:
        if "task_id" in kwargs:
            return Session(api_key=KEY, environ={}).task(kwargs["task_id"])
        return Session(**{"api_key": KEY, **kwargs}, environ={})

    with pytest.raises(zimage_async.InvalidRequestError) as info:
        attempt()
    assert info.value.field == case.detail


@pytest.mark.parametrize(
    ("case", "scenario"), [pytest.param(c, s, id=c.id) for c, s in SERVER_CASES]
)
async def test_bad_reply_body_or_path(
    case: Case, scenario: Scenario, emulator: Emulator, odd_host: OddHost, tmp_path: Path
) -> None:
    """A bad server reply, image body or output path raises its documented error."""
    with pytest.raises(case.error) as info:
        await scenario(emulator, odd_host, tmp_path)
    assert case.detail in str(info.value)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".zimage-")] == []


def render_table() -> str:
    """Render the catalogue as the Markdown table of docs/bad-inputs.md."""
    lines = ["| id | area | bad input | raises |", "|---|---|---|---|"]
    for case in ALL_CASES:
        given = case.given.replace("|", "\\|")
        lines.append(f"| `{case.id}` | {case.area} | `{given}` | `{case.error.__name__}` |")
    return "\n".join(lines) + "\n"


def test_docs_table_matches_the_catalogue() -> None:
    """docs/bad-inputs.md lists exactly this catalogue (regenerate with render_table())."""
    text = (ROOT / "docs" / "bad-inputs.md").read_text(encoding="utf-8")
    assert render_table() in text
