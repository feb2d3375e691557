"""The opt-in features beyond RudderStack, end to end: custom fields, profiles, labels, messages.

One processor with every feature on reads a topic through the broker and talks to the sandbox
over loopback; the test checks what Trengo ends up holding and what it cost in calls.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devkit.sandbox.broker import KafkaTarget
from devkit.sandbox.trengo import RunningSandbox, SandboxOptions
from tests.kafka_support import TopicFactory, consume_all, produce, wait_for_committed_offsets
from tests.processor_support import ProcessorProcess, processor_config

pytestmark = pytest.mark.integration

PLAN_FIELD, COMPANY_FIELD, PROFILE_KEY_FIELD = 1001, 1002, 2001
DESTINATION = {
    "customFieldMap": [
        {"trait": "plan", "fieldId": PLAN_FIELD},
        {"trait": "company", "fieldId": COMPANY_FIELD},
    ],
    "enableProfiles": True,
    "profileKeyFieldId": PROFILE_KEY_FIELD,
    "eventTemplateMap": [
        {
            "from": "Order Completed",
            "to": "Order {{order_id}} completed",
            "labels": ["order", "VIP"],
            "message": "Order {{order_id}}: {{total}} EUR",
        },
        {"from": "Refund Requested", "to": "Refund {{order_id}}", "labels": ["no such label"]},
        {
            "from": "Support Asked",
            "to": "Help",
            "message": "{{question}}",
            "messageType": "message",
        },
    ],
}


def message(**fields: Any) -> tuple[bytes, bytes, list[Any]]:
    # One key for every event: the processor keeps them in order, so the counts are exact.
    return b"tenant", json.dumps(fields).encode(), []


def identify(user: str, **traits: Any) -> tuple[bytes, bytes, list[Any]]:
    return message(type="identify", userId=user, traits={"email": f"{user}@example.com", **traits})


def track(user: str, event: str, **properties: Any) -> tuple[bytes, bytes, list[Any]]:
    context = {"traits": {"email": f"{user}@example.com"}}
    return message(
        type="track",
        event=event,
        userId=user,
        messageId=f"{user}-{event}-{properties}",
        properties=properties,
        context=context,
    )


def group(user: str, group_id: str, name: str) -> tuple[bytes, bytes, list[Any]]:
    context = {"traits": {"email": f"{user}@example.com"}}
    return message(
        type="group", userId=user, groupId=group_id, traits={"name": name}, context=context
    )


# No two identifies of one contact in a row: the processor would merge them into one call.
EVENTS = [
    identify("ann", name="Ann Lee", plan="pro", company="Acme"),
    identify("ben", name="Ben Ray", plan=3),
    identify("ann", name="Ann Lee", plan="pro", company="Acme"),  # nothing changed: no call
    identify("ben", name="Ben Ray", plan=3),
    identify("ann", name="Ann Lee", plan="enterprise", company="Acme"),  # plan changed: one call
    group("ann", "acme-1", "Acme"),
    group("ben", "acme-1", "Acme Inc"),  # same profile, renamed
    group("ann", "acme-1", "Acme Inc"),  # already attached, name unchanged: no call
    group("zed", "acme-1", "Acme Inc"),  # no such contact: dead letter
    track("ann", "Order Completed", order_id="A-1", total=30),
    track("ben", "Refund Requested", order_id="B-7"),  # unknown label: dead letter, no ticket
    track("ben", "Support Asked", question="Where is my parcel?"),
]


def test_custom_fields_profiles_labels_and_messages_reach_trengo(
    kafka: KafkaTarget,
    kafka_topic_factory: TopicFactory,
    group_id: str,
    sandbox: RunningSandbox,
    tmp_path: Path,
) -> None:
    reasons = run_every_feature(kafka, kafka_topic_factory, group_id, sandbox, tmp_path)

    assert reasons == DEAD_LETTER_REASONS
    assert_trengo_holds_each_thing_once(sandbox)
    assert _calls_by_route(sandbox) == {
        "POST /api/v2/channels/{channel_id}/contacts": 2,  # ann, ben (email find-or-create)
        "POST /api/v2/contacts/{contact_id}/custom_fields": 4,  # ann 2 + 1 change, ben 1
        "GET /api/v2/contacts": 1,  # zed's search: not found
        "GET /api/v2/profiles": 2,  # by key (the term matches names only), then by name
        "POST /api/v2/profiles": 1,
        "GET /api/v2/channels": 1,  # the channel's type for attaching, once per process
        "POST /api/v2/profiles/{profile_id}/custom_fields": 1,
        "PUT /api/v2/profiles/{profile_id}": 1,
        "POST /api/v2/profiles/{profile_id}/contacts": 2,
        "GET /api/v2/labels": 1,  # an unknown name re-reads the labels at most once a minute
        "POST /api/v2/tickets": 2,
        "POST /api/v2/tickets/{ticket_id}/messages": 2,
        "POST /api/v2/tickets/{ticket_id}/labels": 2,
    }


def test_failed_calls_are_retried_without_a_second_ticket_profile_or_label(
    kafka: KafkaTarget,
    kafka_topic_factory: TopicFactory,
    group_id: str,
    tmp_path: Path,
) -> None:
    # A third of the calls answer 5xx: every step, follow-ups included, is retried on its own.
    with RunningSandbox(SandboxOptions(requests_per_minute=None, error_rate=0.3, seed=3)) as faulty:
        reasons = run_every_feature(kafka, kafka_topic_factory, group_id, faulty, tmp_path)

        assert reasons == DEAD_LETTER_REASONS
        assert_trengo_holds_each_thing_once(faulty)
        failed = [request for request in faulty.requests() if request.status >= 500]
        assert len(failed) >= 5  # the faults did happen


DEAD_LETTER_REASONS = [
    "No contact found for term:zed@example.com group event for group acme-1 failed",
    "label 'no such label' not found in Trengo",
]


def run_every_feature(
    kafka: KafkaTarget,
    kafka_topic_factory: TopicFactory,
    group_id: str,
    sandbox: RunningSandbox,
    tmp_path: Path,
) -> list[str]:
    """Deliver EVENTS with every feature on; the dead letters' reasons, sorted."""
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
    with ProcessorProcess(config, tmp_path) as processor:
        wait_for_committed_offsets(
            kafka.bootstrap_servers, group_id, topic, {0: len(EVENTS)}, timeout=60
        )
        assert processor.stop() == 0, processor.log()
    letters = consume_all(kafka.bootstrap_servers, dead_letter_topic, min_records=2)
    return sorted(dict(letter.headers)["x-error-reason"].decode() for letter in letters)


def assert_trengo_holds_each_thing_once(sandbox: RunningSandbox) -> None:
    contacts = {contact["email"]: contact for contact in sandbox.contacts()}
    assert set(contacts) == {"ann@example.com", "ben@example.com"}
    ann, ben = contacts["ann@example.com"], contacts["ben@example.com"]
    assert ann["custom_field_data"] == {"Plan": "enterprise", "Company": "Acme"}
    assert ben["custom_field_data"] == {"Plan": "3"}

    [profile] = sandbox.profiles()
    assert profile["name"] == "Acme Inc"
    assert profile["custom_field_values"] == [
        {"custom_field_id": PROFILE_KEY_FIELD, "field_name": "External ID", "value": "acme-1"}
    ]
    assert sorted(member["id"] for member in profile["contacts"]) == sorted([ann["id"], ben["id"]])

    tickets = sandbox.tickets()
    assert sorted(ticket["subject"] for ticket in tickets) == ["Help", "Order A-1 completed"]
    by_subject = {ticket["subject"]: ticket for ticket in tickets}
    order, help_ticket = by_subject["Order A-1 completed"], by_subject["Help"]
    assert sorted(label["name"] for label in order["labels"]) == ["order", "vip"]
    assert [(m["message"], m["internal_note"]) for m in order["messages"]] == [
        ("Order A-1: 30 EUR", True)
    ]
    assert [(m["message"], m["internal_note"]) for m in help_ticket["messages"]] == [
        ("Where is my parcel?", False)
    ]


def _calls_by_route(sandbox: RunningSandbox) -> dict[str, int]:
    counts: dict[str, int] = {}
    for request in sandbox.requests():
        route = f"{request.method} {request.route}"
        counts[route] = counts.get(route, 0) + 1
    return counts
