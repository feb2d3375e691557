"""What the demo prints after its summary: the received table and the line on where to look next."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from devkit.demo import RECEIVED_ROWS, next_steps, received_table

ADA = {"id": 1, "name": "Ada King", "identifier": "ada@example.com"}
ALAN = {"id": 2, "name": "Alan Turing", "identifier": "alan@example.com"}


def ticket(contact_id: object, subject: object) -> dict[str, object]:
    return {"id": 100, "contact_id": contact_id, "subject": subject}


@pytest.mark.parametrize(
    ("contacts", "tickets", "expected"),
    [
        pytest.param([], [], ["what Trengo received: 0 contacts, 0 tickets"], id="nothing"),
        pytest.param(
            [ADA, ALAN],
            [ticket(1, "Order 7 completed"), ticket(1, "Order 8 completed")],
            [
                "what Trengo received: 2 contacts, 2 tickets",
                "  contact            identifier                     tickets",
                "  Ada King           ada@example.com                "
                "2: Order 7 completed; Order 8 completed",
                "  Alan Turing        alan@example.com               0",
            ],
            id="a contact without tickets shows 0",
        ),
        pytest.param(
            [{"id": 3, "name": None, "identifier": None}],
            [ticket(99, "for a contact not listed"), ticket(3, None)],
            [
                "what Trengo received: 1 contacts, 2 tickets",
                "  contact            identifier                     tickets",
                "  (no name)                                         1: (no subject)",
            ],
            id="missing fields and an unknown contact",
        ),
    ],
)
def test_the_received_table(
    contacts: list[Mapping[str, object]], tickets: list[Mapping[str, object]], expected: list[str]
) -> None:
    assert received_table(contacts, tickets) == expected


def test_hostile_names_and_subjects_stay_on_one_short_line() -> None:
    contact = {"id": 1, "name": "Eve\n\x1b[31mred\r" + "e" * 200, "identifier": "x" * 300}
    lines = received_table([contact], [ticket(1, "line\nbreak " + "s" * 500)])
    row = lines[-1]
    assert "\n" not in row and "\r" not in row
    assert len(row) <= 110
    assert "Eve" in row and row.count("…") == 3


def test_a_long_list_is_cut_with_a_count_of_the_rest() -> None:
    contacts = [
        {"id": n, "name": f"User {n}", "identifier": f"u{n}@example.com"}
        for n in range(RECEIVED_ROWS + 5)
    ]
    lines = received_table(contacts, [])
    assert len(lines) == 2 + RECEIVED_ROWS + 1
    assert lines[-1] == "  … and 5 more contacts"


def test_next_steps_names_the_metrics_address_the_dead_letter_topic_and_the_dry_run() -> None:
    line = next_steps(9400, "events.dlq")
    assert "http://127.0.0.1:9400/metrics" in line
    assert "events.dlq" in line
    assert "dlq replay --config FILE --dry-run" in line
    assert "\n" not in line


def test_next_steps_without_a_port_still_points_at_metrics() -> None:
    assert "/metrics while it runs" in next_steps(None, "events.dlq")
