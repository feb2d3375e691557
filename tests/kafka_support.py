"""Kafka helpers for tests: unique names, produce, read a topic back, inspect committed offsets.

Every helper opens its own short-lived client and closes it before returning, and every wait is
bounded. Records come back as plain frozen ``Record`` values, not confluent-kafka ``Message``s.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol, TypeVar, cast

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

Header = tuple[str, bytes | None]
OutgoingRecord = tuple[bytes | None, bytes | None, Sequence[Header]]
"""(key, value, headers) of a record to produce."""

_NAME_LABEL_CHARS = 40
_POLL_SECONDS = 0.1
_PARTITION_BY_KEY = -1  # librdkafka's RD_KAFKA_PARTITION_UA
_Value = TypeVar("_Value")


class TopicFactory(Protocol):
    """The ``kafka_topic_factory`` fixture: creates a unique topic and returns its name."""

    def __call__(self, partitions: int = 1) -> str: ...


@dataclass(frozen=True)
class Record:
    """One record as stored in Kafka."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...]
    timestamp_ms: int

    @classmethod
    def from_message(cls, message: Message) -> Record:
        """The record a consumed ``Message`` holds."""
        return cls(
            topic=_present(message.topic()),
            partition=_present(message.partition()),
            offset=_present(message.offset()),
            key=message.key(),
            value=message.value(),
            # A consumed message's headers are always a list of (name, bytes | None).
            headers=tuple(cast("list[Header]", message.headers() or [])),
            timestamp_ms=message.timestamp()[1],
        )


def unique_name(label: str, kind: str) -> str:
    """A Kafka-legal topic or group name from ``kind``, ``label`` (a test name) and a uuid."""
    readable_label = re.sub(r"[^A-Za-z0-9._-]+", "-", label)[:_NAME_LABEL_CHARS].strip("-")
    return f"{kind}-{readable_label}-{uuid.uuid4().hex[:12]}"


def produce(
    bootstrap_servers: str,
    topic: str,
    records: Iterable[OutgoingRecord],
    *,
    partition: int | None = None,
    one_record_per_batch: bool = False,
    timeout: float = 10.0,
) -> list[Record]:
    """Produce with an idempotent producer and wait for every ack; the stored records, in order.

    ``partition`` sends everything there instead of partitioning by key. ``one_record_per_batch``
    makes watermarks exact on Tansu, which reports the base offset of the last batch + 1 as a
    partition's end (ListOffsets LATEST, ``get_watermark_offsets(cached=False)``).
    """
    settings: dict[str, str | int | bool] = {
        "bootstrap.servers": bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": int(timeout * 1000),
    }
    if one_record_per_batch:
        settings["batch.num.messages"] = 1
    producer = Producer(settings)
    outgoing = list(records)
    delivered: dict[int, Message] = {}
    failures: list[str] = []

    def on_delivery(index: int, error: KafkaError | None, message: Message) -> None:
        if error is None:
            delivered[index] = message
        else:
            failures.append(f"record {index}: {error.str()}")

    target_partition = _PARTITION_BY_KEY if partition is None else partition
    for index, (key, value, headers) in enumerate(outgoing):
        producer.produce(
            topic,
            value,
            key,
            headers=list(headers),
            partition=target_partition,
            on_delivery=partial(on_delivery, index),
        )
        producer.poll(0)
    unsent = producer.flush(timeout)
    if failures or unsent:
        raise RuntimeError(f"Producing to {topic} failed: {unsent} unsent; {failures[:5]}")
    # A delivery report carries no headers, so records are built from what was sent.
    return [
        Record(
            topic=topic,
            partition=_present(delivered[index].partition()),
            offset=_present(delivered[index].offset()),
            key=key,
            value=value,
            headers=tuple(headers),
            timestamp_ms=delivered[index].timestamp()[1],
        )
        for index, (key, value, headers) in enumerate(outgoing)
    ]


def consume_all(
    bootstrap_servers: str,
    topic: str,
    *,
    group_id: str | None = None,
    min_records: int = 0,
    timeout: float = 15.0,
) -> list[Record]:
    """Read ``topic`` to its current end, sorted by (partition, offset).

    Starts at the beginning, or with ``group_id`` at that group's committed offsets (the
    beginning where it has none). It reads in assign mode: no group join, which takes seconds
    on Tansu, and no commit. It returns once every partition is at its end and at least
    ``min_records`` were read (use that to wait for records still being written), and raises
    ``TimeoutError`` after ``timeout`` seconds.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": group_id or unique_name(topic, "consume-all"),
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 50,
        }
    )
    try:
        # OFFSET_INVALID makes the consumer start at the group's committed offset.
        start_offset = OFFSET_INVALID if group_id else OFFSET_BEGINNING
        partitions = _partition_ids(consumer, topic, timeout)
        consumer.assign([TopicPartition(topic, p, start_offset) for p in partitions])
        records = _read_to_end(consumer, set(partitions), min_records, timeout)
    finally:
        consumer.close()
    return sorted(records, key=lambda record: (record.partition, record.offset))


def committed_offsets(
    bootstrap_servers: str,
    group_id: str,
    topic: str,
    partitions: Iterable[int] | None = None,
    *,
    timeout: float = 10.0,
) -> dict[int, int]:
    """The offsets ``group_id`` committed on ``topic`` (all its partitions unless given).

    Partitions without a committed offset are left out.
    """
    consumer = Consumer(
        {"bootstrap.servers": bootstrap_servers, "group.id": group_id, "enable.auto.commit": False}
    )
    try:
        partition_ids = (
            _partition_ids(consumer, topic, timeout) if partitions is None else partitions
        )
        committed = consumer.committed(
            [TopicPartition(topic, p) for p in partition_ids], timeout=timeout
        )
    finally:
        consumer.close()
    for position in committed:
        if position.error is not None:
            raise KafkaException(position.error)
    return {position.partition: position.offset for position in committed if position.offset >= 0}


def wait_for_committed_offsets(
    bootstrap_servers: str,
    group_id: str,
    topic: str,
    expected: Mapping[int, int],
    *,
    timeout: float = 15.0,
) -> None:
    """Wait until ``group_id`` committed exactly ``expected`` on those partitions of ``topic``."""
    deadline = time.monotonic() + timeout
    seen: dict[int, int] = {}
    while time.monotonic() < deadline:
        seen = committed_offsets(bootstrap_servers, group_id, topic, expected, timeout=timeout)
        if seen == dict(expected):
            return
        time.sleep(_POLL_SECONDS)
    raise TimeoutError(f"{group_id} committed {seen} on {topic}, not {dict(expected)}.")


def delete_topics(bootstrap_servers: str, names: Sequence[str], *, timeout: float = 10.0) -> None:
    """Delete topics; one that does not exist is not an error."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    futures = admin.delete_topics(list(names), operation_timeout=timeout, request_timeout=timeout)
    for future in futures.values():
        try:
            future.result(timeout)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise


def _read_to_end(
    consumer: Consumer, partitions: set[int], min_records: int, timeout: float
) -> list[Record]:
    deadline = time.monotonic() + timeout
    records: list[Record] = []
    partitions_at_end: set[int] = set()
    while partitions_at_end != partitions or len(records) < min_records:
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"Read {len(records)} records (wanted at least {min_records}) and reached the end"
                f" of partitions {sorted(partitions_at_end)} of {sorted(partitions)}"
                f" within {timeout} s."
            )
        message = consumer.poll(_POLL_SECONDS)
        if message is None:
            continue
        error = message.error()
        partition = _present(message.partition())
        if error is None:
            records.append(Record.from_message(message))
            partitions_at_end.discard(partition)
        elif error.code() == KafkaError._PARTITION_EOF:
            partitions_at_end.add(partition)
        else:
            raise KafkaException(error)
    return records


def _partition_ids(consumer: Consumer, topic: str, timeout: float) -> list[int]:
    # list_topics(topic=...) would auto-create a missing topic on Tansu; list them all.
    metadata = consumer.list_topics(timeout=timeout).topics.get(topic)
    if metadata is None:
        raise LookupError(f"Topic {topic} does not exist.")
    return sorted(metadata.partitions)


def _present(value: _Value | None) -> _Value:
    if value is None:
        raise TypeError("Kafka returned no value where one is always set.")
    return value
