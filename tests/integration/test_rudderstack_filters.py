"""RudderStack's filters end to end: the whole stream of a site goes in, only what RudderStack
would have sent to Trengo comes out. Everything else is committed, counted by reason, never
dead-lettered and never logged at INFO."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.kafka_support import OutgoingRecord
from tests.processor_support import (
    StackFactory,
    email_of,
    identify_record,
    order_record,
    order_subject,
    ticket_subjects,
)

pytestmark = pytest.mark.integration

CONSENT = {
    "consentManagement": {
        "web": [{"provider": "oneTrust", "resolutionStrategy": "", "consents": [{"consent": "C4"}]}]
    },
    "oneTrustCookieCategories": {"web": [{"oneTrustCookieCategory": "C4"}]},
    "connectionMode": {"web": "cloud"},
}


def _record(user: str, **fields: Any) -> OutgoingRecord:
    return user.encode(), json.dumps({"userId": user, **fields}).encode(), []


def _order(user: str, order_id: str, **extra: Any) -> OutgoingRecord:
    key, value, headers = order_record(user, order_id)
    return key, json.dumps({**json.loads(value), **extra}).encode(), headers


# reason → events RudderStack would never have sent to Trengo
SKIPPED: dict[str, list[OutgoingRecord]] = {
    "message_type": [
        _record("ann", type="page", name="Pricing"),
        _record("bob", type="screen", name="Home"),
        _record("cat", type="alias", previousId="old-cat"),
        _record("dan", type="group", groupId="acme"),
    ],
    "unmapped_event": [
        _record("ann", type="track", event="Product Viewed", properties={"sku": "K"}),
        _record("bob", type="track", properties={}),
    ],
    "integrations": [
        _order("cat", "skip-integrations-1", integrations={"All": True, "Trengo": False}),
        _order("dan", "skip-integrations-2", integrations={"All": False}),
    ],
    "consent": [
        _order(
            "ann",
            "skip-consent-1",
            context={
                "traits": {"email": email_of("ann")},
                "consentManagement": {"provider": "oneTrust", "deniedConsentIds": ["C4"]},
            },
        ),
        _order(
            "bob",
            "skip-consent-2",
            context={
                "traits": {"email": email_of("bob")},
                "consentManagement": {"deniedConsentIds": ["C2", "C4"]},
            },
        ),
    ],
}
DELIVERED = [
    identify_record("ann"),
    identify_record("cat"),
    identify_record("dan"),
    _order("cat", "kept-1"),
    _order("dan", "kept-2", integrations={"All": False, "Trengo": True}),
    _order(
        "ann",
        "kept-3",
        context={
            "traits": {"email": email_of("ann")},
            "consentManagement": {"provider": "oneTrust", "deniedConsentIds": ["C2"]},
        },
    ),
]


def test_events_rudderstack_would_not_send_are_skipped_by_reason(
    make_stack: StackFactory,
) -> None:
    stack = make_stack(2)
    skipped = [record for records in SKIPPED.values() for record in records]
    produced = stack.produce([*skipped, *DELIVERED])

    with stack.processor(stack.config(destination=CONSENT)) as processor:
        stack.wait_until_committed(produced, timeout=60)
        for reason, records in SKIPPED.items():
            assert processor.metric("trengo_processor_skipped_total", reason=reason) == len(
                records
            ), reason
        assert processor.metric("trengo_processor_skipped_total", reason="ignore_types") == 0
        dead_lettered = processor.metric("trengo_processor_dead_letters_total")
        info_lines = [
            line for line in processor.log_records() if "skipped" in str(line.get("message"))
        ]
        assert processor.stop() == 0, processor.log()

    assert dead_lettered == 0
    assert info_lines == []
    assert stack.dead_letters(min_records=0) == []
    subjects = ticket_subjects(stack.sandbox)
    assert sorted(subjects) == sorted(order_subject(f"kept-{n}") for n in (1, 2, 3))
