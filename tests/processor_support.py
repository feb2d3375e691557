"""Run the processor as a real subprocess against a broker and the sandbox."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from processor.sandbox.broker import KafkaTarget
from processor.sandbox.trengo import DEFAULT_CHANNELS, RunningSandbox

EMAIL_CHANNEL = next(channel.id for channel in DEFAULT_CHANNELS if channel.type == "EMAIL")
PHONE_CHANNEL = next(channel.id for channel in DEFAULT_CHANNELS if channel.type != "EMAIL")
TEMPLATES = [
    {"from": "Order Completed", "to": "Order {{ order_id }} completed"},
    {"from": "Product Reviewed", "to": "{{ event }} from our store"},
]


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
        "trengo": {"base_url": sandbox.base_url},
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

    def start(self, env: Mapping[str, str] | None = None) -> ProcessorProcess:
        """Start the processor."""
        environment = _clean_environment()
        environment.update(env or {})
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "processor", "run", "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
            )
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

    def __enter__(self) -> ProcessorProcess:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self.kill()


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
