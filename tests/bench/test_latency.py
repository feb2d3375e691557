"""Per-event latency from the Kafka timestamps and the sandbox's recorded tickets."""

from __future__ import annotations

from typing import Any

import pytest

from bench.latency import latencies_ms


def ticket(sequence: int, at: float, route: str = "/api/v2/tickets") -> dict[str, Any]:
    subject = f"Order {sequence} completed: 5 EUR"
    return {"method": "POST", "route": route, "json": {"subject": subject}, "at": at}


def test_latency_is_answer_time_minus_the_kafka_timestamp() -> None:
    timestamps = {0: 1_000_000, 1: 1_000_020}
    answers = [
        ticket(1, 1000.030),
        {"method": "GET", "route": "/api/v2/contacts", "json": None, "at": 1000.0},
        ticket(0, 1000.005),
        ticket(0, 1000.500),  # a redelivery: the first answer counts
        ticket(7, 1000.001),  # not a measured event
    ]
    assert latencies_ms(timestamps, answers, 50.0) == pytest.approx([55.0, 60.0])


def test_events_without_a_ticket_are_missing_from_the_result() -> None:
    assert latencies_ms({0: 5, 1: 6}, [ticket(1, 0.010)], 0.0) == pytest.approx([4.0])
