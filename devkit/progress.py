"""Progress read back from the metrics registry: the demo's live line and its summary."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Gauge

from processor import metrics


@dataclass(frozen=True, slots=True)
class Progress:
    """Totals since the process started."""

    delivered: int
    dead_lettered: int
    skipped: int
    trengo_calls: int
    rate_limited: int
    in_flight: int
    dead_letters_by_stage: dict[str, int]
    skipped_by_reason: dict[str, int]

    @property
    def finished(self) -> int:
        """Events that reached an outcome."""
        return self.delivered + self.dead_lettered + self.skipped

    @property
    def calls_per_event(self) -> float:
        """Trengo API calls per finished event."""
        return self.trengo_calls / self.finished if self.finished else 0.0

    def line(self) -> str:
        """One status line for a terminal."""
        return (
            f"delivered {self.delivered} · dead-lettered {self.dead_lettered} · "
            f"skipped {self.skipped} · Trengo calls {self.trengo_calls} · "
            f"in flight {self.in_flight}"
        )


def read_progress() -> Progress:
    """Sum the counters of ``processor.metrics`` over their labels."""
    outcomes = _sum_by_label(metrics.EVENTS, "outcome")
    statuses = _sum_by_label(metrics.TRENGO_REQUESTS, "status")
    return Progress(
        delivered=outcomes.get("delivered", 0),
        dead_lettered=outcomes.get("dead_lettered", 0),
        skipped=outcomes.get("skipped", 0),
        trengo_calls=sum(statuses.values()),
        rate_limited=statuses.get("429", 0),
        in_flight=int(_gauge_value(metrics.INFLIGHT_EVENTS)),
        dead_letters_by_stage=_sum_by_label(metrics.DEAD_LETTERS, "stage"),
        skipped_by_reason=_sum_by_label(metrics.SKIPPED, "reason"),
    )


def _sum_by_label(counter: Counter, label: str) -> dict[str, int]:
    totals: dict[str, int] = {}
    for family in counter.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                value = sample.labels[label]
                totals[value] = totals.get(value, 0) + int(sample.value)
    return totals


def _gauge_value(gauge: Gauge) -> float:
    for family in gauge.collect():
        for sample in family.samples:
            return float(sample.value)
    return 0.0
