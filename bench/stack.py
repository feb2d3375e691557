"""The real parts a benchmark runs against: the Trengo sandbox and processors, as subprocesses.

The sandbox (``python -m processor sandbox``) and every processor (``python -m processor run``)
run in their own processes, so neither shares a GIL with the other or with the benchmark
driver, as they would not in production. Kafka comes from ``devkit.sandbox.broker``
(``KAFKA_BOOTSTRAP_SERVERS``, else Docker, else the embedded broker).

Everything started here is stopped when its ``with`` block ends; logs go to a work directory so
a failed run can be diagnosed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import yaml
from confluent_kafka import Consumer, Producer, TopicPartition

from devkit.sandbox.broker import KafkaTarget, create_topics

_LOOPBACK = "127.0.0.1"
_START_TIMEOUT_SECONDS = 20.0
_STOP_TIMEOUT_SECONDS = 40.0
_POLL_SECONDS = 0.25
_LOG_TAIL_CHARS = 4000
# Enough to keep every request of a benchmark run in the sandbox's recording.
_MAX_RECORDED_REQUESTS = 5_000_000
_IDLE_READ_SECONDS = 2.0
PROCESSOR_PROGRAM = ("-m", "processor", "run")
BASELINE_PROGRAM = ("-m", "bench.baseline")


class StackError(RuntimeError):
    """A part did not start, died, or did not finish in time."""


def _clean_environment() -> dict[str, str]:
    """This environment without TRENGO_* variables, so a developer's settings don't leak in."""
    return {key: value for key, value in os.environ.items() if not key.startswith("TRENGO_")}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((_LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def _tail(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")[-_LOG_TAIL_CHARS:]


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM once: a second one makes a processor exit at once instead of gracefully."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)


def _wait_or_kill(process: subprocess.Popen[bytes]) -> int:
    """Wait for a terminated process, SIGKILL it if it does not stop; its exit code."""
    try:
        return process.wait(_STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


class SandboxProcess:
    """``trengo-processor sandbox`` on a free loopback port, rate limit on, with one token."""

    def __init__(
        self, workdir: Path, *, requests_per_minute: int, latency_ms: float, token: str
    ) -> None:
        self.token = token
        self._arguments = [
            "--requests-per-minute",
            str(requests_per_minute),
            "--latency-ms",
            str(latency_ms),
            "--token",
            token,
            "--max-recorded-requests",
            str(_MAX_RECORDED_REQUESTS),
        ]
        self._log_path = workdir / "sandbox.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._port = 0
        self._admin = httpx.Client(timeout=60.0)

    @property
    def base_url(self) -> str:
        """The API root the processors are configured with."""
        return f"http://{_LOOPBACK}:{self._port}/api/v2"

    def __enter__(self) -> Self:
        self._port = _free_port()
        command = [sys.executable, "-m", "processor", "sandbox", "--port", str(self._port)]
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [*command, *self._arguments],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_clean_environment(),
            )
        self._wait_until_healthy()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._admin.close()
        if self._process is not None:
            _terminate(self._process)
            _wait_or_kill(self._process)

    def reset(self) -> None:
        """Forget contacts, tickets, recorded requests and rate windows."""
        self._admin_call("POST", "reset").raise_for_status()

    @property
    def pid(self) -> int:
        """Process id of the running sandbox."""
        if self._process is None:
            raise StackError("the sandbox is not running")
        return self._process.pid

    def recorded_requests(self, since: int = 0) -> list[dict[str, Any]]:
        """Every API request since the last reset numbered ``since`` or later, oldest first
        (``index``, ``status``, ``at``, ``method``, ``route``, ...)."""
        answer = self._admin_call("GET", "requests", params={"since": str(since)})
        answer.raise_for_status()
        requests: list[dict[str, Any]] = answer.json()["requests"]
        return requests

    def state(self) -> dict[str, Any]:
        """Contacts, tickets and counts (``GET /__admin/state``)."""
        answer = self._admin_call("GET", "state")
        answer.raise_for_status()
        state: dict[str, Any] = answer.json()
        return state

    def _admin_call(self, method: str, name: str, **options: Any) -> httpx.Response:
        url = f"http://{_LOOPBACK}:{self._port}/__admin/{name}"
        return self._admin.request(method, url, **options)

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise StackError(f"the sandbox exited:\n{_tail(self._log_path)}")
            try:
                if self._admin_call("GET", "health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(_POLL_SECONDS)
        raise StackError(f"the sandbox did not answer in time:\n{_tail(self._log_path)}")


def processor_config(
    kafka: KafkaTarget,
    *,
    base_url: str,
    token: str,
    requests_per_minute: int,
    topic: str,
    group_id: str,
    destination: Mapping[str, Any],
) -> dict[str, Any]:
    """A processor config document, as an operator would write it."""
    return {
        "kafka": {
            "bootstrap_servers": kafka.bootstrap_servers,
            "topic": topic,
            "group_id": group_id,
            "dead_letter_topic": dead_letter_topic(topic),
            "session_timeout_ms": 6000,
            "commit_interval_ms": 500,
            "settings": dict(kafka.consumer_settings),
        },
        "trengo": {"base_url": base_url, "requests_per_minute": requests_per_minute},
        "destination": {**destination, "apiToken": token},
        "server": {"host": _LOOPBACK, "port": 0},
        "log": {"format": "json", "level": "WARNING"},
    }


def dead_letter_topic(topic: str) -> str:
    """The dead-letter topic the benchmark configures for ``topic``."""
    return f"{topic}.dlq"


def new_topic(kafka: KafkaTarget, prefix: str, partitions: int) -> str:
    """A freshly created topic named ``<prefix>-<random>``, and its dead-letter topic."""
    topic = f"{prefix}-{uuid.uuid4().hex[:8]}"
    create_topics(kafka.bootstrap_servers, [topic, dead_letter_topic(topic)], partitions)
    return topic


class ProcessorFleet:
    """``replicas`` processors with the same config (one consumer group, one token).

    ``program`` is what runs with ``--config FILE``: the processor, or ``BASELINE_PROGRAM``.
    """

    def __init__(
        self,
        workdir: Path,
        config: Mapping[str, Any],
        replicas: int,
        *,
        program: Sequence[str] = PROCESSOR_PROGRAM,
    ) -> None:
        name = f"{config['kafka']['group_id']}"
        self._config_path = workdir / f"{name}.yaml"
        self._config_path.write_text(yaml.safe_dump(dict(config)), encoding="utf-8")
        self._log_paths = [workdir / f"{name}-{number}.log" for number in range(replicas)]
        self._command = [sys.executable, *program, "--config", str(self._config_path)]
        self._processes: list[subprocess.Popen[bytes]] = []

    @property
    def pids(self) -> list[int]:
        """Process ids of the running members."""
        return [process.pid for process in self._processes]

    def __enter__(self) -> Self:
        command = self._command
        for log_path in self._log_paths:
            with log_path.open("ab") as log:
                self._processes.append(
                    subprocess.Popen(
                        command, stdout=log, stderr=subprocess.STDOUT, env=_clean_environment()
                    )
                )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> list[int]:
        """SIGTERM every processor (all at once) and wait; their exit codes."""
        for process in self._processes:
            _terminate(process)
        codes = [_wait_or_kill(process) for process in self._processes]
        self._processes = []
        return codes

    def check_running(self) -> None:
        """Raise StackError with its log if a processor exited."""
        for process, log_path in zip(self._processes, self._log_paths, strict=False):
            if process.poll() is not None:
                raise StackError(
                    f"a processor exited with {process.returncode}:\n{_tail(log_path)}"
                )


def produce(
    kafka: KafkaTarget, topic: str, records: Iterable[tuple[bytes, bytes]]
) -> dict[int, int]:
    """Produce (key, value) records; the end offset (last offset + 1) of every partition written."""
    end_offsets: dict[int, int] = {}
    failures: list[str] = []

    def delivered(error: Any, message: Any) -> None:
        if error is not None:
            failures.append(str(error))
            return
        partition, offset = message.partition(), message.offset()
        end_offsets[partition] = max(end_offsets.get(partition, 0), offset + 1)

    producer = Producer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "enable.idempotence": True,
            "linger.ms": 20,
        }
    )
    for key, value in records:
        producer.produce(topic, key=key, value=value, on_delivery=delivered)
        producer.poll(0)
    if producer.flush(60) or failures:
        raise StackError(f"producing failed: {failures[:3] or 'not flushed in time'}")
    return end_offsets


def wait_for_commits(
    kafka: KafkaTarget,
    *,
    group_id: str,
    topic: str,
    end_offsets: Mapping[int, int],
    fleet: ProcessorFleet,
    timeout_seconds: float,
) -> None:
    """Return once the group committed every partition up to its end offset."""
    consumer = Consumer(kafka.consumer_config(group_id))
    partitions = [TopicPartition(topic, partition) for partition in sorted(end_offsets)]
    deadline = time.monotonic() + timeout_seconds
    try:
        while time.monotonic() < deadline:
            fleet.check_running()
            committed = consumer.committed(partitions, timeout=10)
            if all(tp.offset >= end_offsets[tp.partition] for tp in committed):
                return
            time.sleep(_POLL_SECONDS)
    finally:
        consumer.close()
    raise StackError(f"group {group_id} did not commit everything in {timeout_seconds:.0f} s")


def count_records(kafka: KafkaTarget, topic: str, partitions: Sequence[int]) -> int:
    """How many records ``topic`` holds: read from the start until nothing came for a while."""
    consumer = Consumer(
        {**kafka.consumer_config(f"bench-count-{topic}"), "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, partition, 0) for partition in partitions])
    count = 0
    idle_since = time.monotonic()
    try:
        while time.monotonic() - idle_since < _IDLE_READ_SECONDS:
            batch = consumer.consume(num_messages=1000, timeout=_POLL_SECONDS)
            records = [message for message in batch if message.error() is None]
            if records:
                count += len(records)
                idle_since = time.monotonic()
    finally:
        consumer.close()
    return count
