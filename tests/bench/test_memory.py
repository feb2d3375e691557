"""What the memory benchmark reads from its RSS samples."""

from __future__ import annotations

import pytest

from bench.memory import MemoryResult
from bench.stats import Sample

MIB = 1024 * 1024


def test_peak_growth_and_rss_at_a_moment() -> None:
    # 100 MiB for a minute, then growing by 1 MiB a second for a minute.
    samples = [Sample(float(second), 0.0, 100 * MIB) for second in range(60)]
    samples += [Sample(float(second), 0.0, (40 + second) * MIB) for second in range(60, 120)]
    result = MemoryResult(tuple(samples), delivered=5)
    assert result.peak_mb == pytest.approx(159.0)
    assert result.second_half_growth_mb_per_minute == pytest.approx(60.0)
    assert result.rss_mb_at(30) == pytest.approx(100.0)
    assert result.rss_mb_at(90.5) == pytest.approx(130.0)
