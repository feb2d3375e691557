"""Dead letters: original bytes, the operator's headers, and acknowledgement before done."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from processor.config import KafkaConfig
from processor.engine.dlq import (
    MAX_REASON_BYTES,
    DeadLetter,
    DeadLetterError,
    DeadLetterWriter,
    producer_config,
)
from tests.unit.engine.fakes import FakeProducer

FIRST_ATTEMPT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))


def letter(**changes: object) -> DeadLetter:
    fields: dict[str, object] = {
        "key": b"user-1",
        "value": b"{}",
        "headers": (("trace", b"t1"), ("x-error-stage", b"decode"), ("empty", None)),
        "topic": "events",
        "partition": 2,
        "offset": 41,
        "stage": "deliver",
        "reason": "create_ticket: HTTP 422",
        "status": 422,
        "attempts": 3,
        "first_attempt_at": FIRST_ATTEMPT,
        **changes,
    }
    return DeadLetter(**fields)  # type: ignore[arg-type]


def test_headers_keep_the_originals_and_replace_stale_error_facts() -> None:
    assert letter().record_headers() == [
        ("trace", b"t1"),
        ("empty", None),
        ("x-error-stage", b"deliver"),
        ("x-error-reason", b"create_ticket: HTTP 422"),
        ("x-error-status", b"422"),
        ("x-original-topic", b"events"),
        ("x-original-partition", b"2"),
        ("x-original-offset", b"41"),
        ("x-attempts", b"3"),
        ("x-first-attempt-at", b"2026-01-02T01:04:05+00:00"),
    ]


def test_no_status_header_without_an_http_status_and_long_reasons_are_cut() -> None:
    headers = dict(letter(status=None, reason="é" * MAX_REASON_BYTES).record_headers())
    assert "x-error-status" not in headers
    reason = headers["x-error-reason"]
    assert reason is not None
    assert len(reason) <= MAX_REASON_BYTES
    assert reason.decode() == "é" * (MAX_REASON_BYTES // 2)


def test_the_producer_shares_security_settings_but_not_consumer_ones() -> None:
    kafka = KafkaConfig(
        bootstrap_servers="broker:9093",
        settings={
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "PLAIN",
            "session.timeout.ms": 6000,
            "fetch.wait.max.ms": 50,
            "enable.partition.eof": True,
        },
    )
    config = producer_config(kafka)
    assert config["bootstrap.servers"] == "broker:9093"
    assert (config["enable.idempotence"], config["acks"]) == (True, "all")
    assert (config["security.protocol"], config["sasl.mechanism"]) == ("SASL_SSL", "PLAIN")
    assert not {"session.timeout.ms", "fetch.wait.max.ms", "enable.partition.eof"} & set(config)


async def test_a_letter_is_acknowledged_only_by_a_successful_delivery_report() -> None:
    producer = FakeProducer()
    writer = DeadLetterWriter(producer, "events.dlq")
    acknowledged = writer.send(letter())
    assert not acknowledged.done()  # reports come from poll
    producer.poll()
    await acknowledged
    assert producer.produced[0].topic == "events.dlq"

    producer.fail_with = "Broker: Message timed out"
    refused = writer.send(letter())
    producer.poll()
    with pytest.raises(DeadLetterError, match="timed out"):
        await refused


async def test_a_full_producer_queue_fails_the_letter_at_once() -> None:
    class FullProducer(FakeProducer):
        def produce(self, *_args: object, **_kwargs: object) -> None:
            raise BufferError("Local: Queue full")

    with pytest.raises(DeadLetterError, match="Queue full"):
        await DeadLetterWriter(FullProducer(), "events.dlq").send(letter())


def test_the_first_attempt_is_written_in_utc() -> None:
    headers = dict(letter(first_attempt_at=datetime(2026, 5, 1, tzinfo=UTC)).record_headers())
    assert headers["x-first-attempt-at"] == b"2026-05-01T00:00:00+00:00"


class SizeLimitedProducer(FakeProducer):
    """Refuses records over ``max_bytes`` as librdkafka does: at produce, or in the report."""

    def __init__(self, max_bytes: int, *, at_produce: bool) -> None:
        super().__init__()
        self.max_bytes = max_bytes
        self.at_produce = at_produce
        self.refused = 0

    def produce(self, topic: str, value: bytes | None = None, **kwargs: Any) -> None:
        headers = kwargs.get("headers") or []
        size = len(value or b"") + sum(len(n) + len(v or b"") for n, v in headers)
        if size <= self.max_bytes:
            super().produce(topic, value, **kwargs)
            return
        self.refused += 1
        too_large = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
        if self.at_produce:
            raise KafkaException(too_large)
        kwargs["on_delivery"](too_large, None)


@pytest.mark.parametrize("at_produce", [True, False], ids=["producer-check", "broker-refusal"])
async def test_a_letter_too_large_for_the_broker_is_written_truncated(at_produce: bool) -> None:
    producer = SizeLimitedProducer(1000, at_produce=at_produce)
    writer = DeadLetterWriter(producer, "events.dlq")
    original = b'{"traits": "' + b"x" * 2986 + b'"}'  # 3,000 bytes

    acknowledged = writer.send(letter(value=original))
    producer.poll()
    await acknowledged

    (written,) = producer.produced
    headers = dict(written.headers)
    assert (headers["x-truncated"], headers["x-original-size"]) == (b"true", b"3000")
    assert written.value == original[: len(written.value or b"")]
    assert 250 <= len(written.value or b"") <= 750  # halved until it fit
    assert headers["x-error-reason"] == b"create_ticket: HTTP 422"
    assert producer.refused == 2


async def test_a_letter_too_large_even_without_a_value_fails() -> None:
    producer = SizeLimitedProducer(10, at_produce=True)
    refused = DeadLetterWriter(producer, "events.dlq").send(letter(value=b"{}"))
    with pytest.raises(DeadLetterError, match=r"(?i)too large"):
        await refused


def test_a_letter_that_fits_has_no_truncation_headers() -> None:
    names = [name for name, _value in letter().record_headers()]
    assert "x-truncated" not in names and "x-original-size" not in names
