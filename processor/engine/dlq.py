"""The dead-letter topic: what failed, why, and where it came from, with the original bytes.

A dead-lettered event is done only when the broker acknowledged its record; until then its
offset is not committed. Header names are part of the operator contract (docs/errors.md).

An original value near the broker's ``message.max.bytes`` no longer fits once the error headers
are added. A record the producer or the broker refuses as too large is sent again with its value
cut to half, and again, until it fits (or nothing is left to cut), marked ``x-truncated: true``
with ``x-original-size`` (the value's bytes): a retry could never make it fit, and the event's
offset would never be committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from confluent_kafka import KafkaError, KafkaException

from processor.config import KafkaConfig
from processor.logging import kafka_logger

HEADER_ERROR_STAGE = "x-error-stage"
HEADER_ERROR_REASON = "x-error-reason"
HEADER_ERROR_STATUS = "x-error-status"
HEADER_ORIGINAL_TOPIC = "x-original-topic"
HEADER_ORIGINAL_PARTITION = "x-original-partition"
HEADER_ORIGINAL_OFFSET = "x-original-offset"
HEADER_ATTEMPTS = "x-attempts"
HEADER_FIRST_ATTEMPT_AT = "x-first-attempt-at"
HEADER_TRUNCATED = "x-truncated"
HEADER_ORIGINAL_SIZE = "x-original-size"
# Set by `dlq replay` on the events it re-publishes; a replayed event that fails again keeps
# it, and replay leaves such records alone unless asked (the loop guard).
HEADER_REPLAYED_AT = "x-replayed-at"

DLQ_HEADERS = (
    HEADER_ERROR_STAGE,
    HEADER_ERROR_REASON,
    HEADER_ERROR_STATUS,
    HEADER_ORIGINAL_TOPIC,
    HEADER_ORIGINAL_PARTITION,
    HEADER_ORIGINAL_OFFSET,
    HEADER_ATTEMPTS,
    HEADER_FIRST_ATTEMPT_AT,
    HEADER_TRUNCATED,
    HEADER_ORIGINAL_SIZE,
)

Stage = Literal["decode", "validate", "transform", "map", "deliver"]
Headers = Sequence[tuple[str, bytes | None]]
MAX_REASON_BYTES = 2000
# What "too large" looks like: from the producer's own check or from the broker.
_TOO_LARGE = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE})


# kafka.settings keys that only a consumer understands; the rest (security, SASL, ...) also
# apply to the dead-letter and replay producers.
_CONSUMER_ONLY_PREFIXES = (
    "group.",
    "session.",
    "heartbeat.",
    "auto.offset.",
    "enable.auto.",
    "enable.partition.eof",
    "fetch.",
    "max.poll.",
    "partition.assignment",
    "isolation.level",
    "queued.",
)


def producer_config(
    kafka: KafkaConfig, component: str = "kafka.dead_letter_producer"
) -> dict[str, Any]:
    """Idempotent ``acks=all`` producer settings plus the shared ``kafka.settings``; librdkafka's
    log lines go to Python logging tagged ``component``."""
    return {
        "bootstrap.servers": kafka.bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "log.connection.close": False,
        **{
            key: value
            for key, value in kafka.settings.items()
            if not key.startswith(_CONSUMER_ONLY_PREFIXES)
        },
        "logger": kafka_logger(component),
    }


class DeadLetterError(Exception):
    """The dead-letter record was not acknowledged; the event is not done."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One failed event and the facts an operator needs to decide about it."""

    key: bytes | None
    value: bytes | None
    headers: Headers
    topic: str
    partition: int
    offset: int
    stage: Stage
    reason: str
    status: int | None
    attempts: int
    first_attempt_at: datetime
    original_size: int | None = None  # set once the value was truncated

    def truncated(self) -> DeadLetter | None:
        """This letter with its value cut to half; None when there is no value left to cut."""
        if not self.value:
            return None
        size = len(self.value) if self.original_size is None else self.original_size
        return replace(self, value=self.value[: len(self.value) // 2], original_size=size)

    def record_headers(self) -> list[tuple[str, bytes | None]]:
        """Original headers (minus stale error headers) followed by the error headers."""
        kept = [(name, value) for name, value in self.headers if name not in DLQ_HEADERS]
        facts: list[tuple[str, str]] = [
            (HEADER_ERROR_STAGE, self.stage),
            (HEADER_ERROR_REASON, self.reason.encode()[:MAX_REASON_BYTES].decode(errors="ignore")),
            (HEADER_ORIGINAL_TOPIC, self.topic),
            (HEADER_ORIGINAL_PARTITION, str(self.partition)),
            (HEADER_ORIGINAL_OFFSET, str(self.offset)),
            (HEADER_ATTEMPTS, str(self.attempts)),
            (HEADER_FIRST_ATTEMPT_AT, self.first_attempt_at.astimezone(UTC).isoformat()),
        ]
        if self.status is not None:
            facts.insert(2, (HEADER_ERROR_STATUS, str(self.status)))
        if self.original_size is not None:
            facts += [(HEADER_TRUNCATED, "true"), (HEADER_ORIGINAL_SIZE, str(self.original_size))]
        return kept + [(name, text.encode()) for name, text in facts]


class DeadLetterWriter:
    """Produces dead letters and resolves a future when the broker acknowledged each one.

    The producer's delivery callbacks run inside ``poll``; ``serve`` calls it from the event
    loop so callbacks resolve futures on the loop's own thread.
    """

    def __init__(self, producer: Any, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    @property
    def topic(self) -> str:
        """The dead-letter topic name."""
        return self._topic

    def send(self, letter: DeadLetter) -> asyncio.Future[None]:
        """Queue one record; the future fails with DeadLetterError if the broker refuses it."""
        acknowledged: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._produce(letter, acknowledged)
        return acknowledged

    def _produce(self, letter: DeadLetter, acknowledged: asyncio.Future[None]) -> None:
        def on_delivery(error: Any, _message: Any) -> None:
            if acknowledged.done():
                return
            if error is None:
                acknowledged.set_result(None)
            elif not self._retry_smaller(error, letter, acknowledged):
                acknowledged.set_exception(DeadLetterError(str(error)))

        try:
            self._producer.produce(
                self._topic,
                value=letter.value,
                key=letter.key,
                headers=letter.record_headers(),
                on_delivery=on_delivery,
            )
        except KafkaException as error:
            if not self._retry_smaller(error.args[0], letter, acknowledged):
                acknowledged.set_exception(DeadLetterError(f"produce failed: {error}"))
        except BufferError as error:
            acknowledged.set_exception(DeadLetterError(f"produce failed: {error}"))

    def _retry_smaller(
        self, error: object, letter: DeadLetter, acknowledged: asyncio.Future[None]
    ) -> bool:
        """Produce ``letter`` truncated if ``error`` says it is too large; False otherwise."""
        if not (isinstance(error, KafkaError) and error.code() in _TOO_LARGE):
            return False
        smaller = letter.truncated()
        if smaller is None:
            return False
        self._produce(smaller, acknowledged)
        return True

    async def serve(self, interval_seconds: float = 0.02) -> None:
        """Run delivery callbacks until cancelled."""
        while True:
            self._producer.poll(0)
            await asyncio.sleep(interval_seconds)

    def flush(self, timeout_seconds: float) -> int:
        """Wait for outstanding records; returns how many are still not acknowledged."""
        remaining: int = self._producer.flush(timeout_seconds)
        return remaining

    def close(self) -> None:
        """Drop what is still unacknowledged (its events were not committed) and disconnect now,
        while the broker is still there: a producer left to the garbage collector keeps
        reconnecting to a broker that has gone."""
        self._producer.purge()
        self._producer.close()
