"""The throughput table: per-round rows, the median row, and the ratio of the two flows."""

from __future__ import annotations

from collections import Counter

from bench.drain import Drain, Flow
from bench.throughput import Round, _goals_text, _rounds_table


def drain(flow: Flow, seconds: float, cpu_seconds: float) -> Drain:
    return Drain(
        flow=flow,
        events=10_000,
        partitions=6,
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        sandbox_cpu_seconds=seconds / 2,
        calls=Counter(),
        failed_calls=0,
    )


def test_rounds_and_their_medians() -> None:
    rounds = [
        Round(drain("trengo-processor", 5.0, 4.0), drain("baseline", 4.0, 3.5)),
        Round(drain("trengo-processor", 4.0, 3.6), drain("baseline", 5.0, 4.5)),
        Round(drain("trengo-processor", 10.0, 5.0), drain("baseline", 4.0, 3.8)),
    ]
    assert [one.ratio for one in rounds] == [0.8, 1.25, 0.4]
    lines = _rounds_table(rounds).splitlines()
    assert len(lines) == 2 + 3 + 1
    assert lines[2] == "| 1 | 2,000 | 2,500 | 0.80 | 400 | 350 | 2,500 | 0.50 |"
    # Each column's own median: 2,000 events/s, 2,500, ratio 0.80, 400 µs, 380 µs.
    assert lines[-1] == "| **median** | 2,000 | 2,500 | 0.80 | 400 | 380 | 2,500 | 0.50 |"


def test_the_goal_is_nine_tenths_of_the_baseline_and_three_thousand_events_per_cpu_second() -> None:
    met = [Round(drain("trengo-processor", 4.0, 3.2), drain("baseline", 3.8, 3.0))] * 3
    short = [Round(drain("trengo-processor", 4.0, 3.4), drain("baseline", 3.5, 3.0))] * 3
    assert "processor ≥ 0.9 x baseline: met (median ratio 0.95)" in _goals_text(met)
    assert "≥ 3,000 events/s on one core: met (3,125 events" in _goals_text(met)
    assert "processor ≥ 0.9 x baseline: **missed** (median ratio 0.87)" in _goals_text(short)
    assert "≥ 3,000 events/s on one core: **missed** by 2%" in _goals_text(short)
