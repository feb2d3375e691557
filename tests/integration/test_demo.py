"""`make run`'s command: the demo finishes with a summary, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.processor_support import wait_until

pytestmark = pytest.mark.integration


def start_demo() -> subprocess.Popen[str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TRENGO_")}
    environment.pop("KAFKA_BOOTSTRAP_SERVERS", None)  # the demo must bring its own broker
    return subprocess.Popen(
        [sys.executable, "-m", "processor", "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
    )


def summary_value(output: str, label: str) -> str:
    for line in output.splitlines():
        if line.strip().startswith(label):
            return line.strip()[len(label) :].split()[0]
    raise AssertionError(f"no {label!r} line in:\n{output}")


def test_demo_delivers_the_samples_and_prints_the_summary() -> None:
    demo = start_demo()
    output, _ = demo.communicate(timeout=180)
    assert demo.returncode == 0, output
    assert summary_value(output, "events produced") == "40"
    assert summary_value(output, "delivered") == "34"
    assert summary_value(output, "dead-lettered") == "2"
    assert "(decode 1, map 1)" in output
    assert summary_value(output, "skipped") == "4"
    assert "(consent 1, integrations 1, message_type 1, unmapped_event 1)" in output
    calls = int(summary_value(output, "Trengo API calls"))
    assert calls < 40  # under one call per event: cached contacts, skipped no-op updates


def test_ctrl_c_stops_the_demo_and_everything_it_started() -> None:
    demo = start_demo()
    process = psutil.Process(demo.pid)
    wait_until(lambda: process.children(recursive=True), timeout=30, what="the embedded broker")
    started = process.children(recursive=True)
    time.sleep(1.0)  # somewhere in the middle of the run
    demo.send_signal(signal.SIGINT)
    output, _ = demo.communicate(timeout=60)
    assert demo.returncode in {0, 130}, output  # 0 when the demo had just finished
    assert "Traceback" not in output
    assert "summary" in output
    time.sleep(0.5)
    stray = [child.pid for child in started if child.is_running() and child.status() != "zombie"]
    assert stray == [], f"still running after Ctrl-C: {stray}"
