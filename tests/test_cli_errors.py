"""How the command line reports a service it cannot reach or a base URL that is wrong."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from zimage_async.emulator import Emulator, FaultPlan, FaultRule

from ._cli import cli_env, finished


async def zimage(*args: str | Path, base_url: str, **env: str) -> tuple[int, str]:
    """Run the command line against *base_url* (with *env*); return its status and stderr."""
    status, _, stderr = await zimage_output(*args, base_url=base_url, **env)
    return status, stderr


async def zimage_output(*args: str | Path, base_url: str, **env: str) -> tuple[int, str, str]:
    """Run the command line against *base_url*; return its status, stdout and stderr."""
    extra = {"ZIMAGE_API_KEY": "sk-test-0123456789", "ZIMAGE_BASE_URL": base_url, **env}
    return await finished(*args, env=cli_env(**extra))


@pytest.fixture
def closed_port() -> int:
    """A loopback port that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """A running emulator, so that a base URL without /apiv1 reaches a real server."""
    async with Emulator(task_duration=0.05) as emu:
        yield emu


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["generate", "a cat"], id="generate"),
        pytest.param(["task", "task-unified-1-abc"], id="task"),
    ],
)
async def test_a_refused_connection_names_the_host_and_the_variable(
    closed_port: int, args: list[str], tmp_path: Path
) -> None:
    """Nothing listening: exit 1, and the message names host:port and ZIMAGE_BASE_URL."""
    status, stderr = await zimage(
        *args, "-o", tmp_path, base_url=f"http://127.0.0.1:{closed_port}/apiv1"
    )
    assert status == 1
    assert f"127.0.0.1:{closed_port}" in stderr
    assert "ZIMAGE_BASE_URL" in stderr


async def test_a_base_url_without_apiv1_is_named_on_a_404(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A 404 at a base URL missing /apiv1 says the API lives under /apiv1; exit 2."""
    bare = emulator.base_url.removesuffix("/apiv1")
    status, stderr = await zimage("generate", "a cat", "-o", tmp_path, base_url=bare)
    assert status == 2
    assert "/apiv1" in stderr and "ZIMAGE_BASE_URL" in stderr
    assert len(emulator.ledger) == 0


@pytest.mark.parametrize(
    "base_url",
    [
        pytest.param("not a url", id="not-a-url"),
        pytest.param("ftp://example.com/apiv1", id="ftp"),
        pytest.param("http://example.com/apiv1", id="plain-http"),
    ],
)
async def test_an_invalid_base_url_is_a_usage_error(base_url: str, tmp_path: Path) -> None:
    """A base URL the SDK refuses exits 2 with a message naming ZIMAGE_BASE_URL."""
    status, stderr = await zimage("generate", "a cat", "-o", tmp_path, base_url=base_url)
    assert status == 2
    assert "ZIMAGE_BASE_URL" in stderr


def _prompts(tmp_path: Path, lines: str = "a cat\na dog\na fox\n") -> Path:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(lines)
    return prompts


async def test_a_batch_at_a_base_url_without_apiv1_is_named_like_generate(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Every create of the batch answered 404 at a base URL without /apiv1: exit 2, the hint."""
    bare = emulator.base_url.removesuffix("/apiv1")
    status, stderr = await zimage(
        "batch", _prompts(tmp_path), "-o", tmp_path / "out", base_url=bare
    )
    assert status == 2, stderr
    assert "/apiv1" in stderr and "ZIMAGE_BASE_URL" in stderr
    assert "zimage: error:" in stderr
    assert len(emulator.ledger) == 0


async def test_a_batch_that_cannot_connect_names_the_host_and_the_variable(
    closed_port: int, tmp_path: Path
) -> None:
    """Every item refused a connection: exit 1, the host:port and ZIMAGE_BASE_URL named."""
    status, stderr = await zimage(
        "batch",
        _prompts(tmp_path, "a cat\n"),
        "-o",
        tmp_path / "out",
        base_url=f"http://127.0.0.1:{closed_port}/apiv1",
    )
    assert status == 1, stderr
    assert f"could not reach the API at 127.0.0.1:{closed_port}" in stderr
    assert "ZIMAGE_BASE_URL" in stderr


async def test_a_batch_whose_key_is_refused_says_so_as_generate_does(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Every create refused with 401: exit 1 and an error naming ZIMAGE_API_KEY."""
    status, stderr = await zimage(
        "batch", _prompts(tmp_path), "-o", tmp_path / "out", base_url=emulator.base_url
    )
    assert status == 1, stderr
    assert "zimage: error: AuthenticationError" in stderr
    assert "ZIMAGE_API_KEY" in stderr
    assert len(emulator.ledger) == 0


async def test_a_batch_whose_creates_broke_after_sending_gets_no_configuration_hint(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Every create's connection broke after it was sent: uncertain items, not a bad URL."""
    emulator.faults = FaultPlan.random(FaultRule(kind="reset", endpoint="create"))
    key = {"ZIMAGE_API_KEY": emulator.api_key}
    status, stdout, stderr = await zimage_output(
        "batch",
        _prompts(tmp_path, "a cat\n"),
        "-o",
        tmp_path / "out",
        base_url=emulator.base_url,
        **key,
    )
    assert status == 1, stderr
    assert "SubmissionUncertainError" in stdout
    assert "ZIMAGE_BASE_URL" not in stderr and "error:" not in stderr
    assert "run the same command again to resume" in stderr


@pytest.mark.parametrize(
    ("first", "saved"),
    [
        pytest.param("a cat", 1, id="first-saved"),
        pytest.param("a cat [[fail:content_policy_violation]]", 0, id="first-task-failed"),
    ],
)
async def test_a_batch_refused_after_its_first_item_gets_no_configuration_hint(
    emulator: Emulator, tmp_path: Path, first: str, saved: int
) -> None:
    """A 403 after an item that was saved, or whose task failed: the batch's usual report."""
    emulator.faults = FaultPlan.script("create", ["ok", "http_403"])
    key = {"ZIMAGE_API_KEY": emulator.api_key}
    status, stderr = await zimage(
        "batch",
        _prompts(tmp_path, f"{first}\na dog\na fox\n"),
        "-o",
        tmp_path / "out",
        "--concurrency",
        "1",
        base_url=emulator.base_url,
        **key,
    )
    assert status == 1, stderr
    assert len(list((tmp_path / "out").glob("*.png"))) == saved
    assert "the batch stopped sending creates" in stderr
    assert "error:" not in stderr
    assert "run the same command again to resume" in stderr


async def test_items_saved_by_an_earlier_run_do_not_hide_a_wrong_base_url(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A rerun at a base URL without /apiv1: the item saved before is no sign it works."""
    key = {"ZIMAGE_API_KEY": emulator.api_key}
    out = tmp_path / "out"
    first, stderr = await zimage(
        "batch", _prompts(tmp_path, "a cat\n"), "-o", out, base_url=emulator.base_url, **key
    )
    assert first == 0, stderr
    bare = emulator.base_url.removesuffix("/apiv1")
    prompts = _prompts(tmp_path, "a cat\na dog\n")
    status, stderr = await zimage("batch", prompts, "-o", out, base_url=bare, **key)
    assert status == 2, stderr
    assert "/apiv1" in stderr and "ZIMAGE_BASE_URL" in stderr
    assert len(emulator.ledger) == 1


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "HTTP_PROXY"])
async def test_a_malformed_proxy_variable_is_named_not_the_key(
    closed_port: int, variable: str
) -> None:
    """An unreadable proxy URL in the environment is a usage error about that variable.

    It used to be shown as ``check ZIMAGE_API_KEY: ...``, sending the user to the key.
    """
    status, stderr = await zimage(
        "generate",
        "a cat",
        base_url=f"http://127.0.0.1:{closed_port}/apiv1",
        **{variable: "http://user:pw@[127.0.0.1:18433"},
    )
    assert status == 2, stderr
    assert variable in stderr
    assert "ZIMAGE_API_KEY" not in stderr
    assert "pw@" not in stderr
