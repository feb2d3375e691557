"""Tests for processor/pipeline/validate.py: RudderStack's first two entry checks (the type;
docs/rudderstack-compatibility.md), field types, and groups accepted only with
``destination.enableProfiles`` (``accept_groups``)."""

from __future__ import annotations

from typing import Any

import pytest

from processor.events import Group, Identify, Track
from processor.pipeline.plan import Rejection
from processor.pipeline.validate import validate


@pytest.mark.parametrize(
    ("document", "model"),
    [
        pytest.param({"type": "identify"}, Identify, id="identify"),
        pytest.param({"type": "Identify"}, Identify, id="identify-capitalised"),
        pytest.param({"type": "TRACK", "event": "Order Completed"}, Track, id="track-upper"),
        pytest.param(
            {"type": "track", "event": "x", "integrations": {"All": True}, "channel": "web"},
            Track,
            id="unknown-fields-tolerated",
        ),
    ],
)
def test_accepts_identify_and_track_in_any_letter_case(
    document: dict[str, Any], model: type[Identify | Track]
) -> None:
    message = validate(document)

    assert isinstance(message, model)
    assert message.type == document["type"].lower()


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        pytest.param({"event": "x"}, "Event type is required", id="missing-type"),
        pytest.param({"type": None}, "Event type is required", id="null-type"),
        pytest.param({"type": ""}, "Event type is required", id="empty-type"),
        pytest.param({"type": 5}, "Event type must be a string, got 5", id="number-type"),
        pytest.param(
            {"type": ["track"]}, 'Event type must be a string, got ["track"]', id="list-type"
        ),
        pytest.param({"type": "page"}, "Event type page is not supported", id="page"),
        pytest.param({"type": "Screen"}, "Event type screen is not supported", id="screen"),
        pytest.param({"type": "group"}, "Event type group is not supported", id="group"),
        pytest.param({"type": "alias"}, "Event type alias is not supported", id="alias"),
        pytest.param({"type": "order"}, "Event type order is not supported", id="unknown-type"),
    ],
)
def test_type_checks_keep_rudderstack_texts(document: dict[str, Any], reason: str) -> None:
    assert validate(document) == Rejection(reason=reason, stage="validate")


def test_unsupported_types_are_rejected_when_they_reach_validation() -> None:
    rejection = validate({"type": "group"})

    assert rejection == Rejection(reason="Event type group is not supported", stage="validate")


@pytest.mark.parametrize(
    ("document", "group_id"),
    [
        pytest.param({"type": "group", "groupId": "acme"}, "acme", id="text-id"),
        pytest.param({"type": "Group", "groupId": 42}, "42", id="integer-id-as-text"),
        pytest.param({"type": "GROUP"}, None, id="missing-id-left-to-the-map"),
    ],
)
def test_groups_are_accepted_when_profiles_are_on(
    document: dict[str, Any], group_id: str | None
) -> None:
    message = validate(document, accept_groups=True)

    assert isinstance(message, Group)
    assert message.groupId == group_id


@pytest.mark.parametrize(
    ("document", "accept_groups", "expected"),
    [
        pytest.param(
            {"type": "group", "groupId": "acme"},
            False,
            Rejection(reason="Event type group is not supported", stage="validate"),
            id="profiles-off-as-today",
        ),
        pytest.param(
            {"type": "page"},
            True,
            Rejection(reason="Event type page is not supported", stage="validate"),
            id="other-types-still-unsupported",
        ),
    ],
)
def test_groups_rejected_without_profiles(
    document: dict[str, Any], accept_groups: bool, expected: Rejection
) -> None:
    assert validate(document, accept_groups=accept_groups) == expected


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        pytest.param(
            {"type": "group", "groupId": 1.5},
            "Invalid group event: groupId: Input should be a string or an integer",
            id="group-id-neither-text-nor-integer",
        ),
        pytest.param(
            {"type": "group", "groupId": "acme", "traits": ["x"]},
            "Invalid group event: traits: Input should be a valid dictionary",
            id="group-traits-not-object",
        ),
    ],
)
def test_group_field_types_are_checked(document: dict[str, Any], reason: str) -> None:
    assert validate(document, accept_groups=True) == Rejection(reason=reason, stage="validate")


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        pytest.param(
            {"type": "identify", "traits": "jo@example.com"},
            "Invalid identify event: traits: Input should be a valid dictionary",
            id="traits-not-object",
        ),
        pytest.param(
            {"type": "track", "event": 42},
            "Invalid track event: event: Input should be a valid string",
            id="event-not-text",
        ),
        pytest.param(
            {"type": "track", "event": "x", "properties": [1]},
            "Invalid track event: properties: Input should be a valid dictionary",
            id="properties-not-object",
        ),
        pytest.param(
            {"type": "identify", "context": {"traits": 1}},
            "Invalid identify event: context.traits: Input should be a valid dictionary",
            id="context-traits-not-object",
        ),
        pytest.param(
            {"type": "identify", "context": {"externalId": {"type": "trengoContactId"}}},
            "Invalid identify event: context.externalId: Input should be a valid list",
            id="external-ids-not-list",
        ),
        pytest.param(
            {"type": "identify", "context": {"externalId": [{"type": 1, "id": "x"}]}},
            "Invalid identify event: context.externalId.0.type: Input should be a valid string",
            id="external-id-type-not-text",
        ),
        pytest.param(
            {"type": "identify", "userId": 1.5},
            "Invalid identify event: userId: Input should be a string or an integer",
            id="user-id-neither-text-nor-integer",
        ),
        pytest.param(
            {"type": "identify", "traits": 1, "properties": 2, "context": 3, "timestamp": 4},
            "Invalid identify event: traits: Input should be a valid dictionary; "
            "context: Input should be a valid dictionary or instance of Context; "
            "properties: Input should be a valid dictionary (and 1 more)",
            id="many-problems-on-one-line",
        ),
    ],
)
def test_wrong_field_types_are_rejected_naming_the_field(
    document: dict[str, Any], reason: str
) -> None:
    assert validate(document) == Rejection(reason=reason, stage="validate")


def test_field_errors_do_not_echo_event_values() -> None:
    rejection = validate({"type": "identify", "traits": "secret@example.com"})

    assert isinstance(rejection, Rejection)
    assert "secret@example.com" not in rejection.reason
