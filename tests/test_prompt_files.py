"""Reading a prompt file for ``zimage batch`` never turns what is not a prompt into one.

Every prompt read becomes a billed task, so a file that is not a batch file, or a line
that is not a prompt, is refused before anything is sent: exit status 2, an error
naming the file (and the line), and no output written.
"""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

import pytest

from zimage_async import _batchfile
from zimage_async._batchfile import BatchFileError, parse_batch_text, read_batch_file

from .test_cli import zimage

FAST = ["--emulator-task-duration", "0.05"]


def _refused(tmp_path: Path, name: str, data: bytes | None) -> str:
    """Run ``zimage batch`` on a file holding *data*; check nothing ran; return stderr.

    With *data* None the file is not written (it exists already).
    """
    prompts = tmp_path / name
    if data is not None:
        prompts.write_bytes(data)
    out = tmp_path / "out"
    done = zimage("batch", prompts, "-o", out, *FAST)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert "emulator at" not in done.stderr  # refused before any session was opened
    assert not out.exists()
    assert name in done.stderr
    return done.stderr


def _prompts(text: str, name: str = "prompts.txt") -> list[tuple[int, str]]:
    return [(item.line, item.request.prompt) for item in parse_batch_text(text, name=name)]


# --- a JSON array or a CSV file is not a prompt file (#8) -------------------------------

JSON_ARRAY = b'[\n  {"prompt": "a cat", "size": "16:9"},\n  {"prompt": "a dog"}\n]\n'
CSV = b"prompt,size,seed\na cat,16:9,7\n"


@pytest.mark.parametrize(
    ("name", "data", "where"),
    [
        pytest.param("prompts.json", JSON_ARRAY, "prompts.json:", id="json-name"),
        pytest.param("PROMPTS.JSON", b'{"prompt": "a cat"}\n', "PROMPTS.JSON:", id="json-upper"),
        pytest.param("prompts.csv", CSV, "prompts.csv:", id="csv-name"),
        pytest.param("array.txt", JSON_ARRAY, "array.txt line 1:", id="array-in-text"),
        pytest.param("array.txt", b"# mine\n\n[\n", "array.txt line 3:", id="array-after-comment"),
        pytest.param("table.txt", CSV, "table.txt line 1:", id="csv-header-in-text"),
        pytest.param(
            "mixed.txt",
            b'a cat\n{"prompt": "a dog", "size": "16:9"}\n',
            "mixed.txt line 2:",
            id="object-line-in-text",
        ),
    ],
)
def test_a_json_array_or_csv_file_is_refused_before_anything_is_sent(
    tmp_path: Path, name: str, data: bytes, where: str
) -> None:
    """The error names the file (and line) and the two formats that are read."""
    said = _refused(tmp_path, name, data)
    assert where in said
    assert "one prompt per line" in said
    assert ".jsonl" in said


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param('[{"prompt": "a cat"}]\n', 1, id="one-line-array"),
        pytest.param("\n# list\n[\n", 3, id="array-after-blank-and-comment"),
        pytest.param("prompt,size,seed\n", 1, id="csv-header"),
        pytest.param('"Prompt";"Size"\n', 1, id="csv-header-quoted-semicolons"),
        pytest.param("prompt\tseed\n", 1, id="tsv-header"),
        pytest.param('a cat\n{"prompt": "a dog"}\n', 2, id="object-line"),
        pytest.param("a cat\n  {'prompt': 'a dog'},\n", 2, id="object-like-line"),
        pytest.param("a cat\n{}\n", 2, id="empty-object"),
        pytest.param('a cat\n{prompt: "a dog", seed: 7}\n', 2, id="unquoted-keys-line"),
    ],
)
def test_text_that_is_not_prompts_is_refused_by_line(text: str, line: int) -> None:
    """parse_batch_text refuses it, naming the line, whatever the file's name."""
    with pytest.raises(BatchFileError, match=rf"^p\.txt line {line}: .*one prompt per line"):
        parse_batch_text(text, name="p.txt")


@pytest.mark.parametrize("name", ["p.json", "p.csv", "p.Json", "dir.json/p.CSV"])
def test_json_and_csv_names_are_refused_by_name(name: str) -> None:
    """Whatever the text, a .json or .csv name is refused, naming the file."""
    with pytest.raises(BatchFileError, match=rf"^{name}: .*\.jsonl"):
        parse_batch_text("a cat\n", name=name)


def test_prompts_with_brackets_and_braces_inside_are_kept() -> None:
    """Only the shapes of JSON and CSV files are refused, not brackets in a prompt."""
    text = "a cat [oil painting]\n[style] a dog\n{red|blue} car\na {big} fox}\nprompt: a cow\n"
    assert _prompts(text) == [
        (1, "a cat [oil painting]"),
        (2, "[style] a dog"),
        (3, "{red|blue} car"),
        (4, "a {big} fox}"),
        (5, "prompt: a cow"),
    ]
    assert _prompts("a cat\nprompt,size\n") == [(1, "a cat"), (2, "prompt,size")]


@pytest.mark.parametrize(
    "text",
    [
        "[blurry] a cat on a sofa",
        "[style: watercolor] a harbour at dawn",
        "a cat\n{masterpiece}, best quality, {1girl}",
        "a cat\n{red|blue} car in {city}",
        "{red|blue} car\na dog",
        "{masterpiece}, best quality, {1girl}",
        "{ red | blue } car",
        "Prompt, masterpiece",
        "prompt; a cat in the rain",
    ],
)
def test_prompts_shaped_a_little_like_json_or_csv_are_kept(text: str) -> None:
    """Tags in brackets, emphasis in braces, a prompt starting with the word: all prompts."""
    assert [prompt for _, prompt in _prompts(text + "\n")] == text.split("\n")


def test_jsonl_files_are_still_read() -> None:
    """A .jsonl name, or a first item that is an object, is read as JSON lines."""
    rows = '{"prompt": "a cat"}\n{"prompt": "a dog", "seed": 7}\n'
    assert _prompts(rows, "p.jsonl") == _prompts(rows, "p.txt") == [(1, "a cat"), (2, "a dog")]


@pytest.mark.parametrize(
    "first",
    [
        '{"prompt": "a cat", "size": }',
        '{"prompt": "a cat"',
        "{'prompt': 'a cat'}",
        "{}",
        '{prompt: "a cat", size: "16:9"}',
        '{ prompt: "a cat" }',
        '{"pro\\"mpt": "a cat"}',
    ],
)
def test_a_first_item_shaped_as_an_object_makes_the_file_json_lines(first: str) -> None:
    """``{`` then a quoted key (or ``{}``): JSON lines, its error named, never a prompt."""
    with pytest.raises(BatchFileError, match=r"^p\.txt line 1: "):
        parse_batch_text(first + "\na dog\n", name="p.txt")


# --- lines end with a newline only (#9) --------------------------------------------------

BREAKS = {
    "\u2028": "U+2028",
    "\u2029": "U+2029",
    "\x85": "U+0085",
    "\x0c": "U+000C",
    "\x0b": "U+000B",
    "\r": "U+000D",
    "\x1c": "U+001C",
    "\x1d": "U+001D",
    "\x1e": "U+001E",
}


@pytest.mark.parametrize("char", list(BREAKS), ids=list(BREAKS.values()))
@pytest.mark.parametrize(
    ("template", "line"),
    [
        pytest.param("a cat{}wearing a hat\na dog\n", 1, id="in-a-prompt"),
        pytest.param("a cat\n# a note{}a dog\n", 2, id="in-a-comment"),
        pytest.param("a cat\n\n {} \na dog\n", 3, id="on-a-blank-line"),
        pytest.param('{{"prompt": "a cat"}}\n{{"prompt": "a{}dog"}}\n', 2, id="in-a-jsonl-row"),
    ],
)
def test_a_line_break_other_than_newline_is_refused_naming_the_line(
    char: str, template: str, line: int
) -> None:
    """U+2028, NEL, a form feed, a lone CR...: the line, counted by newlines, is named."""
    text = template.format(char)
    with pytest.raises(BatchFileError, match=rf"^p\.txt line {line}: .*{re.escape(BREAKS[char])}"):
        parse_batch_text(text, name="p.txt")


def test_lines_are_split_on_newline_alone_and_crlf_is_read() -> None:
    """A CR before a newline is dropped; the numbers are the file's lines, as wc -l counts."""
    assert _prompts("a cat\r\n\r\n# c\r\na dog\r\n") == [(1, "a cat"), (4, "a dog")]
    assert _prompts("a cat\na dog") == [(1, "a cat"), (2, "a dog")]
    rows = '{"prompt": "a\\u2028cat"}\r\n'  # an escape in JSON is the writer's choice
    assert _prompts(rows, "p.jsonl") == [(1, "a\u2028cat")]


def test_the_command_line_refuses_a_prompt_split_by_a_line_separator(tmp_path: Path) -> None:
    """Two lines by newlines, one holding U+2028: exit 2 naming line 1, nothing sent."""
    said = _refused(tmp_path, "split.txt", "a cat\u2028wearing a hat\na dog\n".encode())
    assert "split.txt line 1:" in said
    assert "U+2028" in said


def test_a_bad_byte_after_a_lone_cr_is_named_by_the_same_line_numbers(tmp_path: Path) -> None:
    """Line numbers of every error count newlines: not UTF-8 on line 2, a lone CR on 1."""
    assert "bad.txt line 2: not UTF-8" in _refused(tmp_path, "bad.txt", b"a\rb\nc\xff\n")
    assert "ok.txt line 1:" in _refused(tmp_path, "ok.txt", b"a\rb\nc\n")


# --- invisible characters are no prompt (#10) --------------------------------------------


def test_byte_order_marks_and_invisible_lines_are_not_prompts() -> None:
    """Files saved with a BOM and joined by cat: the comment and the blank lines stay so."""
    joined = "\ufeffa cat\n\ufeff# second part: dogs\n\ufeff\n\u200b\n \u2060\u00ad \na dog\ufeff\n"
    assert _prompts(joined) == [(1, "a cat"), (6, "a dog")]
    assert _prompts("\u200b# a note\n\u200ca\u200db\n") == [(2, "\u200ca\u200db")]


def test_a_bom_before_a_jsonl_row_is_dropped() -> None:
    """JSONL files joined by cat: the second file's BOM does not break its first row."""
    rows = '{"prompt": "a cat"}\n\ufeff{"prompt": "a dog"}\n'
    assert _prompts(rows) == [(1, "a cat"), (2, "a dog")]
    assert _prompts("\ufeff" + rows) == [(1, "a cat"), (2, "a dog")]


def test_a_file_of_invisible_lines_has_no_prompts() -> None:
    """Nothing to send: the error says so."""
    with pytest.raises(BatchFileError, match="has no prompts"):
        parse_batch_text("\ufeff\n\u200b\n\ufeff# note\n", name="p.txt")


def test_a_jsonl_prompt_of_invisible_characters_is_refused_by_line() -> None:
    """A row's prompt must hold a visible character too; the error names line and field."""
    text = '{"prompt": "a cat"}\n{"prompt": "\\u200b\\ufeff"}\n'
    with pytest.raises(BatchFileError, match=r"p\.jsonl line 2: field 'prompt'.*visible"):
        parse_batch_text(text, name="p.jsonl")


def test_the_command_line_sends_only_the_visible_prompts(tmp_path: Path) -> None:
    """`cat a.txt b.txt c.txt` of files saved with a BOM: two prompts, two tasks."""
    joined = tmp_path / "joined.txt"
    joined.write_bytes(
        b"\xef\xbb\xbfa cat\n\xef\xbb\xbf# second part: dogs\n\xef\xbb\xbf\n\xe2\x80\x8b\na dog\n"
    )
    done = zimage("batch", joined, "-o", tmp_path / "out", "--json", *FAST)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    items = sorted((r["line"], r["prompt"]) for r in records if r["event"] == "item")
    assert items == [(1, "a cat"), (5, "a dog")]


# --- a JSONL row JSON cannot read is that line's error, not a traceback (#11) ---------

HUGE_SEED = '{"prompt": "a dog", "seed": ' + "9" * 5000 + "}"
DEEP = '{"prompt": ' + "[" * 100_000 + "]" * 100_000 + "}"


@pytest.mark.parametrize(
    ("row", "phrase"),
    [
        pytest.param(HUGE_SEED, "5000 digits", id="5000-digit-seed"),
        pytest.param(DEEP, "nested too deeply", id="deeply-nested"),
    ],
)
def test_a_row_json_cannot_read_is_refused_naming_the_line(row: str, phrase: str) -> None:
    """A number of 5,000 digits, arrays nested 100,000 deep: a line error, not a crash."""
    text = '{"prompt": "a cat"}\n' + row + "\n"
    with pytest.raises(BatchFileError, match=rf"^p\.jsonl line 2: .*{phrase}"):
        parse_batch_text(text, name="p.jsonl")


@pytest.mark.parametrize("row", [HUGE_SEED, DEEP], ids=["5000-digit-seed", "deeply-nested"])
def test_the_command_line_refuses_such_a_row_with_exit_2(tmp_path: Path, row: str) -> None:
    """Exit status 2 and the line named, no traceback, nothing sent."""
    said = _refused(tmp_path, "rows.jsonl", (row + "\n").encode())
    assert "rows.jsonl line 1: " in said


# --- only a regular file of bounded size is read (#17) -----------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_pipe_is_read_as_its_writer_writes_it(tmp_path: Path) -> None:
    """A FIFO (as ``<(command)`` gives) is read to its end, as ``cat`` reads it."""
    fifo = tmp_path / "prompts.txt"
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "wb") as pipe:  # waits for the reader, as a producer would
            pipe.write(b"a cat\n# a comment\na dog\n")

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        lines = read_batch_file(fifo)
    finally:
        writer.join(30)
    assert [item.request.prompt for item in lines] == ["a cat", "a dog"]


def test_a_device_is_refused_without_being_read() -> None:
    """A character device (``/dev/null`` here; ``/dev/zero`` alike) is refused, unopened."""
    with pytest.raises(BatchFileError, match=r"^/dev/null: a device or a socket"):
        read_batch_file(Path("/dev/null"))


def test_the_command_line_refuses_a_device(tmp_path: Path) -> None:
    """``zimage batch /dev/null``: exit 2 naming it, nothing sent (bounded by 60 s)."""
    assert "/dev/null: a device or a socket" in _refused(tmp_path, "/dev/null", None)


def test_a_file_over_the_size_cap_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file larger than the cap is refused, read no further than one byte past it."""
    monkeypatch.setattr(_batchfile, "MAX_BATCH_FILE_BYTES", 64)
    prompts = tmp_path / "p.txt"
    prompts.write_bytes(b"a cat\n" * 10 + b"dog\n")  # 64 bytes: read
    assert [item.line for item in read_batch_file(prompts)] == list(range(1, 12))
    prompts.write_bytes(b"a cat\n" * 10 + b"a dog\n")  # 66 bytes: refused
    with pytest.raises(BatchFileError, match=rf"^{re.escape(str(prompts))}: larger than 64 "):
        read_batch_file(prompts)


def test_the_size_cap_is_64_mib() -> None:
    """The cap is generous: 64 MiB holds over 30,000 prompts of the longest length."""
    assert _batchfile.MAX_BATCH_FILE_BYTES == 64 * 1024 * 1024


def test_a_directory_or_a_missing_file_is_named(tmp_path: Path) -> None:
    """The errors for a folder and a missing file are kept."""
    with pytest.raises(BatchFileError, match="is a directory"):
        read_batch_file(tmp_path)
    with pytest.raises(BatchFileError, match="no such file"):
        read_batch_file(tmp_path / "missing.txt")
