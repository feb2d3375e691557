"""The bare consumer: the least any Kafka consumer of a RudderStack topic does per event.

``python -m bench.bare --config FILE`` reads the Kafka section of a processor config file and
loops: ``consume`` a batch, ``json.loads`` every value, and commit the next offset of each
partition synchronously every ``kafka.commit_interval_ms`` (the processor's commit pacing) and
whenever nothing new arrived, until SIGTERM/SIGINT. Nothing else: no validation, no filter, no
ordering, no metrics, no HTTP. It is the yardstick of the site-stream benchmark
(``bench.sitestream``): a processor that skips an event cannot be cheaper than this loop, and
the ratio says how close it comes.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import yaml
from confluent_kafka import Consumer, TopicPartition

BATCH_SIZE = 500  # the processor's (processor.engine.consumer.BATCH_SIZE)
POLL_TIMEOUT_SECONDS = 0.05
DEFAULT_COMMIT_INTERVAL_MS = 200


class BareLoop:
    """One consumer on one thread: consume, parse, commit."""

    def __init__(self, kafka: dict[str, Any]) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": kafka["bootstrap_servers"],
                "group.id": kafka["group_id"],
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": kafka.get("session_timeout_ms", 45_000),
                **kafka.get("settings", {}),
            }
        )
        self._topic: str = kafka["topic"]
        self._commit_seconds = kafka.get("commit_interval_ms", DEFAULT_COMMIT_INTERVAL_MS) / 1000
        self._next_offsets: dict[tuple[str, int], int] = {}
        self._committed: dict[tuple[str, int], int] = {}
        self.stopped = False

    def run(self) -> None:
        """Consume, parse and commit until ``stopped``; then commit and close."""
        self._consumer.subscribe([self._topic])
        next_offsets = self._next_offsets
        last_commit = time.monotonic()
        try:
            while not self.stopped:
                # Any: records of a consume that returned no error have every field set.
                messages: list[Any] = self._consumer.consume(
                    BATCH_SIZE, timeout=POLL_TIMEOUT_SECONDS
                )
                for message in messages:
                    if message.error() is None:
                        json.loads(message.value() or b"null")
                        next_offsets[message.topic(), message.partition()] = message.offset() + 1
                now = time.monotonic()
                if not messages or now - last_commit >= self._commit_seconds:
                    self._commit()
                    last_commit = now
        finally:
            self._commit()
            self._consumer.close()

    def _commit(self) -> None:
        if self._next_offsets == self._committed:
            return
        offsets = [
            TopicPartition(topic, partition, offset)
            for (topic, partition), offset in self._next_offsets.items()
        ]
        self._consumer.commit(offsets=offsets, asynchronous=False)
        self._committed = dict(self._next_offsets)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m bench.bare --config FILE``."""
    parser = argparse.ArgumentParser(prog="python -m bench.bare", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="a processor config file")
    args = parser.parse_args(argv)
    config = yaml.safe_load(args.config.read_text(encoding="utf-8"))
    loop = BareLoop(config["kafka"])

    def stop(_signal: int, _frame: FrameType | None) -> None:
        loop.stopped = True

    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, stop)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
