"""Tests for processor/logging.py: line formats, event fields, secret redaction, and librdkafka's
lines through ``kafka_logger``."""

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
from processor.config import DestinationConfig, KafkaConfig, LogConfig, Settings
from processor.engine.consumer import consumer_config
from processor.engine.dlq import producer_config
from processor.engine.replay import replay_consumer_config
from processor.logging import (
    HANDLER_NAME,
    KAFKA_LOGGER_NAME,
    RedactingFilter,
    configure_logging,
    event_fields,
    kafka_logger,
    log_outcome,
    user_id_hash,
)

TOKEN = "trengo-token-5f1d9c0a7b"
LOGGER_NAME = "processor.test"

LogCall = Callable[[logging.Logger], None]


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    for handler in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(handler)
    root.setLevel(level)


def emitted_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


def json_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in emitted_lines(capsys)]


def sample_fields(*, include_user_ids: bool = False) -> dict[str, object]:
    return event_fields(
        message_id="msg-1",
        user_id="user@example.com",
        topic="rudderstack.events",
        partition=3,
        offset=42,
        include_user_ids=include_user_ids,
    )


def test_json_line_has_the_base_and_extra_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LogConfig(format="json"))

    logging.getLogger(LOGGER_NAME).warning("hello %s", "world", extra=sample_fields())

    [line] = json_lines(capsys)
    assert line["level"] == "WARNING"
    assert line["logger"] == LOGGER_NAME
    assert line["msg"] == "hello world"
    assert str(line["ts"]).endswith("Z")
    assert {k: line[k] for k in ("messageId", "topic", "partition", "offset")} == {
        "messageId": "msg-1",
        "topic": "rudderstack.events",
        "partition": 3,
        "offset": 42,
    }


def test_json_line_carries_the_exception(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LogConfig(format="json"))

    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger(LOGGER_NAME).exception("failed")

    [line] = json_lines(capsys)
    assert "RuntimeError: boom" in str(line["exc"])


@pytest.mark.parametrize(
    ("include_user_ids", "present", "absent"),
    [(False, "userIdHash", "userId"), (True, "userId", "userIdHash")],
)
def test_user_id_hashed_unless_included(include_user_ids: bool, present: str, absent: str) -> None:
    fields = sample_fields(include_user_ids=include_user_ids)

    assert present in fields
    assert absent not in fields
    assert ("user@example.com" in fields.values()) is include_user_ids


def test_user_id_hash_is_short_stable_and_distinct() -> None:
    digest = user_id_hash("user@example.com")

    assert len(digest) == 16
    assert int(digest, 16) >= 0
    assert digest == user_id_hash("user@example.com")
    assert digest != user_id_hash("other@example.com")


def test_missing_ids_are_left_out() -> None:
    fields = event_fields(
        message_id=None,
        user_id=None,
        topic="t",
        partition=0,
        offset=7,
        include_user_ids=False,
    )

    assert fields == {"topic": "t", "partition": 0, "offset": 7}


def test_log_outcome_levels_and_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LogConfig(format="json"))
    logger = logging.getLogger(LOGGER_NAME)

    log_outcome(logger, "delivered", None, sample_fields())
    log_outcome(logger, "dead_lettered", "unmapped track event", sample_fields())

    delivered, dead_lettered = json_lines(capsys)
    assert (delivered["level"], delivered["msg"], delivered["outcome"]) == (
        "INFO",
        "event delivered",
        "delivered",
    )
    assert dead_lettered["level"] == "WARNING"
    assert dead_lettered["reason"] == "unmapped track event"
    assert dead_lettered["userIdHash"] == user_id_hash("user@example.com")


def test_console_line_is_compact(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LogConfig(format="console"))

    log_outcome(logging.getLogger(LOGGER_NAME), "skipped", "ignored type", sample_fields())

    [line] = emitted_lines(capsys)
    assert f"INFO    {LOGGER_NAME}: event skipped: ignored type" in line
    assert "messageId=msg-1" in line
    assert "offset=42" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_configure_twice_keeps_one_handler(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LogConfig(format="console"))
    configure_logging(LogConfig(format="json"))

    logging.getLogger(LOGGER_NAME).info("once")

    assert [line["msg"] for line in json_lines(capsys)] == ["once"]


def test_level_filters_lower_records(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LogConfig(format="json", level="WARNING"))
    logger = logging.getLogger(LOGGER_NAME)

    logger.info("quiet")
    logger.warning("loud")

    assert [line["msg"] for line in json_lines(capsys)] == ["loud"]


def raise_with_token() -> None:
    raise ValueError(f"401 for token {TOKEN}")


def log_exception(logger: logging.Logger) -> None:
    try:
        raise_with_token()
    except ValueError:
        logger.exception("delivery failed")


class Leaky:
    """An extra value whose text holds the token, as an error object's would."""

    def __str__(self) -> str:
        return f"Leaky({TOKEN})"


TOKEN_LEAKS: dict[str, LogCall] = {
    "message": lambda logger: logger.error(f"Authorization: Bearer {TOKEN}"),
    "args": lambda logger: logger.error("header %s", f"Bearer {TOKEN}"),
    "extra string": lambda logger: logger.error("request", extra={"url": f"/x?t={TOKEN}"}),
    "extra nested": lambda logger: logger.error("request", extra={"headers": {"auth": [TOKEN]}}),
    "extra object": lambda logger: logger.error("request", extra={"error": Leaky()}),
    "exception text": log_exception,
    "stack info": lambda logger: logger.error(f"at {TOKEN}", stack_info=True),
}


@pytest.mark.parametrize("log_format", ["json", "console"])
@pytest.mark.parametrize("leak", TOKEN_LEAKS.values(), ids=TOKEN_LEAKS.keys())
def test_token_is_redacted(
    capsys: pytest.CaptureFixture[str], log_format: str, leak: LogCall
) -> None:
    configure_logging(LogConfig(format=log_format), secrets=[TOKEN, ""])

    leak(logging.getLogger(LOGGER_NAME))

    output = capsys.readouterr().err
    assert TOKEN not in output
    assert "***" in output


def test_longer_secret_is_hidden_whole(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LogConfig(format="json"), secrets=["abc", "abcdef"])

    logging.getLogger(LOGGER_NAME).info("value abcdef")

    [line] = json_lines(capsys)
    assert line["msg"] == "value ***"


def test_mismatched_args_are_kept_and_redacted() -> None:
    record = logging.LogRecord(LOGGER_NAME, logging.ERROR, __file__, 1, "two %s %s", (TOKEN,), None)

    RedactingFilter([TOKEN]).filter(record)

    assert record.getMessage() == "two %s %s ('***',)"


DEAD_LETTER_REASONS = [
    pytest.param(
        "deliver: No contact found for term:ann.lee+vip@example.co.uk Order Completed failed",
        "deliver: No contact found for term:<email> Order Completed failed",
        id="email-in-rudderstack-reason",
    ),
    pytest.param(
        "deliver: ambiguous contact: 2 exact matches for +31 6 1234 5678: ids 900024310, 7",
        "deliver: ambiguous contact: 2 exact matches for <phone>: ids <phone>, 7",
        id="international-phone-and-long-id",
    ),
    pytest.param(
        "deliver: No contact found for term:0612345678 Signed Up failed",
        "deliver: No contact found for term:<phone> Signed Up failed",
        id="national-phone",
    ),
    pytest.param(
        "deliver: create_ticket: HTTP 429 at 2026-12-04T20:00:00Z after 12 attempts",
        "deliver: create_ticket: HTTP 429 at 2026-12-04T20:00:00Z after 12 attempts",
        id="no-identifier-left-alone",
    ),
]


@pytest.mark.parametrize(("reason", "logged"), DEAD_LETTER_REASONS)
@pytest.mark.parametrize("log_format", ["json", "console"])
def test_warnings_mask_emails_and_phone_numbers(
    capsys: pytest.CaptureFixture[str], reason: str, logged: str, log_format: str
) -> None:
    configure_logging(LogConfig(format=log_format))  # type: ignore[arg-type]

    log_outcome(logging.getLogger(LOGGER_NAME), "dead_lettered", reason, sample_fields())
    logging.getLogger(LOGGER_NAME).error("failed: %s", reason, extra={"detail": [reason]})

    output = capsys.readouterr().err
    assert f"event dead_lettered: {logged}" in output
    assert f"failed: {logged}" in output
    if logged != reason:
        for identifier in ("ann.lee+vip@example.co.uk", "+31 6 1234 5678", "0612345678"):
            assert identifier not in output


def test_an_exception_text_is_masked_in_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LogConfig(format="json"))

    try:
        raise ValueError("bad identifier ann@example.com")
    except ValueError:
        logging.getLogger(LOGGER_NAME).exception("failed")

    [line] = json_lines(capsys)
    assert "ValueError: bad identifier <email>" in str(line["exc"])
    assert "ann@example.com" not in json.dumps(line)


def test_identifiers_stay_in_info_lines_and_with_include_user_ids(
    capsys: pytest.CaptureFixture[str],
) -> None:
    reason = "No contact found for term:ann@example.com x failed"
    configure_logging(LogConfig(format="json"))
    logging.getLogger(LOGGER_NAME).info(reason)
    configure_logging(LogConfig(format="json", include_user_ids=True))
    fields = sample_fields(include_user_ids=True)
    log_outcome(logging.getLogger(LOGGER_NAME), "dead_lettered", reason, fields)

    info, warning = json_lines(capsys)
    assert info["msg"] == reason
    assert warning["msg"] == f"event dead_lettered: {reason}"
    assert warning["userId"] == "user@example.com"


def test_kafka_credentials_from_the_config_are_redacted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = Settings(
        kafka=KafkaConfig(settings={"sasl.password": "kafka-pw-9", "ssl.key.pem": "pem-body-8"}),
        destination=DestinationConfig(apiToken=TOKEN, channelId="1"),
    )
    configure_logging(LogConfig(format="json"), secrets=settings.secrets)

    logging.getLogger(LOGGER_NAME).error(
        "cannot connect with %s", settings.kafka.settings, extra={"pem": "pem-body-8"}
    )

    output = capsys.readouterr().err
    assert "kafka-pw-9" not in output and "pem-body-8" not in output
    assert output.count("***") == 3


# librdkafka's own lines: real confluent-kafka clients pointed at a loopback port that refuses
# connections log ``FAIL ... Connection refused`` at once. Without the ``logger`` setting
# librdkafka writes ``%3|...|FAIL|...`` straight to file descriptor 2, which ``capfd`` sees.
LOG_WAIT_SECONDS = 10.0
SASL_PASSWORD = "sasl-secret-7d41"
# component -> the client the processor builds for it
KAFKA_CLIENTS: dict[str, Callable[[KafkaConfig], Any]] = {
    "kafka.consumer": lambda kafka: Consumer(consumer_config(kafka)),
    "kafka.dead_letter_producer": lambda kafka: Producer(producer_config(kafka)),
    "kafka.replay_consumer": lambda kafka: Consumer(replay_consumer_config(kafka)),
    "kafka.replay_producer": lambda kafka: Producer(
        producer_config(kafka, "kafka.replay_producer")
    ),
}


@pytest.fixture
def refusing_address() -> Iterator[str]:
    """A loopback address whose port is bound but not listening: every connect is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bound:
        bound.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{bound.getsockname()[1]}"


def raw_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("%")]


@pytest.mark.parametrize("component", KAFKA_CLIENTS)
def test_librdkafka_lines_become_our_json_lines_with_the_component(
    component: str, refusing_address: str, capfd: pytest.CaptureFixture[str]
) -> None:
    configure_logging(LogConfig(format="json", level="INFO"))
    client = KAFKA_CLIENTS[component](KafkaConfig(bootstrap_servers=refusing_address))
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
