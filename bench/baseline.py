"""The throughput baseline: the least a Kafka consumer can do to post the processor's requests.

``python -m bench.baseline --config FILE`` reads the same config file as the processor (the
Kafka, Trengo and destination sections) and, for every ``bench.tracks`` event, posts the same
requests the processor does: one ``GET /contacts?term=`` per user to find the contact id (then
remembered), and one ``POST /tickets`` with the same body. It uses an ``httpx.AsyncClient`` on
the same ``httpx_aiohttp.AiohttpTransport`` with the same connection limit as the processor
(``processor.trengo.client``), so both pay the same HTTP client cost, with at most
``delivery.max_in_flight`` requests in flight.

Everything else is left out: no pydantic validation, no mapping or template engine (the subject
is ``bench.tracks.SUBJECT_FORMAT``), no ordering per key, no retries, no rate limiter, no
metrics, no dead letters. Everything runs on one thread: the event loop takes what the consumer
has already fetched (``consume`` with timeout 0). The highest finished offset of each partition
is committed every 1,000 finished events and whenever the consumer has nothing left to give, and
once more on SIGTERM/SIGINT before it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml
from confluent_kafka import Consumer, Message, TopicPartition
from httpx_aiohttp import AiohttpTransport

from bench.tracks import SUBJECT_FORMAT

COMMIT_EVERY = 1_000
_BATCH_SIZE = 500
_IDLE_SECONDS = 0.005


class Baseline:
    """One consumer, one HTTP client, ``concurrency`` requests in flight at most."""

    def __init__(self, config: dict[str, Any]) -> None:
        kafka, trengo, destination = config["kafka"], config["trengo"], config["destination"]
        self._consumer = Consumer(
            {
                "bootstrap.servers": kafka["bootstrap_servers"],
                "group.id": kafka["group_id"],
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": kafka["session_timeout_ms"],
                **kafka["settings"],
            }
        )
        self._topic = kafka["topic"]
        self._base_url = trengo["base_url"].rstrip("/")
        self._channel_id = destination["channelId"]
        self._concurrency: int = config.get("delivery", {}).get("max_in_flight", 256)
        self._http = httpx.AsyncClient(
            transport=AiohttpTransport(limits=httpx.Limits(max_connections=self._concurrency)),
            headers={
                "Authorization": f"Bearer {destination['apiToken']}",
                "Accept": "application/json",
                "Content-Type": "application/json",
            },
            timeout=httpx.Timeout(trengo.get("timeout_seconds", 10.0)),
        )
        self._contact_ids: dict[str, asyncio.Future[int]] = {}
        self._finished_offsets: dict[tuple[str, int], int] = {}
        self._uncommitted = 0
        self._failures = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Consume and post until ``stop`` is set; then commit and close."""
        slots = asyncio.Semaphore(self._concurrency)
        in_flight: set[asyncio.Task[None]] = set()
        self._consumer.subscribe([self._topic])
        try:
            while not stop.is_set():
                messages = self._consumer.consume(_BATCH_SIZE, timeout=0)
                if not messages:
                    if not in_flight:
                        self._commit()
                    await asyncio.sleep(_IDLE_SECONDS)
                for message in messages:
                    if message.error() is not None:
                        continue
                    await slots.acquire()
                    task = asyncio.create_task(self._deliver(message, slots))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
            await asyncio.gather(*in_flight)
        finally:
            self._commit()
            self._consumer.close()
            await self._http.aclose()
        if self._failures:
            print(f"{self._failures} events failed (not retried)", file=sys.stderr)

    async def _deliver(self, message: Message, slots: asyncio.Semaphore) -> None:
        try:
            event = json.loads(message.value() or b"")
            contact_id = await self._contact_id(event["context"]["traits"]["email"])
            body = {
                "contact_id": contact_id,
                "channel_id": self._channel_id,
                "subject": SUBJECT_FORMAT.format(**event["properties"]),
            }
            response = await self._http.post(f"{self._base_url}/tickets", json=body)
            response.raise_for_status()
        except (httpx.HTTPError, LookupError, ValueError):
            self._failures += 1
        finally:
            slots.release()
            self._finished(message)

    async def _contact_id(self, email: str) -> int:
        lookup = self._contact_ids.get(email)
        if lookup is None:  # one search per user, however many of its events wait for it
            lookup = self._contact_ids[email] = asyncio.ensure_future(self._search(email))
        return await lookup

    async def _search(self, email: str) -> int:
        params = {"page": "1", "term": email}
        response = await self._http.get(f"{self._base_url}/contacts", params=params)
        response.raise_for_status()
        found = [c for c in response.json()["data"] if c["email"].lower() == email.lower()]
        contact_id: int = found[0]["id"]
        return contact_id

    def _finished(self, message: Message) -> None:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        if topic is None or partition is None or offset is None:
            return  # not a record (consume errors are skipped before)
        previous = self._finished_offsets.get((topic, partition), 0)
        self._finished_offsets[(topic, partition)] = max(previous, offset + 1)
        self._uncommitted += 1
        if self._uncommitted >= COMMIT_EVERY:
            self._commit()

    def _commit(self) -> None:
        if not self._uncommitted:
            return
        offsets = [
            TopicPartition(topic, partition, offset)
            for (topic, partition), offset in self._finished_offsets.items()
        ]
        self._consumer.commit(offsets=offsets, asynchronous=False)
        self._uncommitted = 0


async def _run_until_signal(config: dict[str, Any]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stop.set)
    await Baseline(config).run(stop)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m bench.baseline --config FILE``."""
    parser = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="a processor config file")
    args = parser.parse_args(argv)
    config = yaml.safe_load(args.config.read_text(encoding="utf-8"))
    asyncio.run(_run_until_signal(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
