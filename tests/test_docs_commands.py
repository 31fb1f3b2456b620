"""The shell commands of the README and the docs run as written, on 127.0.0.1 only.

Every command of a ``console`` block (and every ``$ `` line of a ``text`` block, a terminal
session shown) is accounted for: run by the test that reads it from its page (the
install commands in test_docs, the emulator on port 8000 in test_cli, the ``zimage``
commands of the CLI and journal pages in test_cli_tasks, the PostgreSQL page in
test_docs_distributed, the rest here), or listed in NOT_RUN with the reason and what
checks it instead. Commands are read from the Markdown, never copied into a test; where a
page says ids, ports or times will differ, a later command gets the id or link an
earlier one answered in place of the page's.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pytest
from PIL import Image as PILImage

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
BASH = shutil.which("bash") or "/bin/bash"

#: Commands no test runs as written, each with why not and what checks it instead.
NOT_RUN = {
    r"export ZIMAGE_API_KEY=sk-\.\.\.": (
        "sets a real key for the real service; the page's example after it runs against "
        "an emulator in test_docs"
    ),
    r"python3 -m pip install .* && python3 -m nox -s .*": (
        "the README's test command runs this whole suite, and fetches its tools: "
        "test_the_readme_test_command_is_what_ci_runs compares it with .ci/run, and "
        "test_every_documented_nox_session_exists finds its sessions in noxfile.py"
    ),
    r"nox -s bench": (
        "about five minutes, and installs matplotlib from the package index: "
        "test_every_documented_nox_session_exists"
    ),
    r"python -m benchmarks --(?:only|scale-tasks) .*": (
        "one to two minutes each, the code of --quick with larger sizes: "
        "test_the_longer_benchmark_commands_parse_as_written"
    ),
    r"python -m benchmarks --from-results .*": (
        "needs matplotlib (the bench group), which the tests session does not install: "
        "test_the_redraw_command_reproduces_the_committed_page runs it where it is "
        "installed, test_the_longer_benchmark_commands_parse_as_written checks its options"
    ),
}


@dataclass
class Step:
    """One command of a page, with the lines the page shows after it."""

    command: str
    output: list[str] = field(default_factory=list)


def _steps(block: str, *, prompted: bool) -> list[Step]:
    """The commands of a block: its ``$ `` lines (with continuation lines), or every line."""
    if not prompted:
        return [Step(re.sub(r"\s{2,}#.*", "", line)) for line in block.splitlines() if line]
    steps: list[Step] = []
    continued = False
    for line in block.splitlines():
        if continued:
            steps[-1].command += "\n" + line
        elif line.startswith("$ "):
            steps.append(Step(line.removeprefix("$ ")))
        elif steps:
            steps[-1].output.append(line)
        continued = line.endswith("\\") and bool(steps) and not steps[-1].output
    return steps


def _blocks(page: Path, kinds: str = "console|bash|sh") -> list[str]:
    return re.findall(rf"```(?:{kinds})\n(.*?)```", page.read_text(encoding="utf-8"), re.S)


def _commands() -> list[tuple[str, Step]]:
    """Every command of the README and the docs, with the name of its page."""
    found = []
    for page in PAGES:
        for block in _blocks(page):
            prompted = any(line.startswith("$ ") for line in block.splitlines())
            found += [(page.name, step) for step in _steps(block, prompted=prompted)]
        for block in _blocks(page, "text"):
            found += [(page.name, step) for step in _steps(block, prompted=True)]
    return found


def _block_steps(page: Path, first: str) -> list[Step]:
    """The commands of the console block of *page* whose first command starts with *first*."""
    for block in _blocks(page):
        steps = _steps(block, prompted=block.startswith("$ "))
        if steps and steps[0].command.startswith(first):
            return steps
    raise AssertionError(f"{page.name} has no console block starting with {first!r}")


def _readme_emulator_session() -> list[Step]:
    """The README's emulator command, then the commands run "from another terminal"."""
    server, *rest = _block_steps(ROOT / "README.md", "python -m zimage_async.emulator")
    return [server, *rest, *_block_steps(ROOT / "README.md", "curl ")]


def _run_by_other_tests() -> set[str]:
    """The commands other test modules read from the pages and run."""
    from .test_cli import _port_8000_commands
    from .test_cli_tasks import _documented
    from .test_docs import _install_commands
    from .test_docs_distributed import _blocks as distributed_blocks

    return {
        *(command for _, command in _install_commands()),
        *_port_8000_commands(),
        *_documented(),
        *(line for block in distributed_blocks("console") for line in block),
    }


def _run_here() -> set[str]:
    """The commands the tests of this module run as written."""
    quick = {command for command in _benchmark_commands() if _runs_quickly(command)}
    return (
        {step.command for step in _readme_emulator_session()} | {_transcript()[0].command} | quick
    )


def test_every_documented_command_is_run_or_says_why_not() -> None:
    """No command of a page is left out: each is run by a test, or NOT_RUN says why not."""
    accounted = _run_by_other_tests() | _run_here()
    missing = [
        f"{page}: {step.command}"
        for page, step in _commands()
        if step.command not in accounted
        and not any(re.fullmatch(pattern, step.command) for pattern in NOT_RUN)
    ]
    assert missing == []
    stale = [p for p in NOT_RUN if not any(re.fullmatch(p, s.command) for _, s in _commands())]
    assert stale == []


def _env() -> dict[str, str]:
    """No ``ZIMAGE_*`` and no proxy variable; this interpreter's scripts first on PATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ZIMAGE_") and not k.lower().endswith("_proxy")
    }
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def _bash(command: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - a documented command, run as a reader would
        [BASH, "-c", command],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _shape(documented: str, *variable: str) -> re.Pattern[str]:
    """*documented* as a pattern in which each part a *variable* pattern matches may differ."""
    parts = re.compile("|".join(f"(?:{v})" for v in variable))
    pattern, end = "", 0
    for part in parts.finditer(documented):
        pattern += re.escape(documented[end : part.start()]) + f"(?:{parts.pattern})"
        end = part.end()
    return re.compile(pattern + re.escape(documented[end:]))


#: What differs from run to run in the README's emulator session: ids, ports, times.
EMULATOR_RUN = (
    r"task-unified-\d+-[0-9a-z]+",
    r"(?<=127\.0\.0\.1:)(?!8000\b)\d+",
    r"\b\d{10}\b",
    r"(?<=sig=)[0-9a-f]+(?:\.\.\.)?",
    r'(?<="estimated_time":)\d+',
)


def _answered(step: Step, command: str, cwd: Path) -> str:
    """Run *command*; again (for up to 30 s) while its task is not yet as the page shows it."""
    deadline = time.monotonic() + 30
    while True:
        done = _bash(command, cwd, timeout=30)
        assert done.returncode == 0, f"{command}\n{done.stderr}"
        shown = '"status":"completed"' in "".join(step.output)
        if not shown or '"status":"completed"' in done.stdout or time.monotonic() > deadline:
            return done.stdout
        time.sleep(0.25)


def test_the_readme_emulator_session_runs_as_written(tmp_path: Path) -> None:
    """The README's emulator, started as written, answers its curl commands as it shows.

    The banner's first lines, each JSON answer and the `file` line match the README but
    for ids, times, ports and signatures, which it says will differ.
    """
    from .test_cli import _port_taken

    server, *client = _readme_emulator_session()
    if _port_taken(8000):
        pytest.skip("port 8000, the README's, is taken on this machine")
    if shutil.which("curl") is None:
        pytest.skip("no curl on this machine")
    env = _env()
    program, *args = shlex.split(server.command)
    argv = [shutil.which(program, path=env["PATH"]) or program, *args]
    with (
        (tmp_path / "emulator.err").open("w") as errors,
        subprocess.Popen(  # noqa: S603 - the README's command, this interpreter
            argv, stdout=subprocess.PIPE, stderr=errors, text=True, cwd=tmp_path, env=env
        ) as emulator,
    ):
        try:
            assert emulator.stdout is not None
            for line in server.output[: server.output.index("...")]:
                shown = emulator.stdout.readline().rstrip("\n")
                assert _shape(line, *EMULATOR_RUN).fullmatch(shown), (line, shown)
            ours: dict[str, str] = {}  # the README's ids and links: this run's
            for step in client:
                command = step.command
                for theirs in sorted(ours, key=len, reverse=True):  # a link before its id
                    mine = ours[theirs]
                    command = command.replace(theirs, mine)
                if step.command == "file cat.png" and shutil.which("file") is None:
                    with PILImage.open(tmp_path / "cat.png") as image:
                        assert (image.format, *image.size, image.mode) == ("PNG", 1280, 720, "RGB")
                    continue
                answer = _answered(step, command, tmp_path).strip()
                documented = "\n".join(step.output)
                assert _shape(documented, *EMULATOR_RUN).fullmatch(answer), (command, answer)
                if documented.startswith("{"):
                    theirs_task, mine_task = json.loads(documented), json.loads(answer)
                    ours[theirs_task["id"]] = mine_task["id"]
                    results = zip(
                        theirs_task.get("results", []), mine_task.get("results", []), strict=True
                    )
                    ours |= dict(results)
        finally:
            emulator.send_signal(signal.SIGINT)
            assert emulator.wait(timeout=20) == 0


def test_emulator_help_is_as_the_readme_says() -> None:
    """`python -m zimage_async.emulator --help` lists the options the README names."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    (command,) = re.findall(r"`(python -m zimage_async\.emulator --help)`", text)
    done = _bash(command, ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m zimage_async.emulator")
    assert {"--port", "--task-duration"} <= set(re.findall(r"--[\w-]+", done.stdout))


def _inline(pattern: str) -> list[str]:
    """The inline code spans of the README and the docs that match *pattern* in full."""
    spans = []
    for page in PAGES:
        spans += re.findall(r"`([^`\n]+)`", page.read_text(encoding="utf-8"))
    return sorted({span for span in spans if re.fullmatch(pattern, span)})


@pytest.mark.parametrize("command", _inline(r"zimage --(?:help|version)"))
def test_the_inline_zimage_commands_run_as_written(command: str, tmp_path: Path) -> None:
    """`zimage --help` shows the usage, `zimage --version` the installed version."""
    done = _bash(command, tmp_path)
    assert done.returncode == 0, done.stderr
    if command.endswith("--version"):
        assert done.stdout == f"zimage {metadata.version('zimage-async')}\n"
    else:
        assert done.stdout.startswith("usage: zimage ")


def test_the_inline_commands_are_found() -> None:
    """The README names `zimage --help` and the CLI page `zimage --version`."""
    assert _inline(r"zimage --(?:help|version)") == ["zimage --help", "zimage --version"]


def _transcript() -> tuple[Step, list[str]]:
    """The terminal session of docs/cli.md, and the screen it shows when the command ended."""
    blocks = _blocks(DOCS / "cli.md", "text")
    (number,) = [n for n, block in enumerate(blocks) if block.startswith("$ ")]
    (step,) = _steps(blocks[number], prompted=True)
    return step, blocks[number + 1].splitlines()


def test_the_cli_pages_terminal_session_runs_as_written(tmp_path: Path) -> None:
    """`zimage generate ... -o dusk.png` without a key: the messages and the path shown.

    The page took it on a terminal; run here with pipes, the live bar is left out, and
    the lines that are not the bar match the page but for ports and ids.
    """
    step, ended = _transcript()
    assert "━" in "".join(step.output)
    shown = [line for line in [*step.output, *ended] if "━" not in line]
    messages = list(dict.fromkeys(line for line in shown if line.startswith("zimage: ")))
    done = _bash(step.command, tmp_path)
    assert done.returncode == 0, done.stderr
    said = done.stderr.splitlines()
    assert len(said) == len(messages), said
    for line, actual in zip(messages, said, strict=True):
        assert _shape(line, *EMULATOR_RUN).fullmatch(actual), (line, actual)
    assert done.stdout.splitlines() == [line for line in shown if line not in messages]
    with PILImage.open(tmp_path / "dusk.png") as image:
        assert image.format == "PNG"


#: A file name of the default template, `{number:04d}-{slug}-{index}`.
DEFAULT_NAME = r"\d{4}-[a-z0-9]+(?:-[a-z0-9]+)*-\d+\.png"


def test_the_cli_pages_batch_runs_as_written_without_a_key(tmp_path: Path) -> None:
    """The CLI page's first `zimage batch`, with no key, as the README and the page say.

    It says it runs on the in-process emulator, saves the eight prompts of
    examples/prompts.txt and the contact sheet, prints the lines the page shows (but for
    times and the worker's name), and, run again, generates nothing.
    """
    (step,) = _block_steps(DOCS / "cli.md", "zimage batch examples/")
    (sample,) = re.findall(r"`(\[\d+/\d+\] saved line [^`]+)`", (DOCS / "cli.md").read_text())
    (summary,) = [b for b in _blocks(DOCS / "cli.md", "text") if " item(s): " in b]
    assert re.fullmatch(DEFAULT_NAME, sample.split("/")[-1]), sample
    (tmp_path / "examples").mkdir()
    shutil.copyfile(ROOT / "examples" / "prompts.txt", tmp_path / "examples" / "prompts.txt")
    prompts = (ROOT / "examples" / "prompts.txt").read_text(encoding="utf-8").splitlines()
    count = len([line for line in prompts if line.strip() and not line.startswith("#")])
    assert count == 8
    done = _bash(step.command, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "no ZIMAGE_API_KEY set: using an in-process emulator" in done.stderr
    out = tmp_path / "out"
    assert len([p for p in out.glob("*.png") if re.fullmatch(DEFAULT_NAME, p.name)]) == count
    with PILImage.open(out / "sheet.png") as sheet:
        assert sheet.format == "PNG"
    *items, first, worker = done.stdout.splitlines()
    item = _shape(sample, rf"(?<=out/){DEFAULT_NAME}", r"\d+")
    assert len(items) == count and all(item.fullmatch(line) for line in items), items
    documented, documented_worker = summary.splitlines()
    times = (r"(?<=in )\d+(?:\.\d+)?(?= s)", r"(?<=^worker )\S+(?=: )")
    assert _shape(documented, *times).match(first), first
    assert first.endswith("; contact sheet out/sheet.png"), first
    assert _shape(documented_worker, *times).fullmatch(worker), worker
    again = _bash(step.command, tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"{count} saved, 0 failed ({count} from an earlier run)" in again.stdout
    assert ", submitted 0, " in again.stdout


def _sessions(noxfile: Path) -> set[str]:
    """The session names of a noxfile: its functions decorated with ``nox.session``."""
    tree = ast.parse(noxfile.read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
        and any("nox.session" in ast.unparse(d) for d in node.decorator_list)
    }


def _nox_sessions_named() -> list[str]:
    """Every session a `nox -s ...` of the README and the docs names, inline or in a block."""
    texts = [step.command for _, step in _commands()] + _inline(r"nox -s [\w ]+")
    named = []
    for text in texts:
        for run in re.findall(r"nox -s ((?:[\w-]+ ?)+)", text):
            named += run.split()
    return named


def test_every_documented_nox_session_exists() -> None:
    """Each session the README and the docs tell a reader to run is one of noxfile.py's."""
    named = _nox_sessions_named()
    assert {"tests", "lint", "typecheck", "docs", "bench"} <= set(named)
    assert set(named) <= _sessions(ROOT / "noxfile.py")


def test_the_readme_test_command_is_what_ci_runs() -> None:
    """The README's test command installs what .ci/run installs and runs its nox line."""
    (readme,) = [s.command for p, s in _commands() if p == "README.md" and "nox -s" in s.command]
    install, run = readme.split(" && ")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert run in ci
    (ci_install,) = [line for line in ci if " -m pip install " in line]
    wanted = [word for word in shlex.split(install) if not word.startswith("-")]
    assert [w for w in shlex.split(ci_install) if not w.startswith("-")] == wanted


def _benchmark_commands() -> list[str]:
    """The `python -m benchmarks ...` commands of the benchmarks page."""
    return [
        step.command
        for page, step in _commands()
        if page == "benchmarks.md" and step.command.startswith("python -m benchmarks")
    ]


def _runs_quickly(command: str) -> bool:
    return command.endswith(("--help", "--quick"))


@pytest.mark.parametrize("command", [c for c in _benchmark_commands() if _runs_quickly(c)])
def test_the_quick_benchmark_commands_run_as_written(command: str) -> None:
    """`--help` and `--quick` (small sizes, on an emulator process on 127.0.0.1) exit 0."""
    done = _bash(command, ROOT, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stdout.startswith("usage:" if command.endswith("--help") else "zimage-async ")


@pytest.mark.parametrize("command", [c for c in _benchmark_commands() if not _runs_quickly(c)])
def test_the_longer_benchmark_commands_parse_as_written(command: str) -> None:
    """The longer runs are not made here: their options are checked as the program reads them."""
    from benchmarks.__main__ import _options, _parser

    args = _parser().parse_args(shlex.split(command)[3:])
    if args.from_results is None:
        assert _options(args).rounds >= 1


def test_the_redraw_command_reproduces_the_committed_page(tmp_path: Path) -> None:
    """The page's redraw command, in a copy of the tree, rewrites its files unchanged."""
    pytest.importorskip("matplotlib")
    (command,) = [c for c in _benchmark_commands() if "--from-results" in c]
    for name in ("benchmarks", "docs"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("_build"))
    done = _bash(command, tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    charts = ROOT / "docs" / "_static" / "bench"
    for path in [ROOT / "docs" / "benchmarks.md", *charts.iterdir()]:
        copy = tmp_path / path.relative_to(ROOT)
        assert copy.read_bytes() == path.read_bytes(), path.name
