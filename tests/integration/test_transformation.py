"""A RudderStack JavaScript transformation end to end: broker → transform → map → sandbox.

It renames one event into a mapped one, drops another, fans a third out into three tickets
(created in order, the offset committed once all three are), and an endless loop or a throw
in it dead-letters only that event at stage ``transform``.
"""

from __future__ import annotations

import json
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


def test_a_javascript_transformation_renames_drops_and_fans_out(
    kafka: KafkaTarget,
    kafka_topic_factory: TopicFactory,
    group_id: str,
    sandbox: RunningSandbox,
    tmp_path: Path,
) -> None:
    topic, dead_letter_topic = kafka_topic_factory(1), kafka_topic_factory(1)
    produce(kafka.bootstrap_servers, topic, EVENTS)
    config = processor_config(
        kafka,
        sandbox,
        topic=topic,
        group_id=group_id,
        dead_letter_topic=dead_letter_topic,
        destination=DESTINATION,
    )
    config["transformation"] = {"javascript": str(SCRIPT)}
    with ProcessorProcess(config, tmp_path) as processor:
        wait_for_committed_offsets(
            kafka.bootstrap_servers, group_id, topic, {0: len(EVENTS)}, timeout=60
        )
        assert processor.stop() == 0, processor.log()

    tickets = sorted(sandbox.tickets(), key=lambda ticket: ticket["id"])
    assert [ticket["subject"] for ticket in tickets] == [
        "Order A-1 completed",
        "Part 1",
        "Part 2",
        "Part 3",
    ]
    letters = consume_all(kafka.bootstrap_servers, dead_letter_topic, min_records=2)
    headers = [dict(letter.headers) for letter in letters]
    assert [(h["x-error-stage"], h["x-error-reason"]) for h in headers] == [
        (b"transform", b"transformEvent ran over the 100 ms limit (transformation.timeout_ms)"),
        (b"transform", b"transformEvent threw Error: cannot handle Explode"),
    ]
