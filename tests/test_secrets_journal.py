"""A PostgreSQL journal's password never reaches the command line's output or a message.

The password may be in the URL's user info (``postgresql://u:PW@host/db``) or in its query
string (``?password=PW``, ``?sslpassword=PW``); the URL may name several hosts. Every
command is run for real, in a subprocess, against a throwaway PostgreSQL server on
127.0.0.1 (whose trust authentication ignores the password) or an address that refuses.
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from zimage_async._cli_common import Target
from zimage_async._exceptions import JournalError
from zimage_async._journal import open_journal
from zimage_async._journal_postgres_sql import without_password, without_passwords
from zimage_async.emulator import Emulator, ManualClock

from ._cli import run_keyless, start
from ._postgres import PostgresServer, throwaway_server
from .conftest import until

PW = "s3cret-pw-4f1e"
FAST = ["--emulator-task-duration", "0.05"]


# -- without_password: pure ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        pytest.param("postgresql://u:PW@h/db", "postgresql://u@h/db", id="userinfo"),
        pytest.param("postgresql://u:PW@h:5432/db", "postgresql://u@h:5432/db", id="port"),
        pytest.param("postgres://:PW@h/db", "postgres://h/db", id="no-user"),
        pytest.param("postgresql://u@h/db", "postgresql://u@h/db", id="no-password"),
        pytest.param("postgresql://u@h/db?password=PW", "postgresql://u@h/db", id="query-password"),
        pytest.param(
            "postgresql://u@h/db?sslmode=require&sslpassword=PW&application_name=a",
            "postgresql://u@h/db?sslmode=require&application_name=a",
            id="query-sslpassword",
        ),
        pytest.param(
            "postgresql://h/db?PASSWORD=PW#x", "postgresql://h/db#x", id="query-upper-fragment"
        ),
        pytest.param(
            "postgresql://u@h/db?pass%77ord=PW&sslmode=disable",
            "postgresql://u@h/db?sslmode=disable",
            id="query-encoded-key",
        ),
        pytest.param("postgresql://h?password=PW", "postgresql://h", id="query-without-path"),
        pytest.param("postgresql://h?password=P@W/x", "postgresql://h", id="query-holding-@"),
        pytest.param(
            "postgresql://u:PW@h1:5432,h2:5433/db",
            "postgresql://u@h1:5432,h2:5433/db",
            id="multi-host",
        ),
        pytest.param("postgresql://u:PW@[::1]:5432/db", "postgresql://u@[::1]:5432/db", id="ipv6"),
        pytest.param("postgresql://u:PW@[::1/db", "postgresql://u@[::1/db", id="bad-ipv6"),
        pytest.param("postgresql://u:PW@h:port/db", "postgresql://u@h:port/db", id="bad-port"),
        pytest.param("postgresql://u:P@W?#@h/db", "postgresql://u@h/db", id="odd-characters"),
    ],
)
def test_without_password_keeps_everything_but_the_secrets(url: str, shown: str) -> None:
    """User info loses its password, the query its password parameters; nothing raises."""
    assert without_password(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("postgresql://u:zq/xy@127.0.0.1:1/db", id="slash-in-password"),
        pytest.param("postgresql://u:zqxy@127.0.0.1:abc/db", id="bad-port"),
    ],
)
async def test_a_malformed_journal_url_is_refused_without_its_password(url: str) -> None:
    """The ValueError asyncpg raises (quoting what it misread) becomes a redacted JournalError."""
    with pytest.raises(JournalError) as caught:
        await open_journal(url)
    assert "zq" not in str(caught.value)
    assert "URL does not parse" in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_without_passwords_redacts_every_url_in_a_text() -> None:
    """Any scheme's ``user:password@`` and password parameters go from a message."""
    text = (
        f"--journal postgresql+asyncpg://u:{PW}@h/db: a file path, "
        f"not mysql://root:{PW}@db/x?password={PW} or https://h/?sslpassword={PW}"
    )
    assert without_passwords(text) == (
        "--journal postgresql+asyncpg://u@h/db: a file path, not mysql://root@db/x or https://h/"
    )


# -- the command line ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server on 127.0.0.1 for this module, removed afterwards."""
    with throwaway_server() as server:
        yield server


def _with_password(url: str, where: str) -> str:
    """*url* (``postgresql://postgres@...``) carrying PW in its user info or its query."""
    if where == "userinfo":
        return url.replace("postgres@", f"postgres:{PW}@", 1)
    return f"{url}?sslmode=disable&password={PW}"


zimage = run_keyless


def _refused_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize("where", ["userinfo", "query"])
@pytest.mark.parametrize("form", ["separate", "equals"])
def test_a_failed_items_resume_hint_shows_no_password(
    postgres: PostgresServer, tmp_path: Path, where: str, form: str
) -> None:
    """A batch with a failed item says how to resume it, without the journal's password."""
    url = _with_password(postgres.create_database(), where)
    option = ["--journal", url] if form == "separate" else [f"--journal={url}"]
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a cat\na dog [[fail:content_policy_violation]]\n")
    done = zimage("batch", prompts, "-o", tmp_path / "out", *option, *FAST)
    assert done.returncode == 1, done.stderr
    assert "run the same command again" in done.stderr
    unquoted = done.stderr.replace("'", "")  # the command is quoted for the shell
    assert f"--journal{' ' if form == 'separate' else '='}postgresql://postgres@" in unquoted
    assert PW not in done.stdout + done.stderr


def test_the_earlier_option_name_shows_no_password(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """--manifest=URL, the earlier name of --journal, is redacted in the hint as well."""
    url = _with_password(postgres.create_database(), "userinfo")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a dog [[fail:content_policy_violation]]\n")
    done = zimage("batch", prompts, "-o", tmp_path / "out", f"--manifest={url}", "--json", *FAST)
    assert done.returncode == 1, done.stderr
    assert "run the same command again" in done.stderr
    assert PW not in done.stdout + done.stderr


@pytest.fixture
async def manual_emulator() -> AsyncIterator[Emulator]:
    """An emulator in the test process on a manual clock: its tasks run until advanced."""
    clock = ManualClock(start=time.time())
    async with Emulator(clock=clock, task_duration=1.0, seed=5) as emu:
        yield emu


async def test_an_interrupted_batchs_message_shows_no_password(
    postgres: PostgresServer, manual_emulator: Emulator, tmp_path: Path
) -> None:
    """SIGINT mid-batch: the journal and the command to resume are named without it."""
    emu = manual_emulator
    url = _with_password(postgres.create_database(), "userinfo")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("prompt 0\nprompt 1\n")
    process = await start(emu, "batch", prompts, "-o", tmp_path / "out", "--journal", url)
    await until(
        lambda: len(emu.ledger) >= 2 and emu.request_counts.get("task", 0) >= 2, deadline=30
    )
    process.send_signal(signal.SIGINT)
    stdout, stderr = await process.communicate()
    assert process.returncode == 130, stderr.decode()
    assert "Run the same command again" in stderr.decode()
    assert "postgresql://postgres@127.0.0.1" in stderr.decode()
    assert PW not in stdout.decode() + stderr.decode()


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["batch", "PROMPTS", "-o", "OUT"], id="batch"),
        pytest.param(["tasks", "list"], id="tasks-list"),
        pytest.param(["generate", "a cat", "-o", "OUT"], id="generate"),
    ],
)
@pytest.mark.parametrize("form", ["separate", "equals"])
def test_an_unsupported_scheme_is_refused_without_its_password(
    tmp_path: Path, command: list[str], form: str
) -> None:
    """A URL of another scheme is a usage error (exit 2) that names it without the password."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a cat\n")
    url = f"postgresql+asyncpg://u:{PW}@h/db"
    option = ["--journal", url] if form == "separate" else [f"--journal={url}"]
    args = [{"PROMPTS": str(prompts), "OUT": str(tmp_path / "out")}.get(a, a) for a in command]
    done = zimage(*args, *option)
    assert done.returncode == 2, done.stderr
    assert "postgresql+asyncpg://u@h/db" in done.stderr
    assert PW not in done.stdout + done.stderr


@pytest.mark.parametrize(
    "journal",
    [
        pytest.param(f"postgresql://u:{PW}@127.0.0.1:PORT/db", id="userinfo"),
        pytest.param(f"postgresql://u@127.0.0.1:PORT/db?password={PW}", id="query"),
        pytest.param(f"postgresql://u@127.0.0.1:PORT/db?sslpassword={PW}", id="sslpassword"),
        pytest.param(f"postgresql://u:{PW}@127.0.0.1:PORT,127.0.0.1:PORT/db", id="multi-host"),
    ],
)
@pytest.mark.parametrize("command", [["tasks", "list"], ["tasks", "spend"]])
def test_an_unreachable_journals_error_shows_no_password(journal: str, command: list[str]) -> None:
    """A journal that cannot be opened is a usage error naming it without the password."""
    done = zimage(*command, "--journal", journal.replace("PORT", str(_refused_port())))
    assert done.returncode == 2, done.stderr
    assert "127.0.0.1" in done.stderr
    assert "Traceback" not in done.stderr
    assert PW not in done.stdout + done.stderr


def test_a_commands_target_shows_its_journal_without_the_password() -> None:
    """The repr of the open session's description names the journal without it."""
    target = Target(session=None, emulated=False, journal=f"postgresql://u:{PW}@h/db")  # type: ignore[arg-type]
    assert "postgresql://u@h/db" in repr(target)
    assert PW not in repr(target)
