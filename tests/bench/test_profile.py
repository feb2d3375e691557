"""py-spy's collapsed stacks, summarised by function and by area."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.profile import (
    ProfilerMissingError,
    flame_summary,
    parse_collapsed,
    profiled_run,
    shares_by_area,
    top_functions,
)

COLLAPSED = "\n".join(
    [
        "main (processor/cli.py);send (processor/trengo/client.py);request (httpx/_client.py) 6",
        "main (processor/cli.py);send (processor/trengo/client.py) 2",
        "main (processor/cli.py);accept (processor/engine/intake.py) 2",
        "a line that is not a stack",
    ]
)


def test_stacks_and_their_counts_are_read_outermost_first() -> None:
    stacks = parse_collapsed(COLLAPSED)
    assert sum(stacks.values()) == 10
    assert stacks[("main (processor/cli.py)", "accept (processor/engine/intake.py)")] == 2


def test_functions_rank_by_self_or_total_time() -> None:
    stacks = parse_collapsed(COLLAPSED)
    by_self = top_functions(stacks, "self", 2)
    assert [(cost.function, cost.self_share) for cost in by_self] == [
        ("request (httpx/_client.py)", 0.6),
        ("send (processor/trengo/client.py)", 0.2),
    ]
    by_total = top_functions(stacks, "total", 2)
    assert [(cost.function, cost.total_share) for cost in by_total] == [
        ("main (processor/cli.py)", 1.0),
        ("send (processor/trengo/client.py)", 0.8),
    ]
    assert top_functions({}, "self", 3) == []


def test_recursion_counts_once_in_total_time() -> None:
    stacks = parse_collapsed("f (a.py);f (a.py);g (b.py) 4\ng (b.py) 4")
    assert {cost.function: cost.total_share for cost in top_functions(stacks, "total", 2)} == {
        "f (a.py)": 0.5,
        "g (b.py)": 1.0,
    }


def test_self_time_goes_to_the_first_area_whose_marker_the_frame_has() -> None:
    areas = [("httpx/", "HTTP"), ("processor/", "processor")]
    shares = dict(shares_by_area(parse_collapsed(COLLAPSED), areas))
    assert shares == pytest.approx({"HTTP": 0.6, "processor": 0.4})
    assert dict(shares_by_area(parse_collapsed("x (y.py) 1"), areas)) == {"other": 1.0}


def test_the_summary_has_the_three_tables() -> None:
    summary = flame_summary(COLLAPSED)
    assert "Self time by area (10 samples)" in summary
    assert "| HTTP: httpx | 60.0% |" in summary
    assert "| `send (processor/trengo/client.py)` | 80.0% | 20.0% |" in summary
    assert summary.count("| --- |") == 3
    assert flame_summary("") == "(no samples)"


def test_a_profiled_run_gives_its_header_and_summary_or_why_there_is_none(tmp_path: Path) -> None:
    output = tmp_path / "run.pyspy"

    def missing(_output: Path) -> float:
        raise ProfilerMissingError("py-spy is not installed")

    def wrote_nothing(_output: Path) -> float:
        return 10.0

    def recorded(path: Path) -> float:
        path.write_text("main (a.py);work (b.py) 3\n", encoding="utf-8")
        return 10.0

    def header(rate: float) -> str:
        return f"at {rate:.0f}/s"

    assert profiled_run(output, missing, header) == "Profile: not taken (py-spy is not installed)."
    assert profiled_run(output, wrote_nothing, header).startswith("Profile: py-spy wrote nothing")
    profile = profiled_run(output, recorded, header)
    assert profile.startswith("at 10/s\n\nSelf time by area (3 samples):")
    assert "`work (b.py)` | 100.0% | 100.0%" in profile
