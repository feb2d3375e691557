"""Percentiles, medians, CPU time in a window and memory growth from samples."""

from __future__ import annotations

import pytest

from bench.stats import Sample, cpu_at, cpu_between, median, peak_rss, percentile, slope_per_minute


def test_percentiles_interpolate_between_ranks() -> None:
    values = [40.0, 10.0, 30.0, 20.0]
    assert percentile(values, 0.0) == 10.0
    assert percentile(values, 1.0) == 40.0
    assert median(values) == 25.0
    assert percentile(values, 0.9) == pytest.approx(37.0)
    assert percentile([7.0], 0.99) == 7.0


@pytest.mark.parametrize(("values", "share"), [([], 0.5), ([1.0], 1.5), ([1.0], -0.1)])
def test_percentile_refuses_what_has_none(values: list[float], share: float) -> None:
    with pytest.raises(ValueError):
        percentile(values, share)


SAMPLES = [Sample(10.0, 1.0, 100), Sample(11.0, 1.5, 300), Sample(13.0, 3.5, 200)]


def test_cpu_is_interpolated_between_samples_and_clamped_outside() -> None:
    assert cpu_at(SAMPLES, 10.5) == pytest.approx(1.25)
    assert cpu_at(SAMPLES, 12.0) == pytest.approx(2.5)
    assert cpu_at(SAMPLES, 9.0) == 1.0
    assert cpu_at(SAMPLES, 20.0) == 3.5
    assert cpu_between(SAMPLES, 10.5, 12.0) == pytest.approx(1.25)


def test_peak_and_growth_of_resident_memory() -> None:
    assert peak_rss(SAMPLES) == 300
    growing = [Sample(float(second), 0.0, 1000 + 10 * second) for second in range(30)]
    assert slope_per_minute(growing) == pytest.approx(600.0)
    assert slope_per_minute(growing[:1]) == 0.0
    assert slope_per_minute([Sample(5.0, 0.0, 1), Sample(5.0, 0.0, 9)]) == 0.0
