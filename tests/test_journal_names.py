"""A journal's name is a file path: never an in-memory database, never an SQLite URI.

``:memory:`` (and a ``file:`` URI SQLite would open in memory) is refused before any
request, by the library and by the command line; every other name is opened as the
file it names, its symbolic-link check on that same file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zimage_async import InvalidRequestError, JournalError, Session
from zimage_async._journal import open_journal
from zimage_async._journal_sqlite import SqliteJournal
from zimage_async.emulator import Emulator

from ._cli import emulator_env, finished

IN_MEMORY = [
    pytest.param(":memory:", id="memory"),
    pytest.param(Path(":memory:"), id="memory-path"),
    pytest.param("file::memory:", id="uri-memory"),
    pytest.param("file:scratch?mode=memory", id="uri-mode-memory"),
    pytest.param("file:scratch?cache=shared&mode=Memory", id="uri-mode-memory-case"),
    pytest.param("file:%3Amemory%3A", id="uri-memory-escaped"),
    pytest.param("file:?mode=rwc", id="uri-temporary"),
    pytest.param("./:memory:", id="memory-dot-slash"),
    pytest.param(":memory:/", id="memory-slash"),
]


def _assert_names_the_rule(error: InvalidRequestError, field: str) -> None:
    assert error.field == field
    assert "in-memory" in error.problem
    assert "restart" in error.problem
    assert "a path to a journal file" in error.rule
    assert f"leave {field} out" in error.rule


@pytest.mark.parametrize("journal", IN_MEMORY)
@pytest.mark.parametrize("max_credits", [None, 0.1])
def test_an_in_memory_journal_is_refused_by_the_session(
    journal: str | Path, max_credits: float | None, emulator: Emulator
) -> None:
    """Refused when the Session is made, before any request; a spend limit cannot hide in it."""
    with pytest.raises(InvalidRequestError) as caught:
        Session(
            api_key=emulator.api_key,
            base_url=emulator.base_url,
            journal=journal,
            max_credits=max_credits,
        )
    _assert_names_the_rule(caught.value, "journal")
    assert not emulator.requests


@pytest.mark.parametrize("field", ["journal", "manifest"])
async def test_an_in_memory_journal_is_refused_by_a_batch(
    field: str, emulator: Emulator, tmp_path: Path
) -> None:
    """generate_many(journal=":memory:") is refused as it is called, nothing sent."""
    async with Session(api_key=emulator.api_key, base_url=emulator.base_url) as zs:
        with pytest.raises(InvalidRequestError) as caught:
            zs.generate_many(["a cat"], output_dir=tmp_path, **{field: ":memory:"})  # type: ignore[arg-type]
    _assert_names_the_rule(caught.value, field)
    assert not emulator.ledger


UNUSABLE = [
    pytest.param("journal\x00.db", "U+0000", id="nul"),
    pytest.param("journal-\udfff.db", "U+DFFF", id="lone-surrogate"),
    pytest.param("postgresql://u:pw@127.0.0.1/db\x00", "U+0000", id="url-nul"),
]


@pytest.mark.parametrize(("journal", "named"), UNUSABLE)
def test_a_journal_name_no_file_system_takes_is_refused_by_the_session(
    journal: str, named: str, emulator: Emulator
) -> None:
    """A NUL or an unencodable character: refused naming journal, not a ValueError at opening."""
    with pytest.raises(InvalidRequestError) as caught:
        Session(api_key=emulator.api_key, base_url=emulator.base_url, journal=journal)
    assert caught.value.field == "journal"
    assert named in caught.value.problem
    assert "pw" not in str(caught.value)
    assert not emulator.requests


@pytest.mark.parametrize("field", ["journal", "manifest"])
async def test_a_journal_name_no_file_system_takes_is_refused_by_a_batch(
    field: str, emulator: Emulator, tmp_path: Path
) -> None:
    r"""generate_many(journal="j\x00.db") is refused as it is called, naming the option."""
    async with Session(api_key=emulator.api_key, base_url=emulator.base_url) as zs:
        with pytest.raises(InvalidRequestError) as caught:
            zs.generate_many(["a cat"], output_dir=tmp_path, **{field: str(tmp_path / "j\x00.db")})  # type: ignore[arg-type]
    assert caught.value.field == field
    assert "U+0000" in caught.value.problem
    assert not emulator.ledger


async def test_the_sqlite_journal_itself_refuses_an_in_memory_name(tmp_path: Path) -> None:
    """Opening ``:memory:`` at the store is refused too: only the package's own is in memory."""
    with pytest.raises(JournalError, match="in-memory"):
        await SqliteJournal.open(Path(":memory:"))


async def test_a_batch_without_a_journal_keeps_a_private_one_in_memory(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch given no journal runs, names no journal location, and writes no file."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    zs = Session(api_key=emulator.api_key, base_url=emulator.base_url)
    async with zs, zs.generate_many(["a cat"], output_dir=out) as batch:
        items = [item async for item in batch]
        assert batch.journal_location is None
    assert [item.ok for item in items] == [True]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert not any(p.suffix == ".sqlite" for p in out.iterdir())


@pytest.mark.parametrize("name", ["file:named.sqlite", "file:scratch?mode=ro"])
async def test_a_file_uri_is_the_name_of_a_file(
    name: str, emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``file:NAME`` opens the file of that whole name, which keeps its records on restart."""
    monkeypatch.chdir(tmp_path)
    options = {"api_key": emulator.api_key, "base_url": emulator.base_url, "journal": name}
    async with Session(**options, max_credits=0.1) as zs:  # type: ignore[arg-type]
        await zs.submit("a cat", cost=0.1)
    assert sorted(os.listdir(tmp_path)) == [name]
    async with Session(**options) as zs:  # type: ignore[arg-type]
        assert len(await zs.unfinished()) == 1


async def test_a_file_uri_never_writes_through_a_symbolic_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``file:link.sqlite`` is not ``link.sqlite``; a link of that whole name is refused."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "target.db").write_bytes(b"")
    (tmp_path / "link.sqlite").symlink_to("target.db")
    journal = await open_journal("file:link.sqlite")  # a new file of that name
    await journal.close()
    assert (tmp_path / "file:link.sqlite").is_file()
    (tmp_path / "file:link.sqlite").unlink()
    (tmp_path / "file:link.sqlite").symlink_to("target.db")
    with pytest.raises(JournalError, match="symbolic link"):
        await open_journal("file:link.sqlite")
    assert (tmp_path / "target.db").read_bytes() == b""


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize("command", [["tasks", "list"], ["tasks", "spend"]])
async def test_the_command_line_refuses_an_in_memory_journal(
    command: list[str], tmp_path: Path
) -> None:
    """``--journal :memory:`` is a usage error (exit 2), said in one line."""
    status, _, stderr = await finished(*command, "--journal", ":memory:", cwd=tmp_path)
    assert status == 2
    line = _one_line(stderr)
    assert "--journal ':memory:'" in line or "--journal :memory:" in line
    assert "in-memory" in line and "restart" in line
    assert os.listdir(tmp_path) == []


async def test_generate_refuses_an_in_memory_journal_before_any_create(
    emulator: Emulator, tmp_path: Path
) -> None:
    """``zimage generate --journal :memory:``: exit 2, one line, nothing billed."""
    status, _, stderr = await finished(
        "generate", "a cat", "-o", tmp_path / "out", "--journal", ":memory:",
        env=emulator_env(emulator), cwd=tmp_path,
    )  # fmt: skip
    assert status == 2
    assert "in-memory" in _one_line(stderr)
    assert not emulator.ledger


async def test_an_in_memory_journal_variable_is_refused(emulator: Emulator, tmp_path: Path) -> None:
    """``ZIMAGE_JOURNAL=:memory:`` is refused the same way, naming the variable."""
    env = emulator_env(emulator, ZIMAGE_JOURNAL=":memory:")
    status, _, stderr = await finished("generate", "a cat", "-o", tmp_path, env=env, cwd=tmp_path)
    assert status == 2
    line = _one_line(stderr)
    assert "ZIMAGE_JOURNAL" in line and "in-memory" in line
    assert not emulator.ledger


@pytest.mark.parametrize("name", [":memory:", "./:memory:"])
async def test_batch_refuses_an_in_memory_journal(
    emulator: Emulator, tmp_path: Path, name: str
) -> None:
    """``zimage batch FILE --journal :memory:``: exit 2 with the rule, nothing billed."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a cat\n", encoding="utf-8")
    status, _, stderr = await finished(
        "batch", prompts, "-o", tmp_path / "out", "--journal", name,
        env=emulator_env(emulator), cwd=tmp_path,
    )  # fmt: skip
    assert status == 2
    assert "in-memory" in stderr.strip().splitlines()[0]
    assert not emulator.ledger
