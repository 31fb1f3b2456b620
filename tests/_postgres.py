"""A throwaway PostgreSQL server for the tests, made from the machine's own binaries.

``throwaway_server()`` runs ``initdb`` into a temporary directory, starts the server
with ``pg_ctl`` on 127.0.0.1 at a free port (its unix socket in the same directory),
and on exit stops it and removes the directory. PostgreSQL refuses to run as root, so
as root the directory is given to the ``postgres`` user and the server programs run
through ``runuser -u postgres --``. Durability is off (``fsync=off``): the server lives
for one test module.

Without PostgreSQL binaries the tests that need it are skipped, except under CI
(``CI=true``), where that is a failure: CI installs PostgreSQL (``.ci/run``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import attrs
import pytest

from zimage_async._journal import Journal
from zimage_async._journal_records import JournalItem, JournalRecord
from zimage_async._models import GenerationRequest

__all__ = ["PostgresServer", "find_binaries", "throwaway_server"]

#: The programs needed, looked up together in one directory.
PROGRAMS = ("initdb", "pg_ctl", "postgres", "createdb")
#: The user the server runs as when the tests run as root.
SERVER_USER = "postgres"


@attrs.frozen(kw_only=True)
class PostgresServer:
    """A running throwaway server: where it listens and how to make databases on it."""

    bin_dir: Path
    port: int
    host: str = "127.0.0.1"
    user: str = SERVER_USER

    def url(self, database: str) -> str:
        """The ``postgresql://`` URL of *database* on this server."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self) -> str:
        """Create a new, empty database and return its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        subprocess.run(  # noqa: S603 - the PostgreSQL programs, fixed arguments
            [
                str(self.bin_dir / "createdb"),
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                self.user,
                name,
            ],
            check=True,
            capture_output=True,
        )
        return self.url(name)


def find_binaries() -> Path | None:
    """Return the directory holding initdb, pg_ctl, postgres and createdb, or None.

    ``pg_ctl`` on ``PATH`` first, then the newest ``/usr/lib/postgresql/*/bin``.
    """
    candidates = []
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates += [Path(on_path).parent, Path(on_path).resolve().parent]
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted((Path(p) for p in versions), key=_version, reverse=True)
    for directory in candidates:
        if all((directory / program).is_file() for program in PROGRAMS):
            return directory
    return None


def _version(path: Path) -> tuple[int, ...]:
    digits = path.parent.name.split(".")
    return tuple(int(d) for d in digits if d.isdigit())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must run the PostgreSQL tests (.ci/run installs it)")
    pytest.skip(reason)


@contextlib.contextmanager
def throwaway_server() -> Iterator[PostgresServer]:
    """Start a server in a temporary directory; stop it and remove the directory after."""
    bin_dir = find_binaries()
    if bin_dir is None:
        _unavailable("PostgreSQL binaries (initdb, pg_ctl) are not on PATH or under /usr/lib")
        raise AssertionError("unreachable")
    prefix: list[str] = []
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            _unavailable(f"running as root, and there is no {SERVER_USER!r} user to run as")
        runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
        if runuser is None:
            _unavailable("running as root, and runuser (util-linux) is not installed")
        prefix = [str(runuser), "-u", SERVER_USER, "--"]
    base = Path(tempfile.mkdtemp(prefix="zimage-pg-"))
    try:
        if prefix:
            shutil.chown(base, SERVER_USER, SERVER_USER)
        data = base / "data"
        log = base / "server.log"
        subprocess.run(  # noqa: S603 - the PostgreSQL programs, fixed arguments
            [
                *prefix,
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                SERVER_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        server = _start(prefix, bin_dir, data, log, base)
        try:
            yield server
        finally:
            subprocess.run(  # noqa: S603 - the PostgreSQL programs, fixed arguments
                [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                check=False,
                capture_output=True,
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _start(prefix: list[str], bin_dir: Path, data: Path, log: Path, base: Path) -> PostgresServer:
    """Start the server at a free port; try again if another program took the port first."""
    for _attempt in range(5):
        port = _free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {base}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            " -c max_connections=60"
        )
        started = subprocess.run(  # noqa: S603 - the PostgreSQL programs, fixed arguments
            [
                *prefix,
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ],
            check=False,
            capture_output=True,
        )
        if started.returncode == 0:
            return PostgresServer(bin_dir=bin_dir, port=port)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise RuntimeError(f"PostgreSQL did not start: {started.stderr!r}\n{tail}")


@contextlib.asynccontextmanager
async def journals(url: str, count: int) -> AsyncIterator[list[Journal]]:
    """*count* journals on the database at *url*, each with its own pool (workers); closed after."""
    from zimage_async._journal import open_journal

    opened = [await open_journal(url) for _ in range(count)]
    try:
        yield opened
    finally:
        for journal in opened:
            await journal.close()


#: The API base URL the journal records of these tests name.
BASE = "https://api.example"


def record(prompt: str, *, cost: float | None = None) -> JournalRecord:
    """A create's record for *prompt* (its key made from the prompt), costing *cost*."""
    return JournalRecord.for_request(
        GenerationRequest(prompt=prompt),
        key=f"key-{prompt.replace(' ', '-')}-0123456789",
        base_url=BASE,
        expected_cost=cost,
    )


def item_record(journal_item: JournalItem) -> JournalRecord:
    """The create's record of a claimed batch item, with the item's own key."""
    return JournalRecord.for_request(
        journal_item.request(),
        key=journal_item.key,
        base_url=BASE,
        batch_id=journal_item.batch_id,
        item_index=journal_item.index,
    )
