"""The Kafka fixtures and the embedded broker against a real broker (Tansu unless configured)."""

from __future__ import annotations

import select
import socket
import subprocess
import sys
import time

import psutil
import pytest
from confluent_kafka import Consumer, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from devkit.sandbox import broker
from devkit.sandbox.broker import (
    BOOTSTRAP_SERVERS_ENV,
    EmbeddedBroker,
    KafkaTarget,
    PortInUseError,
    create_topics,
    kafka_target,
)
from tests.kafka_support import (
    OutgoingRecord,
    TopicFactory,
    committed_offsets,
    consume_all,
    produce,
)

pytestmark = pytest.mark.integration

_WAIT_SECONDS = 20.0


def _partition_count(bootstrap_servers: str, topic: str) -> int:
    topics = AdminClient({"bootstrap.servers": bootstrap_servers}).list_topics(timeout=5).topics
    return len(topics[topic].partitions)


def _answers_metadata(bootstrap_servers: str) -> bool:
    metadata = AdminClient({"bootstrap.servers": bootstrap_servers}).list_topics(timeout=5)
    return bool(metadata.brokers)


def _poll_first_message(consumer: Consumer) -> Message:
    deadline = time.monotonic() + _WAIT_SECONDS
    while time.monotonic() < deadline:
        message = consumer.poll(0.1)
        if message is not None and message.error() is None:
            return message
    raise TimeoutError(f"No message within {_WAIT_SECONDS} s.")


def _wait_until_gone(pid: int, timeout: float) -> bool:
    """True once ``pid`` no longer runs (gone, or a zombie its new parent has not reaped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_topics_are_created_with_the_requested_partitions(
    kafka: KafkaTarget, kafka_topic_factory: TopicFactory
) -> None:
    topic = kafka_topic_factory(3)
    create_topics(kafka.bootstrap_servers, [topic], 5)  # exists: left as it is

    assert _partition_count(kafka.bootstrap_servers, topic) == 3


def test_records_round_trip_with_keys_headers_and_per_key_order(
    kafka: KafkaTarget, kafka_topic_factory: TopicFactory
) -> None:
    topic = kafka_topic_factory(3)
    keyed: list[OutgoingRecord] = [
        (f"user-{n % 4}".encode(), f"event-{n}".encode(), [("seq", str(n).encode())])
        for n in range(12)
    ]
    unusual: list[OutgoingRecord] = [
        (None, b"no key", [("dup", b"1"), ("dup", b"2"), ("none", None)]),
        (b"tombstone", None, []),
        (b"", b"", [("empty", b"")]),
    ]

    produced = produce(kafka.bootstrap_servers, topic, keyed + unusual)
    consumed = consume_all(kafka.bootstrap_servers, topic, timeout=_WAIT_SECONDS)

    assert consumed == sorted(produced, key=lambda record: (record.partition, record.offset))
    for user in {key for key, _, _ in keyed}:
        of_user = [record for record in consumed if record.key == user]
        assert len({record.partition for record in of_user}) == 1
        assert [record.value for record in of_user] == [v for k, v, _ in keyed if k == user]


def test_one_record_per_batch_gives_exact_end_offsets(
    kafka: KafkaTarget, kafka_topic_factory: TopicFactory, group_id: str
) -> None:
    topic = kafka_topic_factory(1)
    produce(
        kafka.bootstrap_servers,
        topic,
        [(None, str(n).encode(), []) for n in range(20)],
        one_record_per_batch=True,
    )
    consumer = Consumer(kafka.consumer_config(group_id))
    try:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, 0), timeout=5, cached=False
        )
    finally:
        consumer.close()

    assert (low, high) == (0, 20)


def test_group_commit_is_read_back_and_consumption_resumes_after_it(
    kafka: KafkaTarget, kafka_topic_factory: TopicFactory, group_id: str
) -> None:
    topic = kafka_topic_factory(2)
    produced = produce(
        kafka.bootstrap_servers, topic, [(f"k{n}".encode(), b"v", []) for n in range(10)]
    )
    consumer = Consumer(
        {
            **kafka.consumer_config(group_id),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe([topic])
        first = _poll_first_message(consumer)
        consumer.commit(message=first, asynchronous=False)
    finally:
        consumer.close()
    first_partition, first_offset = first.partition(), first.offset()
    assert first_partition is not None and first_offset is not None

    committed = committed_offsets(kafka.bootstrap_servers, group_id, topic)
    remaining = consume_all(kafka.bootstrap_servers, topic, group_id=group_id)

    assert committed == {first_partition: first_offset + 1}
    assert remaining == sorted(
        (r for r in produced if (r.partition, r.offset) != (first_partition, first_offset)),
        key=lambda record: (record.partition, record.offset),
    )


def test_embedded_broker_serves_and_leaves_no_process_behind() -> None:
    with EmbeddedBroker() as embedded:
        pid, log_path = embedded.pid, embedded.log_path
        assert psutil.Process(pid).name() == "tansu"
        assert _answers_metadata(embedded.bootstrap_servers)

    assert not psutil.pid_exists(pid)
    assert not log_path.exists()


def test_taken_port_is_a_clear_error_and_leaves_no_process_behind() -> None:
    children_before = {child.pid for child in psutil.Process().children(recursive=True)}
    with socket.socket() as occupant:
        occupant.bind(("127.0.0.1", 0))
        occupant.listen()
        with pytest.raises(PortInUseError, match="already in use"):
            EmbeddedBroker(port=occupant.getsockname()[1]).start()

    assert {child.pid for child in psutil.Process().children(recursive=True)} == children_before


def test_a_port_taken_during_start_is_retried_on_another(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as occupant:
        occupant.bind(("127.0.0.1", 0))
        occupant.listen()
        taken_port = occupant.getsockname()[1]
        free_ports = iter([taken_port, broker._free_loopback_port()])
        monkeypatch.setattr(broker, "_free_loopback_port", lambda: next(free_ports))

        with EmbeddedBroker() as embedded:
            assert embedded.bootstrap_servers != f"127.0.0.1:{taken_port}"
            assert _answers_metadata(embedded.bootstrap_servers)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_broker_dies_when_its_parent_is_killed() -> None:
    starter = (
        "import time\n"
        "from devkit.sandbox.broker import EmbeddedBroker\n"
        "embedded = EmbeddedBroker()\n"
        "embedded.start()\n"
        "print(embedded.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", starter], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        readable, _, _ = select.select([parent.stdout], [], [], _WAIT_SECONDS)
        assert readable, "the parent did not report a broker pid"
        broker_pid = int(parent.stdout.readline())
        assert psutil.Process(broker_pid).name() == "tansu"
    finally:
        parent.kill()
        parent.wait(_WAIT_SECONDS)

    assert _wait_until_gone(broker_pid, timeout=5)


def test_kafka_target_uses_configured_servers_and_starts_nothing(
    kafka: KafkaTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BOOTSTRAP_SERVERS_ENV, kafka.bootstrap_servers)
    children_before = {child.pid for child in psutil.Process().children(recursive=True)}

    with kafka_target() as target:
        children_during = {child.pid for child in psutil.Process().children(recursive=True)}
        target_answers = _answers_metadata(target.bootstrap_servers)

    assert (target.kind, target.bootstrap_servers) == ("external", kafka.bootstrap_servers)
    assert children_during == children_before
    assert target_answers
