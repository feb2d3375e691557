"""Sections and their assembly into RESULTS.md."""

from __future__ import annotations

from pathlib import Path

from bench.report import assemble, markdown_table, write_section


def test_sections_are_assembled_in_order_then_by_name(tmp_path: Path) -> None:
    results_dir, results_file = tmp_path / "results", tmp_path / "RESULTS.md"
    write_section("zeta", "## Zeta\n\nz\n\n", results_dir)
    write_section("alpha", "## Alpha", results_dir)
    write_section("budget", "## Budget", results_dir)
    assemble(["budget", "missing"], results_dir, results_file)
    text = results_file.read_text(encoding="utf-8")
    assert text.startswith("# Benchmark results")
    assert text.index("## Budget") < text.index("## Alpha") < text.index("## Zeta")
    assert text.endswith("## Zeta\n\nz\n")


def test_rewriting_one_section_keeps_the_others(tmp_path: Path) -> None:
    results_dir, results_file = tmp_path / "results", tmp_path / "RESULTS.md"
    write_section("budget", "## Budget v1", results_dir)
    write_section("throughput", "## Throughput", results_dir)
    write_section("budget", "## Budget v2", results_dir)
    text = assemble(["budget", "throughput"], results_dir, results_file).read_text("utf-8")
    assert "v1" not in text
    assert "## Budget v2" in text and "## Throughput" in text


def test_markdown_table() -> None:
    assert markdown_table(["a", "b"], [["x", "1"]]) == "| a | b |\n| --- | ---: |\n| x | 1 |"
