"""Realistic sample RudderStack events for the demo and the tests.

Several users each identify, then place orders; one renames herself; a few events show the
other outcomes: a bad JSON value and a track without an email are dead-lettered; a page view,
an unmapped track, an order whose user denied consent and one whose integrations object
excludes Trengo are skipped, as RudderStack would never have sent them to Trengo.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

# The OneTrust category the demo's destination requires (its consent settings).
DEMO_REQUIRED_CONSENT = "C0004"
SAMPLE_TEMPLATES = (
    {
        "from": "Order Completed",
        "to": "Order {{ order_id }} completed: {{ revenue }} {{ currency }}",
    },
    {"from": "Support Requested", "to": "{{ event }} about {{ topic }}"},
)
_PEOPLE = (
    ("Ada", "Lovelace"),
    ("Grace", "Hopper"),
    ("Alan", "Turing"),
    ("Edsger", "Dijkstra"),
    ("Barbara", "Liskov"),
    ("Ken", "Thompson"),
    ("Margaret", "Hamilton"),
    ("Donald", "Knuth"),
)
BAD_JSON = b'{"type": "track", "event": "Order Completed", '


@dataclass(frozen=True, slots=True)
class SampleEvent:
    """One Kafka record: key (the userId) and the JSON value."""

    key: bytes | None
    value: bytes


def sample_events(users: int = 8, orders_per_user: int = 3, seed: int = 7) -> list[SampleEvent]:
    """Identify + orders per user, one rename, one support ticket, and six odd events."""
    rng = random.Random(seed)
    clock = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    events: list[dict[str, Any]] = []
    for number in range(users):
        first, last = _PEOPLE[number % len(_PEOPLE)]
        user_id = f"user-{number + 1:03d}"
        email = f"{first.lower()}.{last.lower()}{number // len(_PEOPLE) or ''}@example.com"
        events.append(_identify(user_id, email, first, last))
        for _order in range(orders_per_user):
            order_id = f"{rng.randrange(10_000, 99_999)}"
            properties = {
                "order_id": order_id,
                "revenue": rng.randrange(10, 500),
                "currency": "EUR",
            }
            events.append(_track(user_id, email, "Order Completed", properties))
    first_user_email = "ada.lovelace@example.com"
    events.append(_identify("user-001", first_user_email, "Ada", "King"))
    events.append(
        _track("user-002", "grace.hopper@example.com", "Support Requested", {"topic": "billing"})
    )
    events.append(_track("user-003", "alan.turing@example.com", "Product Viewed", {"sku": "K-42"}))
    events.append({"type": "page", "userId": "user-004", "name": "Pricing", "properties": {}})
    denied = _track("user-006", "ken.thompson@example.com", "Order Completed", properties)
    denied["context"]["consentManagement"] = {
        "provider": "oneTrust",
        "deniedConsentIds": [DEMO_REQUIRED_CONSENT],
    }
    events.append(denied)
    excluded = _track("user-007", "margaret.hamilton@example.com", "Order Completed", properties)
    events.append({**excluded, "integrations": {"All": True, "Trengo": False}})
    events.append(_track("user-008", "", "Order Completed", properties))
    records = [
        SampleEvent(str(event["userId"]).encode(), _stamp(event, clock, index))
        for index, event in enumerate(events)
    ]
    records.append(SampleEvent(b"user-005", BAD_JSON))
    return records


def _identify(user_id: str, email: str, first: str, last: str) -> dict[str, Any]:
    return {
        "type": "identify",
        "userId": user_id,
        "traits": {"email": email, "firstName": first, "lastName": last},
        "context": {"library": {"name": "rudder-sdk-js"}},
    }


def _track(user_id: str, email: str, event: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "track",
        "event": event,
        "userId": user_id,
        "properties": properties,
        "context": {"traits": {"email": email}, "library": {"name": "rudder-sdk-js"}},
    }


def _stamp(event: dict[str, Any], start: datetime, index: int) -> bytes:
    stamped = {
        **event,
        "messageId": f"msg-{index:05d}",
        "timestamp": (start + timedelta(seconds=index)).isoformat(),
        "anonymousId": f"anon-{event['userId']}",
    }
    return json.dumps(stamped).encode()
