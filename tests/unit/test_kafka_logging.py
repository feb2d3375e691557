"""librdkafka's own log lines reach Python logging, in our format, tagged with the client.

Real confluent-kafka clients pointed at a loopback port that refuses connections: librdkafka
logs ``FAIL ... Connection refused`` at once. Without a ``logger`` setting it would write
``%3|...|FAIL|...`` straight to file descriptor 2, which ``capfd`` sees.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer

from devkit.sandbox.broker import BrokerError, create_topics
from processor.config import KafkaConfig, LogConfig
from processor.engine.consumer import consumer_config
from processor.engine.dlq import producer_config
from processor.engine.replay import replay_consumer_config
from processor.logging import HANDLER_NAME, KAFKA_LOGGER_NAME, configure_logging, kafka_logger

LOG_WAIT_SECONDS = 10.0
SASL_PASSWORD = "sasl-secret-7d41"

# component -> the client the processor builds for it
CLIENTS: dict[str, Callable[[KafkaConfig], Any]] = {
    "kafka.consumer": lambda kafka: Consumer(consumer_config(kafka)),
    "kafka.dead_letter_producer": lambda kafka: Producer(producer_config(kafka)),
    "kafka.replay_consumer": lambda kafka: Consumer(replay_consumer_config(kafka)),
    "kafka.replay_producer": lambda kafka: Producer(
        producer_config(kafka, "kafka.replay_producer")
    ),
}


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    for handler in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def refusing_address() -> Iterator[str]:
    """A loopback address whose port is bound but not listening: every connect is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bound:
        bound.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{bound.getsockname()[1]}"


def raw_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("%")]


@pytest.mark.parametrize("component", CLIENTS)
def test_librdkafka_lines_become_our_json_lines_with_the_component(
    component: str, refusing_address: str, capfd: pytest.CaptureFixture[str]
) -> None:
    configure_logging(LogConfig(format="json", level="INFO"))
    client = CLIENTS[component](KafkaConfig(bootstrap_servers=refusing_address))
    lines: list[str] = []
    deadline = time.monotonic() + LOG_WAIT_SECONDS
    while time.monotonic() < deadline and not any("Connection refused" in x for x in lines):
        client.poll(0.1)  # librdkafka hands its lines over inside poll
        lines += capfd.readouterr().err.splitlines()
    client.close()
    lines += capfd.readouterr().err.splitlines()
    assert raw_lines(lines) == []
    records = [json.loads(line) for line in lines]  # every line is one of ours
    refused = [record for record in records if "Connection refused" in record["msg"]]
    assert refused, lines
    for record in refused:
        assert (record["logger"], record["component"]) == (KAFKA_LOGGER_NAME, component)
        assert record["level"] == "ERROR"


def test_a_failing_admin_client_prints_nothing_raw(
    refusing_address: str, capfd: pytest.CaptureFixture[str]
) -> None:
    configure_logging(LogConfig(format="console", level="INFO"))
    with pytest.raises((BrokerError, TimeoutError)):
        create_topics(refusing_address, ["never-created"], 1, timeout=1.0)
    assert raw_lines(capfd.readouterr().err.splitlines()) == []


def test_a_kafka_line_quoting_a_secret_is_redacted(capfd: pytest.CaptureFixture[str]) -> None:
    configure_logging(LogConfig(format="json", level="INFO"), secrets=[SASL_PASSWORD])
    # As confluent-kafka calls the logger: facility, client name, librdkafka's text.
    kafka_logger("kafka.consumer").error(
        "%s [%s] %s", "SASL", "rdkafka#consumer-1", f"auth failed for password {SASL_PASSWORD}"
    )
    (line,) = capfd.readouterr().err.splitlines()
    record = json.loads(line)
    assert SASL_PASSWORD not in line
    assert record["msg"] == "SASL [rdkafka#consumer-1] auth failed for password ***"
    assert record["component"] == "kafka.consumer"


def test_a_logger_in_the_user_settings_cannot_send_the_lines_elsewhere() -> None:
    kafka = KafkaConfig(settings={"logger": "stderr"})
    for config in (consumer_config(kafka), producer_config(kafka), replay_consumer_config(kafka)):
        assert isinstance(config["logger"], logging.LoggerAdapter)
