"""RudderStack's filters end to end: the whole stream of a site goes in, only what RudderStack
would have sent to Trengo comes out. Everything else is committed, counted by reason, never
dead-lettered and never logged at INFO."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devkit.sandbox.broker import KafkaTarget
from devkit.sandbox.trengo import RunningSandbox
from tests.kafka_support import (
    OutgoingRecord,
    TopicFactory,
    consume_all,
    produce,
    wait_for_committed_offsets,
)
from tests.processor_support import (
    ProcessorProcess,
    email_of,
    end_offsets,
    identify_record,
    order_record,
    order_subject,
    processor_config,
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
    kafka: KafkaTarget,
    kafka_topic_factory: TopicFactory,
    group_id: str,
    sandbox: RunningSandbox,
    tmp_path: Path,
) -> None:
    topic, dead_letter_topic = kafka_topic_factory(2), kafka_topic_factory(1)
    skipped = [record for records in SKIPPED.values() for record in records]
    produced = produce(kafka.bootstrap_servers, topic, [*skipped, *DELIVERED])
    config = processor_config(
        kafka,
        sandbox,
        topic=topic,
        group_id=group_id,
        dead_letter_topic=dead_letter_topic,
        destination=CONSENT,
    )

    with ProcessorProcess(config, tmp_path) as processor:
        wait_for_committed_offsets(
            kafka.bootstrap_servers, group_id, topic, end_offsets(produced), timeout=60
        )
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
    assert consume_all(kafka.bootstrap_servers, dead_letter_topic, min_records=0) == []
    subjects = ticket_subjects(sandbox)
    assert sorted(subjects) == sorted(order_subject(f"kept-{n}") for n in (1, 2, 3))
