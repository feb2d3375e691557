"""Benchmark ``memory``: the processor's resident memory in front of a large backlog.

Method: a topic of ``bench.tracks`` events is produced in full, then one processor starts on it
while the sandbox holds it to ``REQUESTS_PER_MINUTE`` (the processor's limit matches), so the
processor stays backlogged the whole time: it can never catch up, and everything it may buffer
is there to be buffered. Its resident set size (RSS) is sampled every ``SAMPLE_SECONDS`` for
the scale's duration, from the process start.

Memory is bounded by design: the poll loop pauses partitions above
``delivery.max_buffered_events`` (default 10,000) and librdkafka's prefetch is capped
(``queued.max.messages.kbytes``), so the backlog stays in Kafka. *Flat* means the least-squares
growth over the second half of the samples is below ``FLAT_MB_PER_MINUTE``.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.drain import TOKEN, DrainBench, create_contacts
from bench.report import markdown_table
from bench.sampling import ProcessSampler
from bench.stack import ProcessorFleet, SandboxProcess, processor_config
from bench.stats import Sample, peak_rss, slope_per_minute
from bench.tracks import TrackSpec, emails
from bench.workload import DESTINATION
from devkit.sandbox.broker import kafka_target

TITLE = "Memory in front of a large backlog"
REQUESTS_PER_MINUTE = 6_000
SANDBOX_LATENCY_MS = 100.0
PARTITIONS = 6
USERS = 1_000
SAMPLE_SECONDS = 1.0
# Goals of issue 9.
MAX_PEAK_MB = 250.0
FLAT_MB_PER_MINUTE = 5.0
_MB = 1024 * 1024
_CREATED = 201


@dataclass(frozen=True, slots=True)
class MemoryScale:
    """Backlog size and how long memory is sampled."""

    events: int
    seconds: int


FULL = MemoryScale(events=1_000_000, seconds=120)
QUICK = MemoryScale(events=100_000, seconds=20)


@dataclass(frozen=True, slots=True)
class MemoryResult:
    """The RSS samples of the run and how many events were delivered meanwhile."""

    samples: tuple[Sample, ...]
    delivered: int

    @property
    def peak_mb(self) -> float:
        """The largest RSS sampled, in MiB."""
        return peak_rss(self.samples) / _MB

    @property
    def second_half_growth_mb_per_minute(self) -> float:
        """Least-squares RSS growth over the second half of the run, MiB per minute."""
        return slope_per_minute(self.samples[len(self.samples) // 2 :]) / _MB

    def rss_mb_at(self, seconds: float) -> float:
        """RSS of the last sample taken within ``seconds`` of the first, in MiB."""
        start = self.samples[0].at
        taken = [sample for sample in self.samples if sample.at - start <= seconds]
        return taken[-1].rss_bytes / _MB


def run(quick: bool) -> str:
    """Run the benchmark at full (or quick) scale; its Markdown section."""
    scale = QUICK if quick else FULL
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="bench-memory-") as workdir,
        kafka_target() as kafka,
        SandboxProcess(
            Path(workdir),
            requests_per_minute=REQUESTS_PER_MINUTE,
            latency_ms=SANDBOX_LATENCY_MS,
            token=TOKEN,
        ) as sandbox,
    ):
        spec = TrackSpec(scale.events, USERS)
        topic = DrainBench(Path(workdir), kafka, sandbox, spec).produce_topic(
            scale.events, PARTITIONS
        )
        asyncio.run(create_contacts(sandbox, emails(spec)))
        config = processor_config(
            kafka,
            base_url=sandbox.base_url,
            token=TOKEN,
            requests_per_minute=REQUESTS_PER_MINUTE,
            topic=topic.name,
            group_id=topic.name,
            destination=DESTINATION,
        )
        with ProcessorFleet(Path(workdir), config, 1) as fleet:
            (pid,) = fleet.pids
            with ProcessSampler([pid], SAMPLE_SECONDS) as sampler:
                _watch(fleet, scale.seconds)
                samples = sampler.samples(pid)
        delivered = sum(
            1
            for request in sandbox.recorded_requests(since=USERS)
            if request["method"] == "POST" and request["status"] == _CREATED
        )
        kafka_kind = kafka.kind
    result = MemoryResult(tuple(samples), delivered)
    return _section(scale, result, kafka_kind, time.monotonic() - started)


def _watch(fleet: ProcessorFleet, seconds: int) -> None:
    """Let the processor run for ``seconds``, failing early if it exits."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        fleet.check_running()
        time.sleep(SAMPLE_SECONDS)


def _section(
    scale: MemoryScale, result: MemoryResult, kafka_kind: str, elapsed_seconds: float
) -> str:
    parts = [
        f"## {TITLE} (`python -m bench memory{' --quick' if scale is QUICK else ''}`)",
        _setup_text(scale, result, kafka_kind, elapsed_seconds),
        _table(scale, result),
        _goals_text(result),
        _limits_text(),
    ]
    return "\n\n".join(parts) + "\n"


def _setup_text(
    scale: MemoryScale, result: MemoryResult, kafka_kind: str, elapsed_seconds: float
) -> str:
    scaled = " (scaled down from 1,000,000 in quick mode)" if scale is QUICK else ""
    return (
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPUs, Kafka "
        f"{kafka_kind}, whole benchmark {elapsed_seconds / 60:.1f} min.\n\n"
        f"Backlog: {scale.events:,} `Order Completed` tracks{scaled} of {USERS:,} users, "
        f"{PARTITIONS} partitions, all produced before the processor starts. Trengo sandbox "
        f"in its own process: {REQUESTS_PER_MINUTE:,} requests/min, {SANDBOX_LATENCY_MS:.0f} ms "
        f"per call; the processor's `trengo.requests_per_minute` matches it, other settings "
        f"at their defaults (`delivery.max_buffered_events: 10000`). RSS sampled every "
        f"{SAMPLE_SECONDS:.0f} s for {scale.seconds} s from the process start; the processor "
        f"delivered {result.delivered:,} events meanwhile, so the backlog never ran out."
    )


def _table(scale: MemoryScale, result: MemoryResult) -> str:
    marks = [5, 15, 30, *range(60, scale.seconds + 1, 30)]
    headers = [*[f"RSS at {mark} s" for mark in marks if mark <= scale.seconds], "peak RSS"]
    headers.append("growth, 2nd half")
    cells = [f"{result.rss_mb_at(mark):.0f} MiB" for mark in marks if mark <= scale.seconds]
    cells.append(f"{result.peak_mb:.0f} MiB")
    cells.append(f"{result.second_half_growth_mb_per_minute:+.1f} MiB/min")
    return markdown_table(headers, [cells])


def _goals_text(result: MemoryResult) -> str:
    peak, growth = result.peak_mb, result.second_half_growth_mb_per_minute
    return "\n".join(
        [
            "Goals (issue 9):",
            "",
            f"* peak RSS ≤ {MAX_PEAK_MB:.0f} MiB: {_verdict(peak <= MAX_PEAK_MB)} "
            f"({peak:.0f} MiB).",
            f"* flat (growth over the second half < {FLAT_MB_PER_MINUTE:.0f} MiB/min): "
            f"{_verdict(growth < FLAT_MB_PER_MINUTE)} ({growth:+.1f} MiB/min).",
        ]
    )


def _verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def _limits_text() -> str:
    return (
        "What limits these numbers: the interpreter and its libraries (the RSS at 5 s, before "
        "much is buffered), the buffer of up to `delivery.max_buffered_events` events "
        "(each a Kafka record, its parsed message and plan), librdkafka's prefetch queue, and "
        "the contact cache (bounded: `trengo.contact_cache_size`). The backlog itself stays "
        "in Kafka."
    )
