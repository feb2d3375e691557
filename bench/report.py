"""Result files: one Markdown section per benchmark, assembled into ``bench/RESULTS.md``.

A benchmark's section lives in ``bench/results/<name>.md``; re-running one benchmark rewrites
its section and re-assembles ``RESULTS.md`` from every section present, so results of the
benchmarks not re-run stay as they were.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
RESULTS_FILE = BENCH_DIR / "RESULTS.md"
_HEADER = (
    "# Benchmark results\n\n"
    "Written by `make bench` (`python -m bench`); each section comes from "
    "`bench/results/<name>.md`, written by the benchmark of that name "
    "(`python -m bench <name>` re-runs one).\n"
)


def write_section(name: str, markdown: str, results_dir: Path = RESULTS_DIR) -> Path:
    """Store one benchmark's section; the path written."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}.md"
    path.write_text(markdown.rstrip() + "\n", encoding="utf-8")
    return path


def assemble(
    order: Sequence[str], results_dir: Path = RESULTS_DIR, results_file: Path = RESULTS_FILE
) -> Path:
    """Write ``results_file`` from the sections present: those named in ``order`` first, in
    that order, then any others by name."""
    present = {path.stem: path for path in sorted(results_dir.glob("*.md"))}
    names = [name for name in order if name in present]
    names += [name for name in present if name not in order]
    sections = [present[name].read_text(encoding="utf-8").rstrip() for name in names]
    results_file.write_text("\n\n".join([_HEADER.rstrip(), *sections]) + "\n", encoding="utf-8")
    return results_file


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table; every column but the first is right-aligned."""
    alignment = ["---", *["---:"] * (len(headers) - 1)]
    lines = [headers, alignment, *rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)
