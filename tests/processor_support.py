"""Run the processor as a real subprocess against a broker and the sandbox, and account for events.

``ProcessorProcess`` runs ``python -m processor run`` and reads its log, ``/metrics`` and
``/readyz`` (the port comes from the processor's own log line, so ``server.port: 0`` works).
``ProcessorStack`` is one test's world around it (the ``make_stack`` fixture of the integration
tests): the broker, the sandbox, a fresh topic, dead-letter topic and group, and the steps every
test takes (config, produce, run, wait for the commits, read the dead letters).
``identify_record`` / ``order_record`` build events whose effect in the sandbox is recognisable,
and ``account`` compares what was produced with what the sandbox received and what the
dead-letter topic holds: nothing may be lost.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from devkit.sandbox.broker import KafkaTarget
from devkit.sandbox.trengo import DEFAULT_CHANNELS, RunningSandbox
from tests.kafka_support import (
    OutgoingRecord,
    Record,
    committed_offsets,
    consume_all,
    produce,
    wait_for_committed_offsets,
)

EMAIL_CHANNEL = next(channel.id for channel in DEFAULT_CHANNELS if channel.type == "EMAIL")
PHONE_CHANNEL = next(channel.id for channel in DEFAULT_CHANNELS if channel.type != "EMAIL")
# trengo.requests_per_minute for tests that are not about the rate limit (the default is 120).
UNLIMITED_RATE = {"requests_per_minute": 1_000_000}
# Every Trengo route the processor may call (below the base URL); an id is digits, or a
# placeholder the dry run prints for an id only Trengo knows (``{contact_id}``, URL-quoted).
_ID = r"(?:[1-9][0-9]{0,18}|%7B(?:contact|ticket|profile)_id%7D)"
KNOWN_ROUTE = re.compile(
    rf"/contacts|/contacts/{_ID}|/contacts/{_ID}/custom_fields|/channels/{_ID}/contacts"
    rf"|/tickets|/tickets/{_ID}/messages|/tickets/{_ID}/labels|/labels"
    rf"|/profiles|/profiles/{_ID}|/profiles/{_ID}/custom_fields|/profiles/{_ID}/contacts"
    r"|/channels|/custom_fields"
)
TEMPLATES = [
    {"from": "Order Completed", "to": "Order {{ order_id }} completed"},
    {"from": "Product Reviewed", "to": "{{ event }} from our store"},
]


# Unmapped tracks are skipped by default (as RudderStack never sends them); tests that need
# dead letters from the map stage ask for them.
DEAD_LETTER_UNMAPPED = {"unmapped_events": "dead_letter"}


def processor_config(
    kafka: KafkaTarget,
    sandbox: RunningSandbox,
    *,
    topic: str,
    group_id: str,
    dead_letter_topic: str,
    destination: Mapping[str, Any] | None = None,
    kafka_overrides: Mapping[str, Any] | None = None,
    delivery: Mapping[str, Any] | None = None,
    pipeline: Mapping[str, Any] | None = None,
    trengo: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A config document for the processor, as a user would write it."""
    return {
        "kafka": {
            "bootstrap_servers": kafka.bootstrap_servers,
            "topic": topic,
            "group_id": group_id,
            "dead_letter_topic": dead_letter_topic,
            "session_timeout_ms": 6000,
            "commit_interval_ms": 200,
            "settings": dict(kafka.consumer_settings),
            **(kafka_overrides or {}),
        },
        "trengo": {"base_url": sandbox.base_url, **(trengo or {})},
        "destination": {
            "apiToken": sandbox.token,
            "channelId": str(EMAIL_CHANNEL),
            "channelIdentifier": "email",
            "enableDedup": True,
            "eventTemplateMap": TEMPLATES,
            **(destination or {}),
        },
        "delivery": {"retry_base_seconds": 0.2, "retry_cap_seconds": 2, **(delivery or {})},
        "pipeline": dict(pipeline or {}),
        "server": {"host": "127.0.0.1", "port": 0},
        "log": {"format": "json", "level": "INFO"},
    }


class ProcessorProcess:
    """``python -m processor run`` in a subprocess; its log goes to a file for diagnosis."""

    def __init__(self, config: Mapping[str, Any], workdir: Path, name: str = "processor") -> None:
        self.config_path = workdir / f"{name}.yaml"
        self.config_path.write_text(yaml.safe_dump(dict(config)), encoding="utf-8")
        self.log_path = workdir / f"{name}.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._run_log_start = 0  # where this run's lines begin in the (appended) log file
        self._port: int | None = None

    @staticmethod
    def run_once(args: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run one CLI command to completion, capturing its output."""
        return subprocess.run(
            [sys.executable, "-m", "processor", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_clean_environment(),
            check=False,
        )

    def start(
        self, env: Mapping[str, str] | None = None, *, max_open_files: int | None = None
    ) -> ProcessorProcess:
        """Start the processor, with at most ``max_open_files`` file descriptors if given."""
        environment = _clean_environment()
        environment.update(env or {})
        self._run_log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._port = None
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "processor", "run", "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
            )
        if max_open_files is not None:  # at once: the process opens its sockets later
            limits = (max_open_files, max_open_files)
            resource.prlimit(self._process.pid, resource.RLIMIT_NOFILE, limits)
        return self

    @property
    def process(self) -> subprocess.Popen[bytes]:
        assert self._process is not None, "not started"
        return self._process

    def stop(self, timeout: float = 40.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(f"processor did not stop in {timeout} s:\n{self.log()}") from None

    def kill(self) -> None:
        """SIGKILL, as a crashed pod."""
        self.process.kill()
        self.process.wait(10)

    def log(self) -> str:
        """The processor's output so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log lines of the current run (other output is left out)."""
        with self.log_path.open("rb") as log:
            log.seek(self._run_log_start)
            lines = log.read().decode("utf-8", errors="replace").splitlines()
        records = []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def messages(self, containing: str) -> list[str]:
        """Log messages of the current run that contain ``containing``."""
        return [
            str(record.get("msg"))
            for record in self.log_records()
            if containing in str(record.get("msg"))
        ]

    def health_port(self, timeout: float = 30.0) -> int:
        """The port of /metrics, /healthz and /readyz, read from the processor's log."""
        if self._port is None:

            def logged_port() -> int | None:
                ports = [r["port"] for r in self.log_records() if isinstance(r.get("port"), int)]
                return ports[-1] if ports else None

            wait_until(
                lambda: logged_port() is not None or self.process.poll() is not None,
                timeout,
                "the processor to log its HTTP port",
            )
            self._port = logged_port()
            assert self._port is not None, f"the processor exited:\n{self.log()}"
        return self._port

    def http_get(self, path: str) -> tuple[int, str]:
        """GET a path of the processor's HTTP server: (status, body)."""
        url = f"http://127.0.0.1:{self.health_port()}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def readyz(self) -> tuple[int, dict[str, Any]]:
        """/readyz: (status, JSON body)."""
        status, body = self.http_get("/readyz")
        return status, json.loads(body)

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` (full sample name) whose labels include ``labels``."""
        _status, text = self.http_get("/metrics")
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )

    def __enter__(self) -> ProcessorProcess:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self.kill()


@dataclass(frozen=True)
class ProcessorStack:
    """One test's processor world: broker, sandbox, its own topics and group, a work folder."""

    kafka: KafkaTarget
    sandbox: RunningSandbox
    topic: str
    dead_letter_topic: str
    group_id: str
    workdir: Path

    def config(self, **sections: Any) -> dict[str, Any]:
        """``processor_config`` for these topics and group; ``sections`` as it takes them."""
        return processor_config(
            self.kafka,
            self.sandbox,
            topic=self.topic,
            group_id=self.group_id,
            dead_letter_topic=self.dead_letter_topic,
            **sections,
        )

    def processor(
        self, config: Mapping[str, Any] | None = None, name: str = "processor"
    ) -> ProcessorProcess:
        """A processor (not started yet) with ``config``, by default ``self.config()``."""
        return ProcessorProcess(self.config() if config is None else config, self.workdir, name)

    def produce(self, records: Sequence[OutgoingRecord], **options: Any) -> list[Record]:
        """Produce to the input topic (``options`` as ``kafka_support.produce`` takes them)."""
        return produce(self.kafka.bootstrap_servers, self.topic, records, **options)

    def wait_until_committed(self, produced: Sequence[Record], timeout: float = 15.0) -> None:
        """Wait until the group committed every produced record's partition to its end."""
        wait_for_committed_offsets(
            self.kafka.bootstrap_servers,
            self.group_id,
            self.topic,
            end_offsets(produced),
            timeout=timeout,
        )

    def committed(self) -> dict[int, int]:
        """The group's committed offset per partition of the input topic."""
        return committed_offsets(self.kafka.bootstrap_servers, self.group_id, self.topic)

    def dead_letters(self, **options: Any) -> list[Record]:
        """The dead-letter topic's records (``options`` as ``consume_all`` takes them)."""
        return consume_all(self.kafka.bootstrap_servers, self.dead_letter_topic, **options)


# The ``make_stack`` fixture: ``make_stack(partitions=1, sandbox=None)``.
StackFactory = Callable[..., ProcessorStack]


def _clean_environment() -> dict[str, str]:
    """This environment without TRENGO_* variables, so a developer's settings don't leak in."""
    return {key: value for key, value in os.environ.items() if not key.startswith("TRENGO_")}


def wait_until(condition: Any, timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll ``condition()`` until truthy, or fail saying what did not happen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


ORDER_EVENT = "Order Completed"  # mapped by TEMPLATES to "Order {{ order_id }} completed"


def email_of(user: str) -> str:
    """The email address of a test user."""
    return f"{user}@example.com"


def order_subject(order_id: str) -> str:
    """The ticket subject an ``order_record`` with this order id becomes."""
    return f"Order {order_id} completed"


def identify_record(user: str, name: str = "Test User") -> OutgoingRecord:
    """An identify that finds or creates the user's contact (key = userId)."""
    traits = {"email": email_of(user), "name": name}
    value = {"type": "identify", "userId": user, "traits": traits, "messageId": f"id-{user}"}
    return user.encode(), json.dumps(value).encode(), []


def order_record(user: str, order_id: str) -> OutgoingRecord:
    """A track that opens exactly one ticket, whose subject names ``order_id``."""
    value = {
        "type": "track",
        "event": ORDER_EVENT,
        "userId": user,
        "messageId": f"order-{order_id}",
        "properties": {"order_id": order_id},
        "context": {"traits": {"email": email_of(user)}},
    }
    return user.encode(), json.dumps(value).encode(), []


def backlog(users: Sequence[str], orders_per_user: int) -> list[OutgoingRecord]:
    """Each user's identify, then their orders, users interleaved."""
    records = [identify_record(user) for user in users]
    for number in range(orders_per_user):
        records += [order_record(user, f"{user}-{number}") for user in users]
    return records


def ticket_subjects(sandbox: RunningSandbox) -> Counter[str]:
    """How many tickets the sandbox created per subject (accepted requests only)."""
    return Counter(
        str(body.get("subject"))
        for request in sandbox.requests()
        if request.method == "POST"
        and request.route.endswith("/tickets")
        and request.status == 201
        and isinstance(body := request.json_body, dict)
    )


def contact_emails(sandbox: RunningSandbox) -> set[str]:
    """The email addresses of the sandbox's contacts."""
    contacts = sandbox.snapshot()["contacts"]
    assert isinstance(contacts, list)
    return {str(c["email"]) for c in contacts if isinstance(c, dict) and c.get("email")}


@dataclass(frozen=True)
class Ledger:
    """What became of the produced events."""

    lost: list[Record]  # neither delivered nor dead-lettered
    duplicates: int  # tickets opened more than once (extra ones)
    delivered: int
    dead_lettered: int


def account(
    produced: Sequence[Record], sandbox: RunningSandbox, dead_letters: Sequence[Record]
) -> Ledger:
    """Match every produced event with its effect in the sandbox or its dead letter.

    An order event is delivered when its ticket exists, an identify when its contact does; any
    other event must be in the dead-letter topic.
    """
    tickets = ticket_subjects(sandbox)
    emails = contact_emails(sandbox)
    lettered = {_original_position(letter) for letter in dead_letters}
    lost, delivered = [], 0
    for record in produced:
        if (record.topic, record.partition, record.offset) in lettered:
            continue
        if _delivery_evidence(record, tickets, emails):
            delivered += 1
        else:
            lost.append(record)
    duplicates = sum(count - 1 for count in tickets.values() if count > 1)
    return Ledger(lost, duplicates, delivered, len(lettered))


def header(record: Record, name: str) -> str | None:
    """The one value of header ``name`` (None when absent)."""
    values = [value for key, value in record.headers if key == name]
    assert len(values) <= 1, f"{name} repeated: {values}"
    return values[0].decode() if values and values[0] is not None else None


def _original_position(letter: Record) -> tuple[str | None, int, int]:
    partition, offset = header(letter, "x-original-partition"), header(letter, "x-original-offset")
    return header(letter, "x-original-topic"), int(partition or -1), int(offset or -1)


def _delivery_evidence(record: Record, tickets: Counter[str], emails: set[str]) -> bool:
    try:
        event = json.loads(record.value or b"")
    except ValueError:
        return False
    if not isinstance(event, dict):
        return False
    if event.get("type") == "identify":
        return email_of(str(event.get("userId"))) in emails
    properties = event.get("properties")
    if event.get("event") != ORDER_EVENT or not isinstance(properties, dict):
        return False
    return tickets[order_subject(str(properties.get("order_id")))] > 0


def end_offsets(produced: Sequence[Record]) -> dict[int, int]:
    """Per partition, the offset after the last produced record."""
    ends: dict[int, int] = {}
    for record in produced:
        ends[record.partition] = max(ends.get(record.partition, 0), record.offset + 1)
    return ends
