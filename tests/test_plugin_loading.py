"""The shipped pytest plugin loads every usual way, each in a fresh pytest on a test file.

Through the ``pytest11`` entry point (installed), with ``-p zimage_async.pytest_plugin``,
with ``pytest_plugins`` in a conftest, the last two also with plugin autoloading off, and
it can be turned off with ``-p no:zimage_async.pytest_plugin``. Each run is a subprocess
of this interpreter, bounded by a timeout.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from zimage_async import pytest_plugin

PLUGIN = "zimage_async.pytest_plugin"

#: The longest one fresh pytest run may take.
RUN_TIMEOUT = 120

INI = """\
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
"""

TEST_FILE = """\
async def test_the_fixtures_work(zimage_session, zimage_emulator):
    await zimage_session.generate("a cat")
    assert len(zimage_emulator.ledger) == 1
"""


def _installed() -> bool:
    """Whether the package is installed with its entry point (not only on the path)."""
    return any(entry.value == PLUGIN for entry in metadata.entry_points(group="pytest11"))


def _run(
    directory: Path, *options: str, conftest: str | None = None, autoload: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run pytest in *directory* on one test that uses the plugin's fixtures."""
    (directory / "pytest.ini").write_text(INI, encoding="utf-8")
    (directory / "test_uses_the_plugin.py").write_text(TEST_FILE, encoding="utf-8")
    if conftest is not None:
        (directory / "conftest.py").write_text(conftest, encoding="utf-8")
    if autoload:
        return _pytest(directory, *options)
    # pytest-asyncio, by its name, first
    return _pytest(directory, "-p", "asyncio", *options, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")


def _pytest(directory: Path, *options: str, **environ: str) -> subprocess.CompletedProcess[str]:
    """Run a fresh pytest in *directory* with *options*; *environ* added to the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZIMAGE_", "PYTEST_"))}
    return subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *options],
        cwd=directory,
        env={**env, **environ},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def _tail(text: str) -> str:
    """The last lines of *text*, each cut short (pytest's errors can be huge lines)."""
    return "\n".join(line[:300] for line in text.splitlines()[-30:])


def _passed(done: subprocess.CompletedProcess[str]) -> None:
    report = f"exit {done.returncode}\n{_tail(done.stdout)}\n{_tail(done.stderr)}"
    assert done.returncode == 0, report
    assert "1 passed" in done.stdout, report


def test_the_plugin_loads_through_its_entry_point(tmp_path: Path) -> None:
    """Installed, the fixtures are there with no configuration at all."""
    if not _installed():
        pytest.skip("zimage-async is not installed, so it has no entry point")
    _passed(_run(tmp_path))


@pytest.mark.parametrize("autoload", [True, False], ids=["autoload", "no-autoload"])
def test_the_plugin_loads_with_dash_p(tmp_path: Path, autoload: bool) -> None:
    """``-p zimage_async.pytest_plugin`` works, also beside the entry point."""
    _passed(_run(tmp_path, "-p", PLUGIN, autoload=autoload))


@pytest.mark.parametrize("autoload", [True, False], ids=["autoload", "no-autoload"])
def test_the_plugin_loads_with_pytest_plugins_in_a_conftest(tmp_path: Path, autoload: bool) -> None:
    """``pytest_plugins = ["zimage_async.pytest_plugin"]`` works, also beside the entry point."""
    _passed(_run(tmp_path, conftest=f"pytest_plugins = [{PLUGIN!r}]\n", autoload=autoload))


def test_the_plugin_can_be_turned_off_by_its_name(tmp_path: Path) -> None:
    """``-p no:zimage_async.pytest_plugin`` turns the installed plugin off."""
    if not _installed():
        pytest.skip("zimage-async is not installed, so it has no entry point")
    done = _run(tmp_path, "-p", f"no:{PLUGIN}")
    assert done.returncode == 1, _tail(done.stdout)
    assert "fixture 'zimage_session' not found" in done.stdout


#: Which of the heavy modules a fresh interpreter has loaded after importing the plugin.
IMPORT_PROBE = f"""\
import json, sys
import {PLUGIN}
print(json.dumps([m for m in ("aiohttp", "zimage_async.emulator") if m in sys.modules]))
"""


def test_the_plugin_docstring_says_what_importing_it_loads() -> None:
    """Every pytest run imports the plugin; its docstring is right about what that loads.

    What it says is loaded only when a fixture is first used is not loaded by the import,
    and what the import does load (aiohttp, with the package) is named as such.
    """
    done = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-c", IMPORT_PROBE],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=True,
    )
    loaded = set(json.loads(done.stdout))
    doc = " ".join((pytest_plugin.__doc__ or "").split())
    sentences = re.split(r"(?<=[.;:])\s", doc[doc.index("Importing this module") :])
    deferred = " ".join(s for s in sentences if "when a fixture is first used" in s)
    assert deferred, "the docstring no longer says what waits for a fixture"
    assert "zimage_async.emulator" not in loaded
    if "aiohttp" in loaded:
        assert "aiohttp" not in deferred, deferred
        assert "aiohttp" in " ".join(sentences), "the docstring does not say aiohttp is loaded"


#: The command docs/testing.md gives for loading both plugins by hand, as written there.
BY_HAND = "-p asyncio -p zimage_async.pytest_plugin"


def test_the_documented_loading_by_hand_passes_with_warnings_as_errors(tmp_path: Path) -> None:
    """The docs' order of ``-p`` options raises no warning under ``filterwarnings = error``.

    Loaded first, the plugin imports asyncio (with aiohttp), and pytest then warns that the
    ``asyncio`` of ``-p asyncio`` (pytest-asyncio's name) was imported before it could be
    rewritten: a run with warnings as errors stopped there.
    """
    page = " ".join((Path(__file__).parents[1] / "docs" / "testing.md").read_text().split())
    assert f"`{BY_HAND}`" in page, "docs/testing.md no longer gives this command"
    (tmp_path / "pytest.ini").write_text(INI + "filterwarnings = error\n", encoding="utf-8")
    (tmp_path / "test_uses_the_plugin.py").write_text(TEST_FILE, encoding="utf-8")
    _passed(_pytest(tmp_path, *BY_HAND.split(), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1"))


def test_an_old_pytest_asyncio_does_not_break_an_unrelated_run(tmp_path: Path) -> None:
    """A pytest-asyncio without ``pytest_asyncio.fixture`` (before 0.17) leaves runs working.

    The plugin loads in every pytest run of an environment where zimage-async is installed;
    it took ``pytest_asyncio.fixture`` and failed every run, the user's unrelated ones too.
    """
    old = tmp_path / "old"
    (old / "pytest_asyncio").mkdir(parents=True)
    (old / "pytest_asyncio" / "__init__.py").write_text('__version__ = "0.16.0"\n')
    (tmp_path / "test_plain.py").write_text("def test_plain():\n    assert True\n")
    autoload_off = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONPATH": str(old)}
    _passed(_pytest(tmp_path, "-p", PLUGIN, **autoload_off))
