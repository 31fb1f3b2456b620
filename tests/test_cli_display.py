r"""What the command line shows of strings it does not control: escaped and cut, never raw.

A server (or a file) may send ESC, BEL, CR or a bidi override in a task's error, its
status, a 400 message or an image link, and lines of any length: the human-readable
output shows them escaped (``\x1b``, ``\u202e``) and cut, while ``--json`` keeps them
exact.
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web

from zimage_async._cli_output import SHOWN_CHARACTERS, shown

from ._cli import cli_env, finished

#: Escapes, a title change, BEL, CR and a bidi override, as a hostile server sends them.
HOSTILE = "\x1b[2J\x1b[31mPWNED\x1b]0;title\x07\rOVERWRITE\u202eevil\u202c"
RAW = ("\x1b", "\x07", "\r", "\u202e", "\u202c")
TASK_ID = "task-unified-1700000001-abcd0001"


def clean(text: str) -> None:
    """Assert *text* holds no raw control character and no line over the display limit."""
    for raw in RAW:
        assert raw not in text, f"{raw!r} reached the output raw"
    # A line is the prefix ("zimage: error: ...") and a value cut to the limit.
    longest = max((len(line) for line in text.split("\n")), default=0)
    assert longest <= SHOWN_CHARACTERS + 100, f"a line of {longest} characters"


def test_shown_escapes_control_and_format_characters() -> None:
    """ESC, BEL, CR, NUL, DEL, C1 controls and bidi overrides become visible escapes."""
    assert shown("a\x1b[31mb\x07c\rd\u202ee\x00\x7f\x85") == (
        "a\\x1b[31mb\\x07c\\rd\\u202ee\\x00\\x7f\\x85"
    )
    assert shown("zero\u200bwidth \U000e0041tag") == "zero\\u200bwidth \\U000e0041tag"
    assert shown("line\nbreak\ttab") == "line\\nbreak\\ttab"


def test_shown_keeps_printable_text() -> None:
    """Letters of any script, spaces and punctuation pass unchanged."""
    text = "Ein Fuchs im Schnee — 雪の中の狐, 16:9 (seed 7) ☃"
    assert shown(text) == text


def test_shown_cuts_a_long_text_with_an_ellipsis() -> None:
    """Over SHOWN_CHARACTERS, the text is cut there and says how much was left out."""
    text = "Y" * 20_000
    cut = shown(text)
    assert cut.startswith("Y" * SHOWN_CHARACTERS)
    assert cut.endswith(f"... ({20_000 - SHOWN_CHARACTERS} more characters)")
    assert shown("Y" * SHOWN_CHARACTERS) == "Y" * SHOWN_CHARACTERS
    # The escapes count: a text of controls is cut once escaped.
    assert len(shown("\x1b" * 5_000)) < SHOWN_CHARACTERS + 40


def _task(task_id: str, status: str, **extra: object) -> dict[str, object]:
    done = status in ("completed", "failed")
    return {
        "id": task_id,
        "status": status,
        "progress": 100 if done else 0,
        "created": int(time.time()),
        "model": "z-image-turbo",
        "usage": {"credits_reserved": 1},
    } | extra


def _app(mode: str, port: Callable[[], int]) -> web.Application:
    async def create(request: web.Request) -> web.Response:
        await request.read()
        if mode == "create_err":
            error = {"code": 400, "message": "bad " + HOSTILE + "X" * 5000, "type": "x"}
            return web.json_response({"error": error}, status=400)
        return web.json_response(_task(TASK_ID, "pending"))

    async def task(request: web.Request) -> web.Response:
        tid = request.match_info["tid"]
        if mode == "failmsg":
            error = {"code": "service_error" + HOSTILE, "message": "boom " + HOSTILE + "Y" * 20000}
            return web.json_response(_task(tid, "failed", error=error))
        if mode == "weirdstatus":
            return web.json_response(_task(tid, "proc" + HOSTILE, progress=5))
        link = f"http://127.0.0.1:{port()}/img/\x1b[31m%1b[31m"
        return web.json_response(_task(tid, "completed", results=[link]))

    app = web.Application()
    app.router.add_post("/apiv1/v1/images/generations", create)
    app.router.add_get("/apiv1/v1/tasks/{tid}", task)
    return app


@pytest.fixture
async def hostile(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A server on 127.0.0.1 sending hostile strings (the mode is the test's param)."""
    bound = {"port": 0}
    runner = web.AppRunner(_app(request.param, lambda: bound["port"]))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    bound["port"] = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{bound['port']}/apiv1"
    finally:
        await runner.cleanup()


async def zimage(*args: str | Path, base_url: str | None = None) -> tuple[int, str, str]:
    """Run the command line (against *base_url*, else the in-process emulator)."""
    env = {} if base_url is None else {"ZIMAGE_API_KEY": "k", "ZIMAGE_BASE_URL": base_url}
    return await finished(*args, env=cli_env(**env))


@pytest.mark.parametrize("hostile", ["failmsg"], indirect=True)
async def test_a_task_failure_message_is_shown_escaped_and_cut(
    hostile: str, tmp_path: Path
) -> None:
    """With generate and task, the failed task's code and message are escaped and cut."""
    status, stdout, stderr = await zimage(
        "generate", "a cat", "-o", tmp_path, "--no-journal", base_url=hostile
    )
    assert status == 1
    clean(stdout + stderr)
    assert "\\x1b[2J" in stderr and "(20045 characters)" in stderr  # cut by the library
    status, stdout, stderr = await zimage("task", TASK_ID, "--no-journal", base_url=hostile)
    assert status == 1
    clean(stdout + stderr)
    assert "\\u202e" in stdout


@pytest.mark.parametrize("hostile", ["failmsg"], indirect=True)
async def test_json_output_keeps_the_library_message(hostile: str, tmp_path: Path) -> None:
    """--json: the message is the library's, the server's text in it escaped and cut."""
    status, stdout, _ = await zimage(
        "generate", "a cat", "-o", tmp_path, "--no-journal", "--json", base_url=hostile
    )
    assert status == 1
    assert "\x1b" not in stdout
    message = json.loads(stdout)["error"]["message"]
    assert message.isprintable() and "Y" * 20000 not in message
    assert "\\x1b[2J" in message and "(20045 characters)" in message


@pytest.mark.parametrize("hostile", ["weirdstatus"], indirect=True)
async def test_a_raw_status_is_shown_escaped(hostile: str) -> None:
    """In `zimage task`, a status holding escapes is shown escaped."""
    _, stdout, stderr = await zimage("task", TASK_ID, "--no-journal", base_url=hostile)
    clean(stdout + stderr)
    assert "proc\\x1b[2J" in stdout


@pytest.mark.parametrize("hostile", ["create_err", "badlink"], indirect=True)
async def test_batch_shows_server_strings_escaped(hostile: str, tmp_path: Path) -> None:
    """In `zimage batch`, a 400 message and a refused image link are escaped and cut."""
    prompts = tmp_path / "p.txt"
    prompts.write_text("a cat\n")
    status, stdout, stderr = await zimage(
        "batch", prompts, "-o", tmp_path / "out", base_url=hostile
    )
    assert status == 1
    assert "FAILED" in stdout
    clean(stdout + stderr)


async def test_tasks_list_shows_a_prompt_escaped(tmp_path: Path) -> None:
    """In `zimage tasks list`, a prompt holding ESC and a bidi override is shown escaped."""
    journal = tmp_path / "j.sqlite"
    prompt = "a \x1b[31mred\x1b[0m \u202ecat"
    status, _, stderr = await zimage(
        "generate", prompt, "-o", tmp_path, "--journal", journal, "--emulator-task-duration", "0"
    )
    assert status == 0, stderr
    status, stdout, stderr = await zimage("tasks", "list", "--all", "--journal", journal)
    assert status == 0, stderr
    clean(stdout + stderr)
    assert "a \\x1b[31mred" in stdout


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _hostile_png(path: Path) -> None:
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
    text = HOSTILE.encode("latin-1", "replace")
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + ihdr
        + _chunk(b"tEXt", b"prompt\0" + text)
        + _chunk(b"iTXt", b"seed\0\0\0\0\0" + ("1" + HOSTILE).encode())
        + _chunk(b"tEXt", b"Comment\0" + b"A" * 500_000)
        + _chunk(b"tEXt", b"\x1b[31mkey\0v")
        + _chunk(b"IDAT", zlib.compress(b"\0\0\0\0"))
        + _chunk(b"IEND", b"")
    )


async def test_info_shows_fields_escaped_and_cut(tmp_path: Path) -> None:
    """In `zimage info`, keys and values are escaped, a 500,000-character value cut."""
    image = tmp_path / "esc.png"
    _hostile_png(image)
    status, stdout, stderr = await zimage("info", image)
    assert status == 0, stderr
    clean(stdout + stderr)
    assert len(stdout) < 5 * SHOWN_CHARACTERS
    status, stdout, _ = await zimage("info", image, "--json")
    assert status == 0
    assert json.loads(stdout)["fields"]["Comment"] == "A" * 500_000
