"""The documentation covers the public API: every name has a docstring and a reference."""

from __future__ import annotations

import ast
import inspect
import logging
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from types import CodeType, ModuleType
from typing import Any

import pytest

import zimage_async
import zimage_async.emulator
from zimage_async import Session
from zimage_async.emulator import Emulator, FaultPlan

from .conftest import FAST_POLL, run_example

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _public(module: ModuleType) -> list[str]:
    return [name for name in module.__all__ if not name.startswith("__")]


@pytest.mark.parametrize(
    ("module", "page"),
    [
        pytest.param(zimage_async, "api.md", id="zimage_async"),
        pytest.param(zimage_async.emulator, "emulator.md", id="emulator"),
    ],
)
def test_every_public_name_is_in_the_reference(module: ModuleType, page: str) -> None:
    """Each name in __all__ has an autodoc entry on its reference page."""
    text = (DOCS / page).read_text(encoding="utf-8")
    missing = [name for name in _public(module) if f"{module.__name__}.{name}\n" not in text]
    assert missing == []


@pytest.mark.parametrize(
    "module",
    [
        pytest.param(zimage_async, id="zimage_async"),
        pytest.param(zimage_async.emulator, id="emulator"),
    ],
)
def test_every_public_name_has_a_docstring(module: ModuleType) -> None:
    """Each exported class and function, and each public method, has a docstring."""
    undocumented = []
    for name in _public(module):
        value = getattr(module, name)
        if not (inspect.isclass(value) or inspect.isfunction(value)):
            continue
        if not (value.__doc__ or "").strip():
            undocumented.append(name)
        if inspect.isclass(value):
            for attr, member in vars(value).items():
                if attr.startswith("_") or (
                    not callable(member) and not isinstance(member, property)
                ):
                    continue
                if not (getattr(member, "__doc__", None) or "").strip():
                    undocumented.append(f"{name}.{attr}")
    assert undocumented == []


def _doc_blocks() -> list[tuple[str, str]]:
    """Every ```python block of the docs; empty when marked as not run or run by pytest."""
    blocks = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for number, match in enumerate(
            re.finditer(r"(% (?:not run|run by pytest): [^\n]+\n)?```python\n(.*?)```", text, re.S)
        ):
            blocks.append((f"{page.stem}-{number}", match.group(2) if not match.group(1) else ""))
    return blocks


def test_every_docs_example_runs_or_says_why_not() -> None:
    """Each Python block in the docs either runs in the test below or is marked not run."""
    assert any(source for _, source in _doc_blocks())


@pytest.mark.parametrize(
    "source", [pytest.param(source, id=name) for name, source in _doc_blocks() if source]
)
async def test_docs_example_runs(source: str, tmp_path: Path) -> None:
    """A runnable docs example runs unchanged against an emulator named by the environment."""
    returncode, stderr, _ = await run_example(source, tmp_path)
    assert returncode == 0, stderr


def _not_run() -> list[tuple[str, str, str]]:
    """Every ```python block of the docs marked as not run: its name, the reason, the source."""
    blocks = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for number, match in enumerate(
            re.finditer(
                r"(?:% (not run|run by pytest): ([^\n]+)\n)?```python\n(.*?)```", text, re.S
            )
        ):
            if match.group(1) == "not run":
                blocks.append((f"{page.stem}-{number}", match.group(2), match.group(3)))
    return blocks


def _compiled(source: str, name: str) -> CodeType:
    """*source* compiled as the asyncio REPL (``python -m asyncio``) does: await at top level."""
    code = compile(source, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    assert isinstance(code, CodeType)
    return code


async def _run_at_top_level(source: str, name: str, namespace: dict[str, Any]) -> None:
    """Run *source* as typed into ``python -m asyncio``, with *namespace* as its globals."""
    ran = eval(_compiled(source, name), namespace)  # noqa: S307 - a docs example, as written
    if inspect.iscoroutine(ran):
        await ran


@pytest.mark.parametrize(
    ("source", "reason"), [pytest.param(s, r, id=name) for name, r, s in _not_run()]
)
def test_every_example_not_run_compiles(source: str, reason: str) -> None:
    """A block marked as not run still compiles, await at top level allowed, and says why."""
    assert reason.strip()
    _compiled(source, "<docs>")


def test_the_examples_not_run_are_those_that_cannot_run() -> None:
    """Of the blocks marked as not run, two cannot run: placeholders, a public address.

    The other two, fragments, run below at top level as in ``python -m asyncio``, against
    an emulator, the errors page's with the `zs`, `prompt` and `log` it leaves to the reader.
    """
    reasons = {name: reason for name, reason, _ in _not_run()}
    assert set(reasons) == {"errors-0", "index-0", "quickstart-1", "webhooks-0"}
    assert "placeholders" in reasons["quickstart-1"]  # zs.task("task-unified-...") is refused
    assert "public HTTPS address" in reasons["webhooks-0"]


async def test_the_index_fragment_runs_at_top_level(monkeypatch: pytest.MonkeyPatch) -> None:
    """The index page's `async with` fragment runs as written in an asyncio REPL."""
    (source,) = [s for name, _, s in _not_run() if name == "index-0"]
    async with Emulator(task_duration=0.1, seed=5) as emu:
        monkeypatch.setenv("ZIMAGE_API_KEY", emu.api_key)
        monkeypatch.setenv("ZIMAGE_BASE_URL", emu.base_url)
        namespace: dict[str, Any] = {}
        await _run_at_top_level(source, "index-0", namespace)
        assert namespace["result"].images[0].data.startswith(b"\x89PNG")
        assert len(emu.ledger) == 1


@pytest.mark.parametrize(
    ("prompt", "faults", "outcome"),
    [
        pytest.param("a cute cat", [], "result", id="generated"),
        pytest.param("[[fail:content_policy_violation]]", [], "logged", id="not-retried"),
        pytest.param("[[fail:service_error]]", [], "queued", id="resubmit-may-help"),
        pytest.param("a cute cat", ["http_500_after_create"], "handle", id="uncertain"),
    ],
)
async def test_the_errors_page_fragment_handles_each_outcome(
    prompt: str, faults: list[str], outcome: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The errors page's fragment, given its `zs`, `prompt` and `log`, runs each branch.

    A failed task the page says not to resubmit is logged with its code and advice; an
    uncertain create is sent again with its key and gives the task the first send made.
    """
    (source,) = [s for name, _, s in _not_run() if name == "errors-0"]
    log = logging.getLogger("yours")
    plan = FaultPlan.script("create", faults)
    async with (
        Emulator(task_duration=0.1, seed=6, faults=plan) as emu,
        Session(api_key=emu.api_key, base_url=emu.base_url, poll=FAST_POLL) as zs,
    ):
        yours = {"zs": zs, "prompt": prompt, "log": log}
        namespace: dict[str, Any] = {"zimage_async": zimage_async, **yours}
        with caplog.at_level(logging.WARNING, logger="yours"):
            await _run_at_top_level(source, "errors-0", namespace)
            ran = {key for key in ("result", "handle") if key in namespace}
            if outcome == "handle":
                assert (await namespace["handle"]).task.id == emu.ledger[0].task_id
        assert len(emu.ledger) == 1
    logged = [r.getMessage() for r in caplog.records if r.name == "yours"]
    assert ran == ({outcome} & {"result", "handle"})
    if outcome == "logged":
        assert logged and logged[0].startswith("not retrying content_policy_violation: ")
    else:
        assert logged == []


def _install_commands() -> list[tuple[str, str]]:
    """Every console command of the README and the docs that installs this package."""
    commands = []
    for page in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for block in re.findall(r"```console\n(.*?)```", text, re.S):
            for line in block.splitlines():
                command = line.removeprefix("$ ")
                names_us = "zimage" in command.replace("nox", "")
                if "pip install" in command and (names_us or ".[" in command):
                    commands.append((page.name, command))
    return commands


def test_the_docs_show_how_to_install() -> None:
    """The README and the quickstart both give a command that installs the package."""
    assert {page for page, _ in _install_commands()} >= {"README.md", "quickstart.md"}


@pytest.mark.parametrize(
    "command", [pytest.param(command, id=page) for page, command in _install_commands()]
)
def test_install_command_runs_as_written_in_a_fresh_clone(command: str, tmp_path: Path) -> None:
    """Each documented install command works in a copy of the checkout, in a new venv."""
    clone = tmp_path / "zimage-async"
    shutil.copytree(
        ROOT,
        clone,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", ".nox", "_build", "__pycache__", ".*_cache", ".hypothesis", "out"
        ),
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZIMAGE_", "VIRTUAL_ENV"))}
    script = f"set -e\n{command}\n. .venv/bin/activate && python -c 'import zimage_async'"
    done = subprocess.run(  # noqa: S603 - the documented command, run as a user would
        [shutil.which("bash") or "/bin/bash", "-c", script],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    if "zimage batch" in command:  # the README's main job: on the bundled emulator, no key
        assert "using an in-process emulator" in done.stderr
        assert (clone / "out" / "sheet.png").is_file()


def test_the_package_index_name_is_only_offered_as_future() -> None:
    """`zimage-async[...]` from the index is only mentioned as working once published."""
    files = [ROOT / "README.md", *DOCS.glob("*.md"), *(ROOT / "zimage_async").glob("_cli*.py")]
    offending = [
        f"{path.name}: {line.strip()}"
        for path in files
        if path.name != "changelog.md"
        for line in path.read_text(encoding="utf-8").splitlines()
        if "zimage-async[" in line and "published" not in line
    ]
    assert offending == []


def _pytest_blocks() -> tuple[list[str], str]:
    """The test files of docs/testing.md run by pytest, and its pytest configuration."""
    text = (DOCS / "testing.md").read_text(encoding="utf-8")
    tests = re.findall(r"% run by pytest: [^\n]+\n```python\n(.*?)```", text, re.S)
    config = re.findall(r"```toml\n(\[tool\.pytest\.ini_options\]\n.*?)```", text, re.S)
    return tests, config[0] if config else ""


def _pytest(directory: Path, *options: str) -> subprocess.CompletedProcess[str]:
    registered = any(
        entry.name == "zimage_async.pytest_plugin"
        for entry in metadata.entry_points(group="pytest11")
    )
    plugin = [] if registered else ["-p", "zimage_async.pytest_plugin"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZIMAGE_", "PYTEST_"))}
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"
    return subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin, *options],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_testing_page_shows_tests_and_their_configuration() -> None:
    """docs/testing.md has a strict-mode test, an auto-mode test and the pytest settings."""
    tests, config = _pytest_blocks()
    assert len(tests) == 2
    assert 'asyncio_mode = "auto"' in config


def test_the_testing_page_marked_example_passes_in_strict_mode(tmp_path: Path) -> None:
    """The page's first test file passes as written with no configuration (strict mode)."""
    tests, _ = _pytest_blocks()
    (tmp_path / "test_mine.py").write_text(tests[0], encoding="utf-8")
    done = _pytest(tmp_path, "-o", "asyncio_mode=strict")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_the_testing_page_examples_pass_with_the_documented_configuration(
    tmp_path: Path,
) -> None:
    """With the page's pyproject.toml settings, both of its test files pass as written."""
    tests, config = _pytest_blocks()
    (tmp_path / "pyproject.toml").write_text(config, encoding="utf-8")
    for number, source in enumerate(tests):
        (tmp_path / f"test_mine_{number}.py").write_text(source, encoding="utf-8")
    done = _pytest(tmp_path, "-W", "error")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(tests)} passed" in done.stdout
