"""Charts and Markdown tables for docs/benchmarks.md, drawn from a saved results file.

A results file is JSON: ``{"header": "...", "raw": "...", "tables": [Table, ...]}``, where
each table has ``workload``, ``title``, ``headers``, ``rows`` and ``notes`` (the text the
run printed). :func:`write_report` turns it into:

- ``polling.svg``: polls per task against detection lag (mean, with the p95 as a bar)
  for the SDK and the fixed pollers;
- ``cost.svg``: CPU per task (overhead) and wall time (scale) of the SDK against the
  hand-written loop;
- ``raw.txt``: the run's own text output;
- the Markdown tables, written into the page between its ``% bench:start`` and
  ``% bench:end`` lines.

matplotlib (the ``bench`` dependency group) is imported only to draw the charts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["markdown_tables", "read_results", "update_page", "write_report"]

START, END = "% bench:start", "% bench:end"
#: Columns that list every round: too wide for the page, kept in raw.txt.
WIDE_COLUMNS = ("per batch", "MB/s per run", "µs per process")


def read_results(path: Path) -> dict[str, Any]:
    """Load a results file written by ``python -m benchmarks --save-results``."""
    results: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return results


def _table(results: Mapping[str, Any], workload: str) -> Mapping[str, Any] | None:
    return next((t for t in results["tables"] if t["workload"] == workload), None)


def _number(cell: str) -> float:
    match = re.search(r"-?\d+(?:\.\d+)?", cell.replace(",", ""))
    if match is None:
        raise ValueError(f"no number in table cell {cell!r}")
    return float(match.group())


def _column(table: Mapping[str, Any], header: str) -> list[float]:
    index = list(table["headers"]).index(header)
    return [_number(row[index]) for row in table["rows"]]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_tables(results: Mapping[str, Any]) -> str:
    """Every table of the run as a Markdown table with its notes, narrow enough to read."""
    out = []
    for table in results["tables"]:
        keep = [i for i, h in enumerate(table["headers"]) if h not in WIDE_COLUMNS]
        headers: Sequence[str] = [table["headers"][i] for i in keep]
        out.append(f"**{_cell(table['title'])}**\n")
        out.append("| " + " | ".join(_cell(h) for h in headers) + " |")
        out.append("|" + "|".join("---" if i == 0 else "--:" for i in range(len(headers))) + "|")
        out += ["| " + " | ".join(_cell(row[i]) for i in keep) + " |" for row in table["rows"]]
        out.append("")
        out += [f"- {_cell(note)}" for note in table["notes"]]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def update_page(page: Path, results: Mapping[str, Any]) -> None:
    """Replace the text between the page's bench markers with this run's tables."""
    text = page.read_text(encoding="utf-8")
    start, end = text.index(START) + len(START), text.index(END)
    page.write_text(f"{text[:start]}\n{markdown_tables(results)}{text[end:]}", encoding="utf-8")


def _polling_chart(results: Mapping[str, Any], dest: Path) -> Path | None:
    table = _table(results, "polling")
    if table is None:
        return None
    import matplotlib.pyplot as plt

    polls = _column(table, "polls/task (mean)")
    lag = _column(table, "lag mean s")
    lag95 = _column(table, "lag p95 s")
    figure, axes = plt.subplots(figsize=(6.4, 4.0))
    for row, x, y, high in zip(table["rows"], polls, lag, lag95, strict=True):
        axes.errorbar([x], [y], yerr=[[0.0], [high - y]], fmt="o", capsize=4)
        axes.annotate(row[0], (x, y), textcoords="offset points", xytext=(6, 6))
    axes.set_xlabel("polls per task (fewer is better)")
    axes.set_ylabel("detection lag, s (mean; bar to p95)")
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0)
    axes.set_title("Polling: requests against detection lag")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(dest, format="svg", metadata={"Date": None})
    plt.close(figure)
    return dest


def _cost_chart(results: Mapping[str, Any], dest: Path) -> Path | None:
    overhead, scale = _table(results, "overhead"), _table(results, "scale")
    panels = [
        (overhead, "CPU ms/task (median)", "client CPU per task, ms"),
        (scale, "wall s", "wall time of the scale run, s"),
    ]
    panels = [p for p in panels if p[0] is not None]
    if not panels:
        return None
    import matplotlib.pyplot as plt

    figure, axes_list = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.6))
    if len(panels) == 1:
        axes_list = [axes_list]
    for axes, (table, header, label) in zip(axes_list, panels, strict=True):
        assert table is not None
        names = [row[0] for row in table["rows"]]
        values = _column(table, header)
        bars = axes.bar(range(len(names)), values, color=["#3b6ea8", "#9a9a9a"][: len(names)])
        axes.bar_label(bars, fmt="%.3g")
        axes.set_xticks(range(len(names)), names, rotation=12)
        axes.set_title(label, fontsize=10)
        axes.set_ylim(bottom=0)
    figure.suptitle("The SDK against the hand-written loop")
    figure.tight_layout()
    figure.savefig(dest, format="svg", metadata={"Date": None})
    plt.close(figure)
    return dest


def write_report(
    results: Mapping[str, Any], out_dir: Path, *, page: Path | None = None
) -> list[Path]:
    """Draw the charts and write raw.txt into *out_dir*; update *page*'s tables if given."""
    import matplotlib

    matplotlib.use("svg")
    # Text stays text (smaller, searchable), and the same figures give the same file.
    matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "zimage-bench"})
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [
        path
        for path in (
            _polling_chart(results, out_dir / "polling.svg"),
            _cost_chart(results, out_dir / "cost.svg"),
        )
        if path is not None
    ]
    raw = out_dir / "raw.txt"
    raw.write_text(results["raw"], encoding="utf-8")
    written.append(raw)
    if page is not None:
        update_page(page, results)
    return written
