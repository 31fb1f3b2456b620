"""The benchmarks page's charts and tables, made from a recorded results file."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks._report import END, START, markdown_tables, read_results, write_report

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "docs" / "_static" / "bench" / "results.json"
PAGE = ROOT / "docs" / "benchmarks.md"


def test_the_tables_fit_the_page() -> None:
    """Every recorded table becomes a Markdown table without the per-round columns."""
    text = markdown_tables(read_results(RECORDED))
    assert text.count("| zimage_async |") == 4
    headers = [line for line in text.splitlines() if line.startswith("| client")]
    assert headers and not any("per batch" in h or "MB/s per run" in h for h in headers)
    assert max(len(line) for line in text.splitlines() if line.startswith("|")) < 120


def test_the_page_shows_the_tables_of_the_recorded_run() -> None:
    """The page's tables between its bench markers are those of results.json."""
    text = PAGE.read_text(encoding="utf-8")
    shown = text[text.index(START) + len(START) : text.index(END)]
    assert shown.strip() == markdown_tables(read_results(RECORDED)).strip()


def test_charts_raw_text_and_page_are_written(tmp_path: Path) -> None:
    """write_report draws both SVG charts, copies the raw output and rewrites the tables."""
    pytest.importorskip("matplotlib")
    page = tmp_path / "benchmarks.md"
    page.write_text(f"intro\n{START}\nold\n{END}\nrest\n", encoding="utf-8")
    results = read_results(RECORDED)
    written = write_report(results, tmp_path / "bench", page=page)
    assert sorted(p.name for p in written) == ["cost.svg", "polling.svg", "raw.txt"]
    polling = (tmp_path / "bench" / "polling.svg").read_text(encoding="utf-8")
    assert polling.lstrip().startswith("<?xml") and "<svg" in polling
    assert "raw, every 0.5 s" in polling  # the pollers are labelled, as text
    assert "zimage_async" in (tmp_path / "bench" / "cost.svg").read_text(encoding="utf-8")
    assert (tmp_path / "bench" / "raw.txt").read_text(encoding="utf-8") == results["raw"]
    text = page.read_text(encoding="utf-8")
    assert "old" not in text and "| raw, every 1 s |" in text and text.endswith("rest\n")


def test_the_committed_charts_are_those_of_the_recorded_run(tmp_path: Path) -> None:
    """docs/_static/bench holds the charts drawn from results.json."""
    pytest.importorskip("matplotlib")
    write_report(read_results(RECORDED), tmp_path)
    for name in ("polling.svg", "cost.svg", "raw.txt"):
        assert (tmp_path / name).read_bytes() == (RECORDED.parent / name).read_bytes(), name


def test_a_timed_interpreter_is_waited_for_without_polling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The import timer waits for the child process itself, not in sleeps of up to 50 ms.

    ``subprocess.run(..., timeout=...)`` waits by sleeping in growing steps (0.5 ms up to
    50 ms), so what it measures is rounded up to the end of a step: 164 ms and 214 ms,
    whatever the import took. No sleep may happen while one run is timed.
    """
    import time

    from benchmarks import _imports

    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"slept {seconds} s while timing a run")

    monkeypatch.setattr(time, "sleep", no_sleep)
    assert _imports._once("pass") > 0
