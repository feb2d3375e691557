"""Small statistics of the engine-cost benchmarks: percentiles, medians, and CPU in a window.

Pure functions over numbers and samples; the sampling itself is ``bench.sampling``.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar


def percentile(values: Sequence[float], share: float) -> float:
    """The ``share`` (0..1) percentile, linearly interpolated between the closest ranks.

    The same definition as numpy's default (``linear``): the median of [1, 2, 3, 4] is 2.5.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be within 0..1, got {share}")
    ordered = sorted(values)
    position = share * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def median(values: Sequence[float]) -> float:
    """The middle value (the mean of the two middle ones for an even count)."""
    return percentile(values, 0.5)


class DrainRates:
    """Rates of a drain of ``events`` taking ``seconds`` of wall time and ``cpu_seconds`` of the
    flow's CPU time (a mixin: the drain provides the three)."""

    __slots__ = ()
    events: int
    seconds: float
    cpu_seconds: float

    @property
    def events_per_second(self) -> float:
        """Events drained per second of wall time."""
        return self.events / self.seconds

    @property
    def cpu_micros_per_event(self) -> float:
        """The flow's CPU time per event, in microseconds."""
        return self.cpu_seconds / self.events * 1e6

    @property
    def events_per_cpu_second(self) -> float:
        """Events one fully used core would drain at this cost per event."""
        return self.events / self.cpu_seconds


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of a process: Unix time, CPU seconds used so far, resident memory."""

    at: float
    cpu_seconds: float
    rss_bytes: int


def cpu_at(samples: Sequence[Sample], moment: float) -> float:
    """CPU seconds used by ``moment``, interpolated between the samples around it.

    Before the first sample it is the first sample's value, after the last the last's.
    """
    if not samples:
        raise ValueError("no samples")
    times = [sample.at for sample in samples]
    after = bisect_left(times, moment)
    if after == 0:
        return samples[0].cpu_seconds
    if after == len(samples):
        return samples[-1].cpu_seconds
    earlier, later = samples[after - 1], samples[after]
    weight = (moment - earlier.at) / (later.at - earlier.at)
    return earlier.cpu_seconds + (later.cpu_seconds - earlier.cpu_seconds) * weight


def cpu_between(samples: Sequence[Sample], start: float, end: float) -> float:
    """CPU seconds used between two moments."""
    return cpu_at(samples, end) - cpu_at(samples, start)


def peak_rss(samples: Sequence[Sample]) -> int:
    """The largest resident memory sampled, in bytes."""
    return max(sample.rss_bytes for sample in samples)


def slope_per_minute(samples: Sequence[Sample]) -> float:
    """Least-squares growth of resident memory over time, in bytes per minute."""
    if len(samples) < 2:
        return 0.0
    count = len(samples)
    mean_time = sum(sample.at for sample in samples) / count
    mean_rss = sum(sample.rss_bytes for sample in samples) / count
    spread = sum((sample.at - mean_time) ** 2 for sample in samples)
    if spread == 0:
        return 0.0
    covariance = sum((sample.at - mean_time) * (sample.rss_bytes - mean_rss) for sample in samples)
    return covariance / spread * 60.0


RatesT = TypeVar("RatesT", bound=DrainRates)


@dataclass(frozen=True, slots=True)
class Round(Generic[RatesT]):
    """The processor's and the yardstick's drain of the same topic, one after the other."""

    processor: RatesT
    yardstick: RatesT

    @property
    def ratio(self) -> float:
        """Processor events/s over the yardstick's events/s."""
        return self.processor.events_per_second / self.yardstick.events_per_second

    @property
    def cpu_ratio(self) -> float:
        """Processor CPU per event over the yardstick's."""
        return self.processor.cpu_micros_per_event / self.yardstick.cpu_micros_per_event
