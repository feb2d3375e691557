"""Fakes for engine unit tests: a producer, a consumer, and work items ready to handle.

``FakeProducer`` reports deliveries only from ``poll`` (as librdkafka does), with the error
``fail_with`` holds at that moment. ``FakeConsumer`` plays scripted ``consume`` results and
rebalances on the poll thread, and, like librdkafka, ignores a pause of a partition that is not
assigned yet.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from processor.engine.handler import KafkaRecord, WorkItem
from processor.engine.offsets import OffsetTracker
from processor.pipeline.plan import (
    CreateContact,
    CreateTicket,
    IdentifyPlan,
    Plan,
    Rejection,
    ResolveContact,
    TicketPlan,
    UpdateContact,
)

TOPIC = "events"
CHANNEL = "1"


@dataclass
class ManualClock:
    """The engine's clock in simulated time: it moves only when a test advances it."""

    now: float = 1_700_000_000.0  # Unix time, so dead-letter timestamps read as real dates

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Produced:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]


@dataclass
class FakeProducer:
    fail_with: str | None = None
    failures_left: int = 0  # the next N delivery reports fail, whatever fail_with says
    produced: list[Produced] = field(default_factory=list)
    _reports: list[Callable[[Any, Any], None]] = field(default_factory=list)

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes | None]] | None = None,
        on_delivery: Callable[[Any, Any], None] | None = None,
    ) -> None:
        self.produced.append(Produced(topic, key, value, list(headers or [])))
        if on_delivery is not None:
            self._reports.append(on_delivery)

    def poll(self, _timeout: float = 0) -> int:
        reports, self._reports = self._reports, []
        for report in reports:
            if self.failures_left > 0:
                self.failures_left -= 1
                report("Broker: Request timed out", None)
            else:
                report(self.fail_with, None)
        return len(reports)

    def flush(self, _timeout: float = 0) -> int:
        self.poll()
        return 0


def identify_plan(email: str, name: str) -> IdentifyPlan:
    return IdentifyPlan(
        contact=ResolveContact(email, "email", CHANNEL),
        update=UpdateContact(name),
        create=CreateContact(CHANNEL, email, name),
    )


def ticket_plan(email: str, subject: str) -> TicketPlan:
    return TicketPlan(
        "Order Completed", ResolveContact(email, "email", CHANNEL), CreateTicket(CHANNEL, subject)
    )


def work_item(
    tracker: OffsetTracker, offset: int, work: Plan | Rejection, partition: int = 0
) -> WorkItem:
    """An item for ``work`` at ``offset``, registered with the tracker (partition assigned)."""
    if (TOPIC, partition) not in tracker.assigned():
        tracker.assign([(TOPIC, partition)])
    ticket = tracker.register(TOPIC, partition, offset)
    assert ticket is not None
    record = KafkaRecord(
        topic=TOPIC,
        partition=partition,
        offset=offset,
        key=b"user",
        value=b'{"type": "identify"}',
        headers=(("trace", b"t1"),),
        timestamp_ms=None,
    )
    return WorkItem(record=record, ticket=ticket, message_type="identify", work=work)


@dataclass
class FakeMessage:
    topic_name: str
    partition_id: int
    offset_value: int
    value_bytes: bytes = b"{}"

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self.topic_name

    def partition(self) -> int:
        return self.partition_id

    def offset(self) -> int:
        return self.offset_value

    def key(self) -> bytes:
        return b"user"

    def value(self) -> bytes:
        return self.value_bytes

    def headers(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (0, 0)


Step = Callable[["FakeConsumer"], list[FakeMessage]]


class FakeConsumer:
    """Scripted: each ``consume`` call runs the next queued step on the poll thread."""

    def __init__(self) -> None:
        self.steps: queue.Queue[Step] = queue.Queue()
        self.assigned: list[tuple[str, int]] = []
        self.paused: set[tuple[str, int]] = set()
        self.commits: dict[tuple[str, int], int] = {}
        # What the group's offset store holds, metadata included (a broker that keeps it).
        self.stored_commits: dict[tuple[str, int], TopicPartition] = {}
        self._stored: dict[tuple[str, int], TopicPartition] = {}
        self.committed_error: KafkaException | None = None  # raised by committed()
        self.consume_timeouts: list[float] = []
        self.closed = False
        self._callbacks: dict[str, Callable[[Any, list[TopicPartition]], None]] = {}
        self._assigned_in_callback = False

    # --- what tests call ------------------------------------------------------------------

    def messages(self, partition: int, offsets: range, value: bytes = b"{}") -> None:
        self.steps.put(lambda _c: [FakeMessage(TOPIC, partition, o, value) for o in offsets])

    def rebalance(self, kind: str, partitions: list[int]) -> None:
        self.steps.put(lambda consumer: consumer._rebalance(kind, partitions))

    # --- the confluent_kafka.Consumer surface the poll loop uses -------------------------------

    def subscribe(self, _topics: list[str], **callbacks: Any) -> None:
        self._callbacks = callbacks

    def consume(self, _count: int, timeout: float) -> list[FakeMessage]:
        self.consume_timeouts.append(timeout)
        try:
            step = self.steps.get(timeout=timeout)
        except queue.Empty:
            return []
        return step(self)

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(topic, partition) for topic, partition in self.assigned]

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        self._assigned_in_callback = True
        self.assigned += [(tp.topic, tp.partition) for tp in partitions]

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused |= {(tp.topic, tp.partition) for tp in partitions} & set(self.assigned)

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused -= {(tp.topic, tp.partition) for tp in partitions}

    def store_offsets(self, offsets: list[TopicPartition]) -> None:
        self._stored.update({(tp.topic, tp.partition): tp for tp in offsets})

    def commit(self, asynchronous: bool = True) -> None:
        assert not asynchronous
        self.commits.update({key: tp.offset for key, tp in self._stored.items()})
        self.stored_commits.update(self._stored)

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        if self.committed_error is not None:
            raise self.committed_error
        return [
            self.stored_commits.get(
                (tp.topic, tp.partition), TopicPartition(tp.topic, tp.partition, -1001)
            )
            for tp in partitions
        ]

    def close(self) -> None:
        self.closed = True

    def list_topics(self, _topic: str, timeout: float) -> None:
        return None

    def get_watermark_offsets(self, _tp: TopicPartition, cached: bool) -> tuple[int, int]:
        return (-1, -1)

    def _rebalance(self, kind: str, partitions: list[int]) -> list[FakeMessage]:
        tps = [TopicPartition(TOPIC, partition) for partition in partitions]
        self._assigned_in_callback = False
        self._callbacks[f"on_{kind}"](self, tps)
        keys = [(TOPIC, partition) for partition in partitions]
        if kind == "assign" and not self._assigned_in_callback:
            self.assigned += keys  # what confluent-kafka does after the callback
        if kind in ("revoke", "lost"):
            self.assigned = [key for key in self.assigned if key not in keys]
            self.paused -= set(keys)
        return []


def done_future() -> Future[None]:
    future: Future[None] = Future()
    future.set_result(None)
    return future
