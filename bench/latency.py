"""Benchmark ``latency``: Kafka timestamp to Trengo's answer, under a load below the rate limit.

Method: the sandbox answers every call after ``SANDBOX_LATENCY_MS`` and allows
``REQUESTS_PER_MINUTE`` (the processor's ``trengo.requests_per_minute`` matches it). One
``bench.tracks`` event per user is delivered first (warm-up: the processor finds each contact
once, then knows its id), then events are produced one by one at ``EVENTS_PER_SECOND``, half
the limit, while the processor runs. Each event becomes one ticket whose subject names the
event, so the latency of every event is exact: the moment the sandbox answered the event's
``POST /tickets`` (when it recorded the request's arrival, plus its fixed latency) minus the
event's Kafka timestamp (CreateTime, stamped by the producer as it sent the record).

Why not the processor's ``event_delivery_latency_seconds`` histogram: its buckets (0.1, 0.25 s)
straddle the goal (150 ms here), so a p99 read from it would be an interpolation. The answer
time read from the sandbox leaves out only the answer's way back over loopback and the
processor reading it (well under a millisecond).
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from bench.drain import TOKEN, create_contacts
from bench.report import markdown_table
from bench.stack import (
    ProcessorFleet,
    SandboxProcess,
    StackError,
    new_topic,
    processor_config,
    wait_for_commits,
)
from bench.stats import percentile
from bench.tracks import TrackSpec, emails, sequence_of, track
from bench.workload import DESTINATION
from devkit.sandbox.broker import KafkaTarget, kafka_target

TITLE = "Event latency below the rate limit"
SANDBOX_LATENCY_MS = 50.0
REQUESTS_PER_MINUTE = 6_000
EVENTS_PER_SECOND = 50
USERS = 200
PARTITIONS = 6
# Tansu does not answer a waiting fetch when records arrive (kafka-test-broker.md, Q3), so an
# idle consumer waits up to fetch.wait.max.ms; Kafka answers at once. Short, to measure the
# processor rather than that quirk.
EMBEDDED_FETCH_WAIT_MS = 10
# Goal of issue 9: p99 ≤ this + the sandbox's latency.
MAX_P99_OVERHEAD_MS = 100.0
PERCENTILES = (0.5, 0.9, 0.99)
# Warm-up events are numbered from here, after every measured one.
_WARM_UP_FIRST = 10_000_000
_COMMIT_TIMEOUT_SECONDS = 120.0
_MS = 1000.0


@dataclass(frozen=True, slots=True)
class LatencyScale:
    """How long events are offered."""

    seconds: int


FULL = LatencyScale(seconds=60)
QUICK = LatencyScale(seconds=15)


@dataclass(frozen=True, slots=True)
class LatencyResult:
    """Per-event latencies (ms) of the measured events, and how many events were produced."""

    latencies_ms: tuple[float, ...]
    produced: int
    offered_per_second: float

    def at(self, share: float) -> float:
        """The ``share`` percentile, in ms."""
        return percentile(self.latencies_ms, share)


def latencies_ms(
    kafka_timestamps_ms: Mapping[int, int],
    answers: Sequence[Mapping[str, Any]],
    sandbox_latency_ms: float,
) -> list[float]:
    """Latency of every event that has a Kafka timestamp and a ticket, oldest first.

    ``answers`` are the sandbox's recorded requests; the first ticket of an event counts.
    """
    answered_at: dict[int, float] = {}
    for request in answers:
        if request["method"] != "POST" or not request["route"].endswith("/tickets"):
            continue
        body = request.get("json") or {}
        sequence = sequence_of(str(body.get("subject", "")))
        if sequence is not None and sequence in kafka_timestamps_ms:
            answered_at.setdefault(sequence, request["at"] * _MS + sandbox_latency_ms)
    return [
        answered_at[sequence] - kafka_timestamps_ms[sequence] for sequence in sorted(answered_at)
    ]


def run(quick: bool) -> str:
    """Run the benchmark at full (or quick) scale; its Markdown section."""
    scale = QUICK if quick else FULL
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="bench-latency-") as workdir,
        kafka_target() as kafka,
        SandboxProcess(
            Path(workdir),
            requests_per_minute=REQUESTS_PER_MINUTE,
            latency_ms=SANDBOX_LATENCY_MS,
            token=TOKEN,
        ) as sandbox,
    ):
        result = _measure(kafka, sandbox, Path(workdir), scale)
        kafka_kind = kafka.kind
    return _section(scale, result, kafka_kind, time.monotonic() - started)


def _measure(
    kafka: KafkaTarget, sandbox: SandboxProcess, workdir: Path, scale: LatencyScale
) -> LatencyResult:
    asyncio.run(create_contacts(sandbox, emails(TrackSpec(0, USERS))))
    topic = new_topic(kafka, "bench-latency", PARTITIONS)
    config = _config(kafka, sandbox, topic)
    producer = _TimedProducer(kafka, topic)
    with ProcessorFleet(workdir, config, 1) as fleet:
        # The warm-up also connects the producer, whose first records would wait for it.
        for user in range(USERS):
            producer.produce(_WARM_UP_FIRST + user, user)
        producer.flush(USERS)
        _wait(kafka, topic, producer.end_offsets, fleet)
        count = _produce_paced(producer, scale.seconds)
        producer.flush(USERS + count)
        _wait(kafka, topic, producer.end_offsets, fleet)
        fleet.stop()
    timestamps = {seq: ms for seq, ms in producer.timestamps_ms.items() if seq < _WARM_UP_FIRST}
    answers = sandbox.recorded_requests(since=USERS)
    measured = latencies_ms(timestamps, answers, SANDBOX_LATENCY_MS)
    if len(measured) != count:
        raise StackError(f"{count - len(measured)} events have no ticket")
    return LatencyResult(tuple(measured), count, count / scale.seconds)


def _config(kafka: KafkaTarget, sandbox: SandboxProcess, topic: str) -> dict[str, Any]:
    config = processor_config(
        kafka,
        base_url=sandbox.base_url,
        token=TOKEN,
        requests_per_minute=REQUESTS_PER_MINUTE,
        topic=topic,
        group_id=topic,
        destination=DESTINATION,
    )
    if kafka.kind == "embedded":
        config["kafka"]["settings"]["fetch.wait.max.ms"] = EMBEDDED_FETCH_WAIT_MS
    return config


def _wait(
    kafka: KafkaTarget, topic: str, end_offsets: Mapping[int, int], fleet: ProcessorFleet
) -> None:
    wait_for_commits(
        kafka,
        group_id=topic,
        topic=topic,
        end_offsets=end_offsets,
        fleet=fleet,
        timeout_seconds=_COMMIT_TIMEOUT_SECONDS,
    )


class _TimedProducer:
    """Produces tracks and keeps each one's Kafka timestamp (ms) and each partition's end."""

    def __init__(self, kafka: KafkaTarget, topic: str) -> None:
        self._producer = Producer(
            {
                "bootstrap.servers": kafka.bootstrap_servers,
                "enable.idempotence": True,
                "linger.ms": 0,
            }
        )
        self._topic = topic
        self.timestamps_ms: dict[int, int] = {}
        self.end_offsets: dict[int, int] = {}

    def produce(self, sequence: int, user: int) -> None:
        """Send event number ``sequence`` of user number ``user``."""

        def delivered(error: Any, message: Any) -> None:
            if error is None:
                self.timestamps_ms[sequence] = message.timestamp()[1]
                partition = message.partition()
                self.end_offsets[partition] = max(
                    self.end_offsets.get(partition, 0), message.offset() + 1
                )

        value = json.dumps(track(sequence, user)).encode()
        key = f"user-{user:06d}".encode()
        self._producer.produce(self._topic, key=key, value=value, on_delivery=delivered)
        self._producer.poll(0)

    def flush(self, expected: int) -> None:
        """Wait until everything sent is acknowledged; StackError unless ``expected`` were."""
        if self._producer.flush(30) or len(self.timestamps_ms) != expected:
            raise StackError(f"producing failed: {expected - len(self.timestamps_ms)} missing")


def _produce_paced(producer: _TimedProducer, seconds: int) -> int:
    """Produce ``EVENTS_PER_SECOND`` events for ``seconds``, evenly spaced, numbered from 0;
    how many."""
    count = seconds * EVENTS_PER_SECOND
    started = time.monotonic()
    for sequence in range(count):
        time.sleep(max(0.0, started + sequence / EVENTS_PER_SECOND - time.monotonic()))
        producer.produce(sequence, sequence % USERS)
    return count


def _section(
    scale: LatencyScale, result: LatencyResult, kafka_kind: str, elapsed_seconds: float
) -> str:
    parts = [
        f"## {TITLE} (`python -m bench latency{' --quick' if scale is QUICK else ''}`)",
        _setup_text(scale, result, kafka_kind, elapsed_seconds),
        _table(result),
        _goal_text(result),
        _limits_text(kafka_kind),
    ]
    return "\n\n".join(parts) + "\n"


def _setup_text(
    scale: LatencyScale, result: LatencyResult, kafka_kind: str, elapsed_seconds: float
) -> str:
    fetch_wait = (
        f", `fetch.wait.max.ms: {EMBEDDED_FETCH_WAIT_MS}` (see below)"
        if kafka_kind == "embedded"
        else ""
    )
    return (
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPUs, Kafka "
        f"{kafka_kind}, whole benchmark {elapsed_seconds / 60:.1f} min.\n\n"
        f"Trengo sandbox in its own process: {SANDBOX_LATENCY_MS:.0f} ms per call, "
        f"{REQUESTS_PER_MINUTE:,} requests/min. Processor: `trengo.requests_per_minute: "
        f"{REQUESTS_PER_MINUTE}`{fetch_wait}, other settings at their defaults. "
        f"{result.produced:,} `Order Completed` tracks ({USERS} users whose contacts the "
        f"processor already resolved in a warm-up) produced one at a time over "
        f"{scale.seconds} s: {result.offered_per_second:.0f} events/s, each one call, so "
        f"{result.offered_per_second / (REQUESTS_PER_MINUTE / 60):.0%} of the rate limit."
    )


def _table(result: LatencyResult) -> str:
    shares = [*PERCENTILES, 1.0]
    headers = ["", *[_share_name(share) for share in shares]]
    measured = [result.at(share) for share in shares]
    rows = [
        ["Kafka timestamp → Trengo answer", *[f"{value:.1f} ms" for value in measured]],
        [
            f"of which not the sandbox's {SANDBOX_LATENCY_MS:.0f} ms",
            *[f"{value - SANDBOX_LATENCY_MS:.1f} ms" for value in measured],
        ],
    ]
    return markdown_table(headers, rows)


def _share_name(share: float) -> str:
    return "max" if share == 1.0 else f"p{share * 100:g}"


def _goal_text(result: LatencyResult) -> str:
    limit = MAX_P99_OVERHEAD_MS + SANDBOX_LATENCY_MS
    p99 = result.at(0.99)
    verdict = "met" if p99 <= limit else f"**missed** by {p99 - limit:.1f} ms"
    return (
        f"Goal (issue 9): p99 ≤ {MAX_P99_OVERHEAD_MS:.0f} ms + the sandbox's latency = "
        f"{limit:.0f} ms: {verdict} (p99 {p99:.1f} ms over {len(result.latencies_ms):,} "
        "events)."
    )


def _limits_text(kafka_kind: str) -> str:
    broker = (
        f"Tansu, the embedded broker, does not answer a waiting fetch when records arrive "
        f"(kafka-test-broker.md, Q3), so an idle consumer waits up to `fetch.wait.max.ms` "
        f"(librdkafka's default is 500 ms, the project's test default 50); the benchmark sets "
        f"{EMBEDDED_FETCH_WAIT_MS} ms, which still adds up to {EMBEDDED_FETCH_WAIT_MS} ms to an "
        "event. Kafka answers a waiting fetch as soon as a record arrives, so this part is "
        "the test broker's."
        if kafka_kind == "embedded"
        else "The consumer waits for records with librdkafka's settings as configured."
    )
    return (
        "What limits these numbers: the sandbox's fixed latency; the consumer's wait for "
        f"records ({broker}); the rate limiter, which spreads calls evenly over the rate "
        f"window (at {REQUESTS_PER_MINUTE:,}/min a call may wait up to "
        f"{60_000 / REQUESTS_PER_MINUTE:.0f} ms behind the previous one); and the event "
        "loop's turn, shared with the poll thread's hand-over and the other events in flight. "
        "The offsets are committed on the commit interval after the answer, which this "
        "latency does not include."
    )
