"""``trengo-processor dlq replay``: send dead letters back to the source topic.

The replay reads the dead-letter topic with its own consumer group (``<group_id>.dlq-replay``)
from where the previous replay stopped, up to the end of the topic: it stops once every
assigned partition reported its end (records dead-lettered meanwhile are read too). Each
replayed record keeps its key, value and original headers; the error headers are removed and
``x-replayed-at`` is added. A record that already carries ``x-replayed-at`` failed again after
a replay, so it is left alone unless ``--include-replayed`` (the loop guard). Records a stage
filter skips are passed over for good, like replayed ones. A dead-letter topic that does not
exist (nothing was ever dead-lettered) ends the replay at once.

The commit, in order:

1. Each re-published record gets a delivery report from the producer: acknowledged or failed.
2. Every ``COMMIT_EVERY`` records (and at the end) the producer is flushed, so every report
   is in.
3. Per dead-letter partition the replay commits up to its first record that was not
   acknowledged (skipped records count as done): a failed record is read again by the next
   replay, and an interrupted replay repeats records rather than losing them.
4. A failed re-publish is counted in the summary and ends the replay after that round; the
   command then exits non-zero.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from processor.config import KafkaConfig
from processor.engine.dlq import (
    DLQ_HEADERS,
    HEADER_ERROR_STAGE,
    HEADER_REPLAYED_AT,
    producer_config,
)
from processor.logging import kafka_logger

# Joining the replay's group takes a few seconds; without partitions by then, give up.
ASSIGNMENT_TIMEOUT_SECONDS = 60.0
METADATA_TIMEOUT_SECONDS = 10.0
PROGRESS_SECONDS = 1.0
COMMIT_EVERY = 500


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    """What to replay."""

    dry_run: bool = False
    limit: int | None = None
    stage: str | None = None
    include_replayed: bool = False


@dataclass(slots=True)
class ReplaySummary:
    """Counts for the final line."""

    read: int = 0
    replayed: int = 0
    failed: int = 0
    skipped_stage: int = 0
    skipped_replayed: int = 0
    dry_run: bool = False
    by_stage: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        """One human line."""
        verb = "would replay" if self.dry_run else "replayed"
        stages = ", ".join(f"{stage} {count}" for stage, count in sorted(self.by_stage.items()))
        failed = f"; FAILED {self.failed} (not committed: replay again)" if self.failed else ""
        return (
            f"read {self.read} dead letters; {verb} {self.replayed}"
            f"{f' ({stages})' if stages else ''}{failed}; skipped {self.skipped_stage} by stage "
            f"filter, {self.skipped_replayed} already replayed once (loop guard)"
        )


def replay_dead_letters(
    kafka: KafkaConfig,
    options: ReplayOptions,
    progress: TextIO,
    assignment_timeout_seconds: float = ASSIGNMENT_TIMEOUT_SECONDS,
) -> ReplaySummary:
    """Replay until the end of the dead-letter topic (or ``options.limit``)."""
    consumer = Consumer(replay_consumer_config(kafka))
    try:
        if _is_missing(consumer, kafka.dead_letter_topic):
            print(
                f"dead-letter topic {kafka.dead_letter_topic} does not exist: nothing to replay",
                file=progress,
            )
            return ReplaySummary(dry_run=options.dry_run)
        replayer = _Replayer(
            Producer(producer_config(kafka, "kafka.replay_producer")),
            kafka.topic,
            options,
            progress,
        )
        consumer.subscribe([kafka.dead_letter_topic])
        replayer.run(consumer, assignment_timeout_seconds)
    finally:
        consumer.close()
    return replayer.summary


def _is_missing(consumer: Consumer, topic: str) -> bool:
    """True when the cluster's metadata lacks the topic; False when unsure (no metadata).

    All topics are listed: asking for one by name may create it on brokers that auto-create.
    """
    try:
        metadata = consumer.list_topics(timeout=METADATA_TIMEOUT_SECONDS)
    except KafkaException:
        return False  # the subscription below waits for the cluster, then gives up
    return topic not in metadata.topics


class _Replayer:
    def __init__(
        self, producer: Producer, source_topic: str, options: ReplayOptions, progress: TextIO
    ) -> None:
        self._producer = producer
        self._source_topic = source_topic
        self._options = options
        self._progress = progress
        self.summary = ReplaySummary(dry_run=options.dry_run)
        # Per dead-letter partition, in read order: [offset, done] (None: no report yet).
        self._outcomes: dict[tuple[str, int], list[list[Any]]] = {}
        self._chosen = 0  # records replayed or being replayed, for --limit

    def run(self, consumer: Consumer, assignment_timeout_seconds: float) -> None:
        assignment_deadline = time.monotonic() + assignment_timeout_seconds
        at_end: set[int] = set()
        last_progress = time.monotonic()
        uncommitted = 0
        while (
            not self._limit_reached()
            and not self.summary.failed
            and not self._done(consumer, at_end, assignment_deadline)
        ):
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                self._note_error(error, message.partition(), at_end)
                continue
            at_end.discard(message.partition())
            self._replay_one(message)
            uncommitted += 1
            if uncommitted >= COMMIT_EVERY:
                self._commit(consumer)
                uncommitted = 0
            if time.monotonic() - last_progress >= PROGRESS_SECONDS:
                last_progress = time.monotonic()
                print(f"... {self.summary.describe()}", file=self._progress, flush=True)
        if uncommitted:
            self._commit(consumer)

    def _done(self, consumer: Consumer, at_end: set[int], assignment_deadline: float) -> bool:
        """True once every assigned partition is at its end (or none came in time)."""
        assigned = {tp.partition for tp in consumer.assignment()}
        if not assigned and time.monotonic() > assignment_deadline:
            print("no dead-letter partitions assigned; giving up", file=self._progress)
            return True
        return bool(assigned) and assigned <= at_end

    def _commit(self, consumer: Consumer) -> None:
        if self._options.dry_run:
            return
        self._producer.flush(30)
        positions = []
        for (topic, partition), outcomes in self._outcomes.items():
            acknowledged = 0
            while acknowledged < len(outcomes) and outcomes[acknowledged][1] is True:
                acknowledged += 1
            if acknowledged:
                offset = outcomes[acknowledged - 1][0] + 1
                positions.append(TopicPartition(topic, partition, offset))
            del outcomes[:acknowledged]
        if positions:
            consumer.commit(offsets=positions, asynchronous=False)

    def _replay_one(self, message: Any) -> None:
        outcome = [message.offset(), True]
        self._outcomes.setdefault((message.topic(), message.partition()), []).append(outcome)
        summary = self.summary
        summary.read += 1
        headers: list[tuple[str, bytes | None]] = list(message.headers() or ())
        stage = _header(headers, HEADER_ERROR_STAGE) or "unknown"
        if self._options.stage is not None and stage != self._options.stage:
            summary.skipped_stage += 1
            return
        if _header(headers, HEADER_REPLAYED_AT) is not None and not self._options.include_replayed:
            summary.skipped_replayed += 1
            return
        self._chosen += 1
        if self._options.dry_run:
            self._count_replayed(stage)
            return
        outcome[1] = None
        dropped = {*DLQ_HEADERS, HEADER_REPLAYED_AT}
        kept = [(name, value) for name, value in headers if name not in dropped]
        replayed_at = datetime.now(UTC).isoformat().encode()

        def on_delivery(error: object, _message: Any) -> None:
            outcome[1] = error is None
            if error is None:
                self._count_replayed(stage)
            else:
                self.summary.failed += 1
                print(f"re-publish of offset {outcome[0]} failed: {error}", file=self._progress)

        try:
            self._producer.produce(
                self._source_topic,
                key=message.key(),
                value=message.value(),
                headers=[*kept, (HEADER_REPLAYED_AT, replayed_at)],
                on_delivery=on_delivery,
            )
        except (BufferError, KafkaException) as error:
            on_delivery(error, None)
        self._producer.poll(0)

    def _count_replayed(self, stage: str) -> None:
        self.summary.replayed += 1
        self.summary.by_stage[stage] = self.summary.by_stage.get(stage, 0) + 1

    def _limit_reached(self) -> bool:
        limit = self._options.limit
        return limit is not None and self._chosen >= limit

    def _note_error(self, error: KafkaError, partition: int | None, at_end: set[int]) -> None:
        if error.code() == KafkaError._PARTITION_EOF and partition is not None:
            at_end.add(partition)
        else:
            print(f"consume error: {error}", file=self._progress, flush=True)


def _header(headers: list[tuple[str, bytes | None]], name: str) -> str | None:
    for header_name, value in headers:
        if header_name == name and value is not None:
            return value.decode("utf-8", errors="replace")
    return None


def replay_consumer_config(kafka: KafkaConfig) -> dict[str, Any]:
    """The replay consumer: its own group, reading the dead-letter topic to its end."""
    return {
        "bootstrap.servers": kafka.bootstrap_servers,
        "group.id": f"{kafka.group_id}.dlq-replay",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": kafka.session_timeout_ms,
        **kafka.settings,
        "enable.partition.eof": True,
        "logger": kafka_logger("kafka.replay_consumer"),
    }
