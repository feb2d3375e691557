"""Benchmark ``commits``: what the broker pays for ``kafka.commit_interval_ms``.

Method: on the embedded broker, one consumer of a 6-partition topic commits every partition's
position (with a done-offset map in the metadata, as the processor writes it) once per
interval, for ``SECONDS`` per interval; the broker's CPU time (user + system, psutil) over the
same span, minus an idle span of the same length, is the cost of the commits. The processor
commits at most once per interval and only when a partition's done offsets changed, so a
backlogged processor is this committer's worst case.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import psutil
from confluent_kafka import Consumer, TopicPartition

from bench.report import markdown_table
from devkit.sandbox.broker import EmbeddedBroker, create_topics
from processor.engine import offsetmap

TITLE = "Broker cost of the commit interval"
PARTITIONS = 6
INTERVALS_MS = (200, 1000)
SECONDS = 20.0
QUICK_SECONDS = 5.0
# A backlogged partition: 200 done offsets scattered above its position (a 256-wide window).
DONE_ABOVE = frozenset(range(3, 600, 3))


@dataclass(frozen=True, slots=True)
class CommitRun:
    """One committer run at one interval (``interval_ms`` 0: idle, nothing committed)."""

    interval_ms: int
    seconds: float
    commits: int
    broker_cpu_seconds: float

    @property
    def commits_per_second(self) -> float:
        return self.commits / self.seconds


def run(quick: bool) -> str:
    """Run the benchmark; its Markdown section."""
    seconds = QUICK_SECONDS if quick else SECONDS
    started = time.monotonic()
    with EmbeddedBroker() as broker:
        topic = f"bench-commits-{int(time.time())}"
        create_topics(broker.bootstrap_servers, [topic], PARTITIONS)
        broker_process = psutil.Process(broker.pid)
        runs = [
            _commit_for(broker.bootstrap_servers, topic, broker_process, interval_ms, seconds)
            for interval_ms in (0, *INTERVALS_MS)
        ]
    return _section(runs, quick, time.monotonic() - started)


def _commit_for(
    bootstrap_servers: str,
    topic: str,
    broker: psutil.Process,
    interval_ms: int,
    seconds: float,
) -> CommitRun:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"{topic}-{interval_ms}",
            "enable.auto.commit": False,
        }
    )
    commits = 0
    cpu_before = _cpu_seconds(broker)
    began = time.monotonic()
    try:
        while (elapsed := time.monotonic() - began) < seconds:
            if interval_ms:
                position = commits * 10
                metadata = offsetmap.encode(position, {position + d for d in DONE_ABOVE})
                offsets = [
                    TopicPartition(topic, partition, position, metadata=metadata)
                    for partition in range(PARTITIONS)
                ]
                consumer.commit(offsets=offsets, asynchronous=False)
                commits += 1
            pause = (commits * interval_ms / 1000 if interval_ms else seconds) - elapsed
            time.sleep(max(min(pause, seconds - elapsed), 0.0))
    finally:
        consumer.close()
    return CommitRun(
        interval_ms, time.monotonic() - began, commits, _cpu_seconds(broker) - cpu_before
    )


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _section(runs: Sequence[CommitRun], quick: bool, elapsed_seconds: float) -> str:
    idle, *committing = runs
    idle_share = idle.broker_cpu_seconds / idle.seconds
    rows = []
    for commit_run in committing:
        share = commit_run.broker_cpu_seconds / commit_run.seconds
        per_commit = (share - idle_share) / commit_run.commits_per_second
        rows.append(
            [
                f"{commit_run.interval_ms} ms",
                f"{commit_run.commits_per_second:.2f}",
                f"{share * 100:.2f} %",
                f"{(share - idle_share) * 100:+.2f} %",
                f"{per_commit * 1e6:,.0f} µs",
            ]
        )
    headers = [
        "commit_interval_ms",
        "commits/s (6 partitions each)",
        "broker CPU",
        "over idle",
        "broker CPU per commit",
    ]
    metadata_bytes = len(offsetmap.encode(0, DONE_ABOVE))
    return (
        f"## {TITLE} (`python -m bench commits{' --quick' if quick else ''}`)\n\n"
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPUs, Kafka embedded "
        f"(Tansu), whole benchmark {elapsed_seconds / 60:.1f} min.\n\n"
        f"One consumer commits all {PARTITIONS} partitions of a topic once per interval for "
        f"{committing[0].seconds:.0f} s, each with {len(DONE_ABOVE)} done offsets above the "
        f"position in the metadata ({metadata_bytes} bytes); broker CPU is one core = 100 %, "
        f"idle: {idle_share * 100:.2f} %.\n\n"
        + markdown_table(headers, rows)
        + "\n\nA processor commits at most this often, and only when a partition's done "
        "offsets changed: an idle processor commits nothing. The kernel counts CPU time in "
        "10 ms ticks, so the per-commit column is coarse; either interval costs the broker "
        "well under 1 % of a core.\n"
    )
