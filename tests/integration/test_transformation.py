"""A RudderStack JavaScript transformation end to end: broker → transform → map → sandbox.

It renames one event into a mapped one, drops another, fans a third out into three tickets
(created in order, the offset committed once all three are), and an endless loop or a throw
in it dead-letters only that event at stage ``transform``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devkit.sandbox.broker import KafkaTarget
from devkit.sandbox.trengo import RunningSandbox
from tests.kafka_support import TopicFactory, consume_all, produce, wait_for_committed_offsets
from tests.processor_support import ProcessorProcess, processor_config

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).parents[1] / "fixtures" / "transformations" / "rename_drop_fan_out.js"
DESTINATION = {
    "eventTemplateMap": [
        {"from": "Order Completed", "to": "Order {{order_id}} completed"},
        {"from": "Part", "to": "Part {{part}}"},
    ],
}


def message(**fields: Any) -> tuple[bytes, bytes, list[Any]]:
    return b"tenant", json.dumps(fields).encode(), []


def track(event: str, **properties: Any) -> tuple[bytes, bytes, list[Any]]:
    context = {"traits": {"email": "ann@example.com"}}
    return message(type="track", event=event, userId="ann", properties=properties, context=context)


EVENTS = [
    message(type="identify", userId="ann", traits={"email": "ann@example.com", "name": "Ann"}),
    track("Checkout Done", order_id="A-1"),  # renamed to Order Completed
    track("Debug Ping"),  # dropped
    track("Spin"),  # endless loop: dead letter, the partition goes on
    track("Bundle Bought", parts=[1, 2, 3]),  # three tickets, in order
    track("Explode"),  # throws: dead letter
]


@dataclass(frozen=True)
class Broker:
    """What one run of the processor needs: the broker, a fresh group and the sandbox."""

    kafka: KafkaTarget
    topics: TopicFactory
    group_id: str
    sandbox: RunningSandbox
    scratch: Path


@pytest.fixture
def broker(
    kafka: KafkaTarget,
    kafka_topic_factory: TopicFactory,
    group_id: str,
    sandbox: RunningSandbox,
    tmp_path: Path,
) -> Broker:
    return Broker(kafka, kafka_topic_factory, group_id, sandbox, tmp_path)


def run_transformed(
    broker: Broker,
    events: list[tuple[bytes, bytes, list[Any]]],
    transformation: dict[str, str],
    dead_letters: int,
) -> tuple[list[str], list[dict[str, bytes]]]:
    """Run the processor over ``events`` until all are committed: the tickets' subjects in the
    order they were opened, and the headers of the (at least ``dead_letters``) dead letters."""
    topic, dead_letter_topic = broker.topics(1), broker.topics(1)
    produce(broker.kafka.bootstrap_servers, topic, events)
    config = processor_config(
        broker.kafka,
        broker.sandbox,
        topic=topic,
        group_id=broker.group_id,
        dead_letter_topic=dead_letter_topic,
        destination=DESTINATION,
    )
    config["transformation"] = transformation
    with ProcessorProcess(config, broker.scratch) as processor:
        wait_for_committed_offsets(
            broker.kafka.bootstrap_servers, broker.group_id, topic, {0: len(events)}, timeout=60
        )
        assert processor.stop() == 0, processor.log()
    tickets = sorted(broker.sandbox.tickets(), key=lambda ticket: ticket["id"])
    letters = consume_all(
        broker.kafka.bootstrap_servers, dead_letter_topic, min_records=dead_letters
    )
    return [ticket["subject"] for ticket in tickets], [dict(letter.headers) for letter in letters]


def test_a_javascript_transformation_renames_drops_and_fans_out(broker: Broker) -> None:
    subjects, headers = run_transformed(broker, EVENTS, {"javascript": str(SCRIPT)}, 2)
    assert subjects == ["Order A-1 completed", "Part 1", "Part 2", "Part 3"]
    assert [(h["x-error-stage"], h["x-error-reason"]) for h in headers] == [
        (b"transform", b"transformEvent ran over the 100 ms limit (transformation.timeout_ms)"),
        (b"transform", b"transformEvent threw Error: cannot handle Explode"),
    ]


PYTHON_SCRIPT = """
import time


def transformEvent(event, metadata):
    name = event.get("event")
    if name == "Checkout Done":
        return {**event, "event": "Order Completed"}
    if name == "Spin":
        while True:
            pass
    if name == "Stuck":
        time.sleep(3)  # blocked in C: its thread is abandoned, the next event gets a new one
    return event
"""


def test_an_endless_python_loop_dead_letters_only_its_event(broker: Broker) -> None:
    script = broker.scratch / "transformation.py"
    script.write_text(PYTHON_SCRIPT, encoding="utf-8")
    events = [
        EVENTS[0],
        track("Spin"),
        track("Checkout Done", order_id="A-1"),
        track("Stuck"),
        track("Checkout Done", order_id="A-2"),
    ]
    subjects, headers = run_transformed(broker, events, {"python": str(script)}, 2)
    assert subjects == ["Order A-1 completed", "Order A-2 completed"]
    over_time = b"transformEvent ran over the 100 ms limit (transformation.timeout_ms)"
    abandoned = b"; it did not stop when interrupted and its thread was abandoned"
    assert [(h["x-original-offset"], h["x-error-stage"], h["x-error-reason"]) for h in headers] == [
        (b"1", b"transform", over_time),
        (b"3", b"transform", over_time + abandoned),
    ]
