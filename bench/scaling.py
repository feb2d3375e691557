"""Benchmark ``scaling``: the processor's cost per event as the topic and the partitions grow.

Method (``bench.drain``): the processor alone drains topics of growing size at a fixed partition
count, and topics of a fixed size over growing partition counts, each from a fresh consumer
group, with the sandbox unlimited and without latency (as in ``throughput``). The cost per
event is the processor's CPU time per event between its first and last API call; it should
stay flat: nothing the engine keeps may grow with the backlog, the offsets or the partitions.
*Flat* means every point is within ``FLAT_SPREAD`` of the smallest.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.drain import TOKEN, Drain, DrainBench, Topic
from bench.report import markdown_table
from bench.stack import SandboxProcess
from bench.tracks import TrackSpec
from devkit.sandbox.broker import kafka_target

TITLE = "Cost per event as the topic and the partitions grow"
USERS = 1_000
# Goal of issue 9: flat; the largest cost per event may exceed the smallest by this much.
FLAT_SPREAD = 0.2


@dataclass(frozen=True, slots=True)
class ScalingScale:
    """Topic sizes (at ``base_partitions``) and partition counts (at ``base_events``)."""

    sizes: tuple[int, ...]
    partitions: tuple[int, ...]
    base_events: int
    base_partitions: int = 6

    def points(self) -> list[tuple[int, int]]:
        """Every (events, partitions) to run, each once, by events then partitions."""
        by_size = [(events, self.base_partitions) for events in self.sizes]
        by_partitions = [(self.base_events, partitions) for partitions in self.partitions]
        return sorted(set(by_size + by_partitions))


# The partition series on a smaller topic: three 100,000-event drains would add a minute to
# `make bench` and show the same.
FULL = ScalingScale(sizes=(10_000, 100_000, 1_000_000), partitions=(1, 6, 24), base_events=30_000)
QUICK = ScalingScale(sizes=(5_000, 10_000), partitions=(1, 6, 24), base_events=10_000)


def spread(drains: Sequence[Drain]) -> float:
    """How much the largest CPU cost per event exceeds the smallest (0.1: by 10 %)."""
    costs = [drain.cpu_micros_per_event for drain in drains]
    return max(costs) / min(costs) - 1


def run(quick: bool) -> str:
    """Run the benchmark at full (or quick) scale; its Markdown section."""
    scale = QUICK if quick else FULL
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="bench-scaling-") as workdir,
        kafka_target() as kafka,
        SandboxProcess(Path(workdir), requests_per_minute=0, latency_ms=0, token=TOKEN) as sandbox,
    ):
        largest = max(events for events, _ in scale.points())
        bench = DrainBench(Path(workdir), kafka, sandbox, TrackSpec(largest, USERS))
        drains = [_drain_fresh(bench, events, partitions) for events, partitions in scale.points()]
        kafka_kind = kafka.kind
    return _section(scale, drains, kafka_kind, time.monotonic() - started)


def _drain_fresh(bench: DrainBench, events: int, partitions: int) -> Drain:
    topic: Topic = bench.produce_topic(events, partitions)
    return bench.drain(topic, "trengo-processor")


def _section(
    scale: ScalingScale, drains: Sequence[Drain], kafka_kind: str, elapsed_seconds: float
) -> str:
    parts = [
        f"## {TITLE} (`python -m bench scaling{' --quick' if scale is QUICK else ''}`)",
        _setup_text(scale, kafka_kind, elapsed_seconds),
        _table(scale, drains),
        _goal_text(scale, drains),
        _limits_text(),
    ]
    return "\n\n".join(parts) + "\n"


def _setup_text(scale: ScalingScale, kafka_kind: str, elapsed_seconds: float) -> str:
    scaled = (
        " Quick mode: scaled-down sizes (the full run: 10,000, 100,000 and 1,000,000 events, "
        "partitions at 30,000)."
        if scale is QUICK
        else ""
    )
    return (
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPUs, Kafka "
        f"{kafka_kind}, whole benchmark {elapsed_seconds / 60:.1f} min.\n\n"
        f"Each row: a fresh topic of `Order Completed` tracks of {USERS:,} users, drained "
        "once by one processor (settings as in the throughput benchmark: 256 in flight, no "
        "rate limit in the processor or the sandbox, no latency)."
        f"{scaled}"
    )


def _table(scale: ScalingScale, drains: Sequence[Drain]) -> str:
    reference = _reference(scale, drains)
    headers = [
        "topic events",
        "partitions",
        "drain time",
        "events/s",
        "CPU µs/event",
        "events per CPU-second",
        "CPU/event vs reference",
    ]
    rows = [
        [
            f"{drain.events:,}",
            str(drain.partitions),
            f"{drain.seconds:.1f} s",
            f"{drain.events_per_second:,.0f}",
            f"{drain.cpu_micros_per_event:,.0f}",
            f"{drain.events_per_cpu_second:,.0f}",
            f"{drain.cpu_micros_per_event / reference.cpu_micros_per_event:.2f}",
        ]
        for drain in drains
    ]
    return (
        markdown_table(headers, rows)
        + f"\n\nReference: {reference.events:,} events, {reference.partitions} partitions."
    )


def _reference(scale: ScalingScale, drains: Sequence[Drain]) -> Drain:
    return next(
        drain
        for drain in drains
        if (drain.events, drain.partitions) == (scale.base_events, scale.base_partitions)
    )


def _goal_text(scale: ScalingScale, drains: Sequence[Drain]) -> str:
    by_size = [drain for drain in drains if drain.partitions == scale.base_partitions]
    by_partitions = [drain for drain in drains if drain.events == scale.base_events]
    lines = ["Goal (issue 9): the cost per event stays flat.", ""]
    for name, series in (("as the topic grows", by_size), ("as partitions grow", by_partitions)):
        change = spread(series)
        verdict = "met" if change <= FLAT_SPREAD else "**missed**"
        lines.append(
            f"* {name}: {verdict} (largest CPU/event {change:+.0%} over the smallest; "
            f"flat: within {FLAT_SPREAD:.0%})."
        )
    return "\n".join(lines)


def _limits_text() -> str:
    return (
        "What limits these numbers: the same as the throughput benchmark's (one core, mostly "
        "the HTTP stack); a single run per row, so a row moves with the machine's neighbours "
        "by several percent. The start of a drain is slower than the rest (connections open, "
        "each user's contact is searched once), which weighs more in small topics."
    )
