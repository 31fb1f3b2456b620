"""Refusals name the command's options, and a malformed $ZIMAGE_JOURNAL is refused everywhere.

A refusal said ``drop name=`` or ``over max_credits=0.03``, the Python API's words; it
names ``--name`` and ``--max-credits``. ``ZIMAGE_JOURNAL=sqlite:///...`` was refused by
`generate` but read by `tasks list` and `tasks spend` as a journal with nothing in it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from zimage_async.emulator import Emulator

from ._cli import ended, start


@pytest.fixture
async def quick() -> AsyncIterator[Emulator]:
    async with Emulator(task_duration=0.05) as emu:
        yield emu


@pytest.mark.parametrize(
    ("args", "option"),
    [
        pytest.param(["--name", "{slug}", "-o", "cat.png"], "--name", id="name"),
        pytest.param(["--size", "17:9"], "--size", id="size"),
        pytest.param(["--seed", "0"], "--seed", id="seed"),
    ],
)
async def test_a_refused_option_is_named_as_an_option(
    quick: Emulator, tmp_path: Path, args: list[str], option: str
) -> None:
    status, _, stderr = await ended(
        await start(quick, "generate", "a cat", *args, "--no-journal", cwd=tmp_path)
    )
    assert status == 2, stderr
    assert stderr.startswith(f"zimage: error: {option}: "), stderr
    assert "=" not in stderr.split("the rule is")[0], stderr
    assert not quick.ledger


async def test_the_spend_limit_is_named_as_the_option(quick: Emulator, tmp_path: Path) -> None:
    journal = ["--journal", "j.sqlite"]
    first = await ended(
        await start(quick, "generate", "a cat", "-o", "out/", *journal, cwd=tmp_path)
    )
    assert first[0] == 0, first[2]
    status, _, stderr = await ended(
        await start(
            quick,
            "generate",
            "a cat",
            "-o",
            "out/",
            *journal,
            "--max-credits",
            "0.03",
            cwd=tmp_path,
        )
    )
    assert status == 3, stderr
    assert "max_credits" not in stderr
    assert "over --max-credits 0.03" in stderr
    assert "raise --max-credits" in stderr
    assert len(quick.ledger) == 1


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["tasks", "list"], id="list"),
        pytest.param(["tasks", "spend", "--json"], id="spend"),
        pytest.param(["generate", "a cat", "-o", "out/"], id="generate"),
        pytest.param(["task", "task-unified-1796195522-4r396yjo"], id="task"),
        pytest.param(["tasks", "collect", "-o", "out/"], id="collect"),
    ],
)
async def test_a_journal_url_of_another_scheme_in_the_environment_is_refused(
    quick: Emulator, tmp_path: Path, args: list[str]
) -> None:
    """Exit 2 naming $ZIMAGE_JOURNAL, never calling the bad value the default; nothing sent."""
    value = f"sqlite:///{tmp_path}/journal.sqlite"
    process = await start(quick, *args, cwd=tmp_path, env={"ZIMAGE_JOURNAL": value})
    status, stdout, stderr = await ended(process)
    assert status == 2, stderr
    assert stdout == ""
    assert f"$ZIMAGE_JOURNAL {value}: " in stderr
    assert "default" not in stderr
    assert "nothing was recorded" not in stderr
    assert sum(quick.request_counts.values()) == 0


async def test_tasks_collect_suggests_no_option_it_does_not_take(
    quick: Emulator, tmp_path: Path
) -> None:
    """A file that is not a journal: the refusal names --journal, and no --no-journal."""
    (tmp_path / "junk.sqlite").write_text("not a database\n")
    process = await start(
        quick, "tasks", "collect", "-o", "out", "--journal", "junk.sqlite", cwd=tmp_path
    )
    status, _, stderr = await ended(process)
    assert status == 2, stderr
    assert "--no-journal" not in stderr
    assert "--journal" in stderr


async def test_generate_says_which_option_named_a_journal_it_cannot_open(
    quick: Emulator, tmp_path: Path
) -> None:
    """The journal came from $ZIMAGE_JOURNAL: it says so, and does not call it the default."""
    (tmp_path / "junk.sqlite").write_text("not a database\n")
    process = await start(
        quick,
        "generate",
        "a cat",
        "-o",
        "out/",
        cwd=tmp_path,
        env={"ZIMAGE_JOURNAL": str(tmp_path / "junk.sqlite")},
    )
    status, _, stderr = await ended(process)
    assert status == 2, stderr
    junk = tmp_path / "junk.sqlite"
    assert f"(the journal {junk}, from $ZIMAGE_JOURNAL; " in stderr
    assert f"else {junk}" not in stderr and "default" not in stderr
    assert not quick.ledger


@pytest.mark.parametrize(
    ("library", "command"),
    [
        pytest.param(
            "check before resubmitting; session.resubmit(error) sends it again with the same key",
            "check before resubmitting; `zimage tasks collect -o DIR --resubmit-uncertain` "
            "sends it again with the same key",
            id="resubmit",
        ),
        pytest.param(
            "once it is 30 minutes old, recover(resubmit_uncertain=True) sends it again",
            "once it is 30 minutes old, `zimage tasks collect -o DIR --resubmit-uncertain` "
            "sends it again",
            id="recover",
        ),
        pytest.param(
            "the answer names task task-unified-1-a, which session.task() can resume",
            "the answer names task task-unified-1-a, which `zimage task task-unified-1-a -o "
            "PATH` collects",
            id="task",
        ),
        pytest.param(
            "it keeps running at the service - await the handle again, or collect it later "
            "with session.task('task-unified-1-a') (or `zimage task task-unified-1-a -o DIR`)",
            "it keeps running at the service - collect it later with "
            "`zimage task task-unified-1-a -o DIR`",
            id="timeout",
        ),
    ],
)
def test_the_librarys_python_advice_is_put_in_the_commands_words(
    library: str, command: str
) -> None:
    from zimage_async._cli_words import cli_words

    assert cli_words(library) == command
