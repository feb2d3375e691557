"""`make run`'s command: the demo finishes with a summary and what Trengo received, every line on
stderr is one of our log lines, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.processor_support import wait_until

pytestmark = pytest.mark.integration


# The demo logs in the console format (processor/logging.py): time, level, logger: message.
CONSOLE_LOG_LINE = re.compile(r"\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) +[\w.]+: ")
SAMPLE_USERS = 8
SAMPLE_TICKETS = 25  # 3 orders per user and one support request


def start_demo(stderr: int = subprocess.STDOUT) -> subprocess.Popen[str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TRENGO_")}
    environment.pop("KAFKA_BOOTSTRAP_SERVERS", None)  # the demo must bring its own broker
    return subprocess.Popen(
        [sys.executable, "-m", "processor", "demo"],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=environment,
    )


@pytest.fixture(scope="module")
def demo_run() -> tuple[int, str, str]:
    """One whole demo: exit code, stdout, stderr."""
    demo = start_demo(stderr=subprocess.PIPE)
    output, errors = demo.communicate(timeout=180)
    return demo.returncode, output, errors


def summary_value(output: str, label: str) -> str:
    for line in output.splitlines():
        if line.strip().startswith(label):
            return line.strip()[len(label) :].split()[0]
    raise AssertionError(f"no {label!r} line in:\n{output}")


def test_demo_delivers_the_samples_and_prints_the_summary(demo_run: tuple[int, str, str]) -> None:
    returncode, output, errors = demo_run
    assert returncode == 0, output + errors
    assert summary_value(output, "events produced") == "40"
    assert summary_value(output, "delivered") == "34"
    assert summary_value(output, "dead-lettered") == "2"
    assert "(decode 1, map 1)" in output
    assert summary_value(output, "skipped") == "4"
    assert "(consent 1, integrations 1, message_type 1, unmapped_event 1)" in output
    calls = int(summary_value(output, "Trengo API calls"))
    assert calls < 40  # under one call per event: cached contacts, skipped no-op updates


def test_demo_ends_with_what_trengo_received_and_where_to_look_next(
    demo_run: tuple[int, str, str],
) -> None:
    _returncode, output, _errors = demo_run
    ending = output[output.index("what Trengo received") :].splitlines()
    assert ending[0] == f"what Trengo received: {SAMPLE_USERS} contacts, {SAMPLE_TICKETS} tickets"
    rows = ending[2 : 2 + SAMPLE_USERS]
    assert any(row.split()[:3] == ["Ada", "King", "ada.lovelace@example.com"] for row in rows)
    assert sum(ticket_count(row) for row in rows) == SAMPLE_TICKETS
    dead_letter_topic = summary_value(output, "dead-letter topic")
    look_next = ending[-1]
    assert re.search(r"http://127\.0\.0\.1:[1-9]\d*/metrics", look_next), look_next
    assert dead_letter_topic in look_next
    assert "dlq replay --config FILE --dry-run" in look_next


def ticket_count(row: str) -> int:
    """The ticket count of one row of the received table ("name  identifier  3: Order …")."""
    match = re.search(r"@example\.com\s+(\d+)(?::|$)", row)
    assert match, row
    return int(match.group(1))


def test_every_line_the_demo_writes_to_stderr_is_one_of_our_log_lines(
    demo_run: tuple[int, str, str],
) -> None:
    _returncode, _output, errors = demo_run
    lines = errors.splitlines()
    assert [line for line in lines if line.startswith("%")] == []  # librdkafka's raw lines
    assert [line for line in lines if not CONSOLE_LOG_LINE.match(line)] == []


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
