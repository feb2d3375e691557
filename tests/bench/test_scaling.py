"""Which points the scaling benchmark runs, and how flat their costs are."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.drain import Drain
from bench.scaling import FULL, ScalingScale, spread


def drain(events: int, partitions: int, cpu_seconds: float) -> Drain:
    return Drain(
        flow="trengo-processor",
        events=events,
        partitions=partitions,
        seconds=10.0,
        cpu_seconds=cpu_seconds,
        sandbox_cpu_seconds=1.0,
        calls=Counter(),
        failed_calls=0,
    )


def test_points_cover_both_series_once_each() -> None:
    assert FULL.points() == [
        (10_000, 6),
        (30_000, 1),
        (30_000, 6),
        (30_000, 24),
        (100_000, 6),
        (1_000_000, 6),
    ]
    assert ScalingScale(sizes=(5,), partitions=(2,), base_events=5, base_partitions=2).points() == [
        (5, 2)
    ]


def test_spread_compares_cost_per_event_not_totals() -> None:
    drains = [drain(1_000, 6, 1.0), drain(10_000, 6, 12.0), drain(100_000, 6, 100.0)]
    assert spread(drains) == pytest.approx(0.2)
    assert drains[1].cpu_micros_per_event == pytest.approx(1200.0)
    assert drains[1].events_per_second == pytest.approx(1000.0)
    assert drains[2].events_per_cpu_second == pytest.approx(1000.0)
