"""A RudderStack JavaScript transformation end to end: broker → transform → map → sandbox.

It renames one event into a mapped one, drops another, fans a third out into three tickets
(created in order, the offset committed once all three are), and an endless loop or a throw
in it dead-letters only that event at stage ``transform``; in Python too, where a call blocked
past the limit is abandoned and the partition goes on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.processor_support import StackFactory

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


def run_transformed(
    make_stack: StackFactory,
    events: list[tuple[bytes, bytes, list[Any]]],
    transformation: dict[str, str],
) -> tuple[list[str], list[dict[str, bytes]]]:
    """Run the processor over ``events`` until all are committed: the tickets' subjects in the
    order they were opened, and the headers of the two dead letters."""
    stack = make_stack(1)
    produced = stack.produce(events)
    config = stack.config(destination=DESTINATION)
    config["transformation"] = transformation
    with stack.processor(config) as processor:
        stack.wait_until_committed(produced, timeout=60)
        assert processor.stop() == 0, processor.log()
    tickets = sorted(stack.sandbox.tickets(), key=lambda ticket: ticket["id"])
    letters = stack.dead_letters(min_records=2)
    return [ticket["subject"] for ticket in tickets], [dict(letter.headers) for letter in letters]


def test_a_javascript_transformation_renames_drops_and_fans_out(make_stack: StackFactory) -> None:
    subjects, headers = run_transformed(make_stack, EVENTS, {"javascript": str(SCRIPT)})
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


def test_an_endless_python_loop_dead_letters_only_its_event(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    script = tmp_path / "transformation.py"
    script.write_text(PYTHON_SCRIPT, encoding="utf-8")
    events = [
        EVENTS[0],
        track("Spin"),
        track("Checkout Done", order_id="A-1"),
        track("Stuck"),
        track("Checkout Done", order_id="A-2"),
    ]
    subjects, headers = run_transformed(make_stack, events, {"python": str(script)})
    assert subjects == ["Order A-1 completed", "Order A-2 completed"]
    over_time = b"transformEvent ran over the 100 ms limit (transformation.timeout_ms)"
    abandoned = b"; it did not stop when interrupted and its thread was abandoned"
    assert [(h["x-original-offset"], h["x-error-stage"], h["x-error-reason"]) for h in headers] == [
        (b"1", b"transform", over_time),
        (b"3", b"transform", over_time + abandoned),
    ]
