"""Developer tasks: ``nox -s tests lint typecheck docs`` is what CI runs; ``nox -s bench``."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = False
nox.options.error_on_missing_interpreters = True
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")

# The supported Pythons come from the classifiers; tests run on each one this machine
# has (CI makes all of them findable), so a laptop with only some still runs `nox`.
SUPPORTED = [
    match.group(1)
    for classifier in PYPROJECT["project"]["classifiers"]
    if (match := re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", classifier))
]
AVAILABLE = [v for v in SUPPORTED if shutil.which(f"python{v}")] or SUPPORTED
#: Lint, type checks and docs run on one Python (the newest Sphinx needs 3.11+).
MAIN_PYTHON = "3.11" if "3.11" in AVAILABLE else AVAILABLE[-1]


def _install(session: nox.Session, *groups: str, extras: str = "") -> None:
    requirements: list[str] = []
    for group in groups:
        requirements += nox.project.dependency_groups(PYPROJECT, group)
    # Editable, so that the doctests collected from zimage_async/ and the imported
    # package are the same files.
    session.install("-e", f".{extras}", *requirements)


@nox.session(python=AVAILABLE)
def tests(session: nox.Session) -> None:
    """Run the test suite (chaos runs included) against the emulator on 127.0.0.1."""
    _install(session, "tests", extras="[images,cli,postgres,otel]")
    session.run("pytest", *(session.posargs or ["-q"]))


@nox.session(python=MAIN_PYTHON)
def lint(session: nox.Session) -> None:
    """Lint and check formatting with ruff."""
    _install(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=MAIN_PYTHON)
def typecheck(session: nox.Session) -> None:
    """Type-check the package, the tests and this file with mypy --strict."""
    _install(session, "typecheck", "tests", extras="[images,cli,postgres,otel]")
    session.install("nox")
    session.run("mypy")


@nox.session(python=MAIN_PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation with warnings as errors, and run its doctests."""
    _install(session, "docs", extras="[images]")
    build = ROOT / "docs" / "_build"
    shutil.rmtree(build, ignore_errors=True)
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", str(build / "html"))
    session.run(
        "sphinx-build", "-W", "--keep-going", "-b", "doctest", "docs", str(build / "doctest")
    )


@nox.session(python=MAIN_PYTHON)
def bench(session: nox.Session) -> None:
    """Run the benchmarks (not part of CI); chart them into docs/benchmarks.md.

    With arguments (``nox -s bench -- --quick``), runs only ``python -m benchmarks ARGS``.
    """
    _install(session, "tests", "bench", extras="[images,cli]")
    if session.posargs:
        session.run("python", "-m", "benchmarks", *session.posargs)
        return
    out = ROOT / "docs" / "_static" / "bench"
    session.run(
        "python",
        "-m",
        "benchmarks",
        "--save-results",
        str(out / "results.json"),
        "--report",
        str(out),
        "--page",
        str(ROOT / "docs" / "benchmarks.md"),
    )
