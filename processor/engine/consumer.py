"""The poll thread: the only code that touches the Kafka consumer.

It polls continuously, so heartbeats and ``max.poll.interval.ms`` never depend on delivery:

1. ``consume`` a batch (rebalance callbacks run inside it, on this thread).
2. Register each message's offset with the tracker, in offset order, and hand the batch to
   the event loop (``on_records``); nothing here waits for delivery.
3. Pause a partition while its buffered events (or their bytes) reach its share of the
   high-water mark (high-water / assigned partitions), and every partition while the whole
   buffer reaches the high-water mark, the destination is halted or shutdown began. A
   partition's load is the larger of its event and byte fractions. Resume a partition once
   its own load is below the low-water fraction of its share and the whole buffer is below
   the high-water mark. Shares keep one partition's fetch from filling the whole buffer and
   starving the others; a partition stuck behind a retrying event stops only itself, and
   what it holds never keeps a drained partition paused.
4. When a partition's done offsets changed, at most once per ``commit_interval``, store and
   commit the highest contiguous done offset, with the done offsets above it in the commit's
   metadata (``offsetmap``). Commit sooner once ``commit_after_events`` offsets joined the done
   prefixes since the last commit, and look more often while any await a commit: a crash
   redelivers what is done but not committed, and at a high event rate one interval's worth
   would exceed the in-flight window.
5. Every ``LAG_INTERVAL_SECONDS`` refresh consumer lag and check that the broker answers.

On assign while everything must wait (halted, stopping, or the buffer full): take the new
partitions and pause them at once, so a rebalance never lets a backlog in past the high-water
mark or a halted destination; offsets the previous owner's commit metadata marks done are
skipped. On revoke: start only the events that fill the gaps below the highest started offset,
wait (bounded) for them and the in-flight work, commit what is done, forget the partitions. On
shutdown: final commit, then close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from processor import metrics
from processor.config import KafkaConfig
from processor.engine import offsetmap
from processor.engine.handler import KafkaRecord
from processor.engine.offsets import CommitPoint, OffsetTicket, OffsetTracker, PartitionKey
from processor.logging import kafka_logger

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
POLL_TIMEOUT_SECONDS = 0.05
# While done events await a commit the poll thread looks at them this often: at 2,000 events/s
# a 50 ms wait alone would leave 100 more for a crash to redeliver.
AWAITING_COMMIT_POLL_TIMEOUT_SECONDS = 0.01
COMMITTED_TIMEOUT_SECONDS = 10.0
LAG_INTERVAL_SECONDS = 10.0
LOW_WATER_FRACTION = 0.5

Batch = list[tuple[KafkaRecord, OffsetTicket]]


class HealthReporter(Protocol):
    """What the poll thread tells /healthz and /readyz."""

    def poll_ticked(self) -> None: ...
    def set_assigned(self, joined: bool) -> None: ...
    def broker_answered(self) -> None: ...


@dataclass(frozen=True, slots=True)
class PollSettings:
    """How the poll thread paces itself."""

    high_water: int  # buffered events
    high_water_bytes: int  # buffered record bytes
    commit_interval_seconds: float
    commit_after_events: int  # commit early once this many done events await a commit
    revoke_timeout_seconds: float


def consumer_config(kafka: KafkaConfig) -> dict[str, Any]:
    """librdkafka settings: manual offset store and commit, cooperative rebalancing."""
    return {
        "bootstrap.servers": kafka.bootstrap_servers,
        "group.id": kafka.group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": kafka.session_timeout_ms,
        "max.poll.interval.ms": kafka.max_poll_interval_ms,
        # Bound librdkafka's prefetch so memory stays flat whatever the backlog, and fetch
        # again soon once it has room: librdkafka's default waits 1 s, which left a consumer
        # of cheap (skipped) events idle most of the time (``make bench``, sitestream).
        "queued.max.messages.kbytes": 8192,
        "fetch.queue.backoff.ms": 10,
        "log.connection.close": False,
        **kafka.settings,
        "logger": kafka_logger("kafka.consumer"),
    }


class PollLoop:
    """Runs on its own thread; talks to the event loop only through thread-safe calls."""

    def __init__(
        self,
        *,
        consumer: Consumer,
        topic: str,
        tracker: OffsetTracker,
        loop: asyncio.AbstractEventLoop,
        on_records: Callable[[Batch], None],
        drain: Callable[[Sequence[PartitionKey], float], Any],
        is_halted: Callable[[], bool],
        health: HealthReporter,
        settings: PollSettings,
    ) -> None:
        self._consumer = consumer
        self._topic = topic
        self._tracker = tracker
        self._loop = loop
        self._on_records = on_records
        self._drain = drain
        self._is_halted = is_halted
        self._health = health
        self._settings = settings
        self.stopping = threading.Event()  # stop starting new work (pause everything)
        self.closing = threading.Event()  # final commit and close
        self._paused: set[PartitionKey] = set()
        self._last_commit = time.monotonic()
        self._last_lag = 0.0
        self._metadata_support_logged = False
        self._thread = threading.Thread(target=self._run, name="kafka-poll", daemon=True)

    def start(self) -> None:
        """Subscribe and start the poll thread."""
        self._consumer.subscribe(
            [self._topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self._thread.start()

    def join(self, timeout_seconds: float) -> bool:
        """Wait for the thread to finish; False if it is still running."""
        self._thread.join(timeout_seconds)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            while not self.closing.is_set():
                self._poll_once()
                self._apply_backpressure()
                self._maybe_commit()
                self._maybe_refresh_lag()
        except Exception:
            logger.exception("poll loop crashed")
            raise
        finally:
            self._commit(None)
            self._consumer.close()
            logger.info("consumer closed")

    def _poll_once(self) -> None:
        awaiting_commit = self._tracker.uncommitted_prefix() > 0
        timeout = AWAITING_COMMIT_POLL_TIMEOUT_SECONDS if awaiting_commit else POLL_TIMEOUT_SECONDS
        messages = self._consumer.consume(BATCH_SIZE, timeout=timeout)
        self._health.poll_ticked()
        batch: Batch = []
        for message in messages:
            error = message.error()
            if error is not None:
                self._log_consume_error(error)
                continue
            record = _record(message)
            ticket = self._tracker.register(
                record.topic, record.partition, record.offset, _size(record)
            )
            if ticket is not None:
                batch.append((record, ticket))
        if batch:
            self._health.broker_answered()
            self._loop.call_soon_threadsafe(self._on_records, batch)

    def _log_consume_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._PARTITION_EOF:
            return
        logger.warning("consume error: %s", error)

    def _apply_backpressure(self) -> None:
        loads = self._loads()
        total = sum(loads.values())
        hold = self._holding()
        to_pause = [
            tp
            for tp, own in loads.items()
            if tp not in self._paused and (hold or self._full(own, total, len(loads)))
        ]
        to_resume = [
            tp
            for tp in self._paused
            if tp in loads and not hold and self._roomy(loads[tp], total, len(loads))
        ]
        if to_pause:
            self._consumer.pause(_topic_partitions(to_pause))
            self._paused.update(to_pause)
        if to_resume:
            self._consumer.resume(_topic_partitions(to_resume))
            self._paused.difference_update(to_resume)
        metrics.PARTITIONS_PAUSED.set(len(self._paused))

    def _loads(self) -> dict[PartitionKey, float]:
        """Each partition's buffer as a fraction of the high-water mark (events or bytes)."""
        counts = self._tracker.pending_counts()
        sizes = self._tracker.pending_bytes()
        metrics.INFLIGHT_EVENTS.set(sum(counts.values()))
        metrics.INFLIGHT_BYTES.set(sum(sizes.values()))
        events, size = self._settings.high_water, self._settings.high_water_bytes
        return {tp: max(count / events, sizes.get(tp, 0) / size) for tp, count in counts.items()}

    def _holding(self) -> bool:
        return self.stopping.is_set() or self._is_halted()

    @staticmethod
    def _full(own: float, total: float, partitions: int) -> bool:
        return total >= 1 or own >= 1 / max(partitions, 1)

    @staticmethod
    def _roomy(own: float, total: float, partitions: int) -> bool:
        # Only the total's high-water mark, not its low-water one: a partition stuck behind a
        # retrying event may hold its whole share for hours and must not freeze the others.
        return total < 1 and own <= LOW_WATER_FRACTION / max(partitions, 1)

    def _maybe_commit(self) -> None:
        if (
            time.monotonic() - self._last_commit >= self._settings.commit_interval_seconds
            or self._tracker.uncommitted_prefix() >= self._settings.commit_after_events
        ):
            self._commit(None)

    def _commit(self, partitions: Sequence[PartitionKey] | None) -> None:
        self._last_commit = time.monotonic()
        points = self._tracker.commit_points(partitions)
        if not points:
            return
        offsets = [_commit_offset(tp, point) for tp, point in points.items()]
        try:
            self._consumer.store_offsets(offsets=offsets)
            self._consumer.commit(asynchronous=False)
        except KafkaException as error:
            logger.warning("commit failed (will retry): %s", error)
            return
        self._tracker.committed(points)
        self._health.broker_answered()
        metrics.LAST_COMMIT_TIMESTAMP.set(time.time())

    def _maybe_refresh_lag(self) -> None:
        now = time.monotonic()
        if now - self._last_lag < LAG_INTERVAL_SECONDS:
            return
        self._last_lag = now
        try:
            self._consumer.list_topics(self._topic, timeout=5)
        except KafkaException as error:
            logger.warning("broker did not answer: %s", error)
            return
        self._health.broker_answered()
        for topic, partition in self._tracker.assigned():
            self._refresh_partition_lag(topic, partition)

    def _refresh_partition_lag(self, topic: str, partition: int) -> None:
        # Cached watermarks come from fetch responses: right on Tansu too (docs/embedded-broker.md).
        _low, high = self._consumer.get_watermark_offsets(
            TopicPartition(topic, partition), cached=True
        )
        if high < 0:
            return
        committed = self._tracker.committed_position((topic, partition))
        if committed is None:
            # Nothing committed yet (a halt since the start): the polled, unfinished events are
            # lag too, so count from the first of them, not from the fetch position past them.
            committed = self._tracker.first_pending((topic, partition))
        if committed is None:
            position = self._consumer.position([TopicPartition(topic, partition)])[0].offset
            committed = position if position >= 0 else high
        metrics.CONSUMER_LAG.labels(partition=str(partition)).set(max(high - committed, 0))

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = [(tp.topic, tp.partition) for tp in partitions]
        self._tracker.assign(keys, self._finished_before(partitions))
        loads = self._loads()
        paused = bool(keys) and (self._holding() or self._full(0, sum(loads.values()), len(loads)))
        if paused:
            _take_paused(consumer, partitions)
            self._paused.update(keys)
            metrics.PARTITIONS_PAUSED.set(len(self._paused))
        self._health.set_assigned(True)
        logger.info("assigned %s%s", _describe(keys), " (paused)" if paused else "")

    def _finished_before(
        self, partitions: list[TopicPartition]
    ) -> dict[PartitionKey, frozenset[int]]:
        """Offsets above each committed position that the previous owner already finished."""
        if not partitions:
            return {}
        try:
            committed = self._consumer.committed(partitions, timeout=COMMITTED_TIMEOUT_SECONDS)
        except KafkaException as error:
            logger.warning("could not read committed offsets (no skipping): %s", error)
            return {}
        finished = {}
        kept_metadata = False
        for tp in committed:
            if tp.offset < 0:
                continue
            done = offsetmap.decode(tp.offset, tp.metadata)
            kept_metadata = kept_metadata or done is not None
            if done:
                finished[(tp.topic, tp.partition)] = done
        self._log_metadata_support(committed, kept_metadata)
        return finished

    def _log_metadata_support(self, committed: list[TopicPartition], kept: bool) -> None:
        if self._metadata_support_logged or not any(tp.offset >= 0 for tp in committed):
            return
        self._metadata_support_logged = True
        if kept:
            logger.info("offset commit metadata kept by the broker: finished events are skipped")
        else:
            logger.info(
                "offset commit metadata not kept by the broker: events done beyond the "
                "committed offset are redelivered after a rebalance or crash"
            )

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = [(tp.topic, tp.partition) for tp in partitions]
        if not keys:
            return
        self._tracker.begin_revoke(keys)
        timeout = self._settings.revoke_timeout_seconds
        future = self._drain(keys, timeout)
        try:
            future.result(timeout + 1.0)
        except (FutureTimeout, RuntimeError, asyncio.CancelledError):
            logger.warning("revoke: in-flight work did not finish within %s s", timeout)
        self._commit(keys)
        self._forget(keys)
        logger.info("revoked %s", _describe(keys))

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = [(tp.topic, tp.partition) for tp in partitions]
        self._tracker.begin_revoke(keys)
        self._forget(keys)
        logger.warning("lost %s without commit", _describe(keys))

    def _forget(self, keys: Sequence[PartitionKey]) -> None:
        self._tracker.drop(keys)
        self._paused.difference_update(keys)
        for _topic, partition in keys:
            with contextlib.suppress(KeyError):
                metrics.CONSUMER_LAG.remove(str(partition))


def _take_paused(consumer: Consumer, partitions: list[TopicPartition]) -> None:
    """Assign inside the rebalance callback, then pause: pausing first would not stick."""
    try:
        consumer.incremental_assign(partitions)
    except KafkaException:  # an eager strategy set in kafka.settings: the whole assignment
        consumer.assign(partitions)
    consumer.pause(partitions)


def _commit_offset(key: PartitionKey, point: CommitPoint) -> TopicPartition:
    topic, partition = key
    metadata = offsetmap.encode(point.position, point.done_above)
    return TopicPartition(topic, partition, point.position, metadata=metadata)


def _topic_partitions(keys: Iterable[PartitionKey]) -> list[TopicPartition]:
    return [TopicPartition(topic, partition) for topic, partition in keys]


def _record(message: Any) -> KafkaRecord:
    _kind, timestamp = message.timestamp()
    return KafkaRecord(
        topic=message.topic(),
        partition=message.partition(),
        offset=message.offset(),
        key=message.key(),
        value=message.value(),
        headers=tuple(message.headers() or ()),
        timestamp_ms=timestamp if timestamp > 0 else None,
    )


def _size(record: KafkaRecord) -> int:
    """Bytes a buffered record holds on to: key, value and headers."""
    size = len(record.key or b"") + len(record.value or b"")
    if record.headers:  # most records have none: no generator for them
        size += sum(len(name) + len(value or b"") for name, value in record.headers)
    return size


def _describe(keys: Sequence[PartitionKey]) -> str:
    return ", ".join(f"{topic}[{partition}]" for topic, partition in keys) or "nothing"
