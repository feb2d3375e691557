"""Tests for processor/schemas.py: committed schemas in sync, and they accept what they describe."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from processor import schemas
from processor.schemas import DeadLetterHeaders, main, render_schemas

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
RENDERED = render_schemas()


@pytest.mark.parametrize("file_name", sorted(RENDERED))
def test_committed_schema_matches_the_models(file_name: str) -> None:
    committed = SCHEMA_DIR / file_name
    assert committed.exists(), f"{committed} is missing: run `make schemas`"
    assert committed.read_text(encoding="utf-8") == RENDERED[file_name], (
        f"{committed} is out of date: run `make schemas`"
    )


def test_no_stale_schema_is_committed() -> None:
    committed = {path.name for path in SCHEMA_DIR.glob("*.schema.json")}

    assert committed <= set(RENDERED), f"not generated any more: {committed - set(RENDERED)}"


def test_main_writes_every_schema(tmp_path: Path) -> None:
    assert main([str(tmp_path / "out")]) == 0

    written = {path.name: path.read_text(encoding="utf-8") for path in (tmp_path / "out").iterdir()}
    assert written == RENDERED


@functools.cache
def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads(RENDERED[f"{name}.schema.json"])
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize(
    ("document", "valid"),
    [
        pytest.param(
            {"type": "identify", "context": {"traits": {"email": "a@b.c"}}}, True, id="identify"
        ),
        pytest.param({"type": "Identify"}, True, id="any-letter-case"),
        pytest.param(
            {"type": "track", "event": "A", "properties": {"v": 1}, "channel": "web"},
            True,
            id="track",
        ),
        pytest.param({"type": "page", "name": "Home"}, True, id="page"),
        pytest.param({"type": "identify", "userId": 42}, True, id="integer-user-id"),
        pytest.param({"type": "identify", "userId": 4.2}, False, id="fractional-user-id"),
        pytest.param({"type": 5}, False, id="type-not-text"),
        pytest.param({"type": "order"}, False, id="unknown-type"),
        pytest.param({"event": "A"}, False, id="no-type"),
        pytest.param({"type": "identify", "traits": "x"}, False, id="traits-not-object"),
        pytest.param(
            {"type": "track", "context": {"externalId": {"type": "x"}}},
            False,
            id="external-id-not-list",
        ),
    ],
)
def test_event_schema(document: dict[str, Any], valid: bool) -> None:
    assert validator("event").is_valid(document) is valid


@pytest.mark.parametrize(
    ("document", "valid"),
    [
        pytest.param(
            {
                "apiToken": "trengo1",
                "channelId": "trengo_email_channel",
                "channelIdentifier": "email",
                "enableDedup": True,
                "eventTemplateMap": [{"from": "Stress Test"}, {"from": "A", "to": "{{ event }}"}],
            },
            True,
            id="rudderstack-config",
        ),
        pytest.param({"channelId": "1", "channelIdentifier": "sms"}, False, id="bad-identifier"),
        pytest.param(
            {"channelId": "1", "eventTemplateMap": [{"to": "x"}]}, False, id="mapping-without-from"
        ),
        pytest.param({"channelIdentifier": "email"}, False, id="no-channel-id"),
        pytest.param(
            {
                "channelId": "1",
                "eventTemplateMap": [
                    {"from": "A", "labels": ["vip"], "message": "Hi", "messageType": "message"}
                ],
                "customFieldMap": [{"trait": "plan", "fieldId": 1001}],
                "enableProfiles": True,
                "profileKeyFieldId": 2001,
            },
            True,
            id="opt-ins",
        ),
        pytest.param(
            {"channelId": "1", "enableProfiles": True}, False, id="profiles-without-key-field"
        ),
        pytest.param(
            {"channelId": "1", "enableProfiles": True, "profileKeyFieldId": None},
            False,
            id="profiles-with-null-key-field",
        ),
        pytest.param(
            {"channelId": "1", "enableProfiles": False, "profileKeyFieldId": None},
            True,
            id="no-profiles-no-key-field",
        ),
        pytest.param(
            {"channelId": "1", "customFieldMap": [{"trait": "plan", "fieldId": 0}]},
            False,
            id="field-id-below-one",
        ),
        pytest.param(
            {"channelId": "1", "eventTemplateMap": [{"from": "A", "labels": [" "]}]},
            False,
            id="blank-label",
        ),
        pytest.param(
            {"channelId": "1", "eventTemplateMap": [{"from": "A", "messageType": "sms"}]},
            False,
            id="bad-message-type",
        ),
    ],
)
def test_destination_schema(document: dict[str, Any], valid: bool) -> None:
    assert validator("destination").is_valid(document) is valid


def test_config_schema_accepts_the_design_example() -> None:
    config = {
        "kafka": {
            "bootstrap_servers": "127.0.0.1:9092",
            "topic": "rudderstack.events",
            "settings": {},
        },
        "trengo": {"base_url": "https://app.trengo.com/api/v2", "requests_per_minute": 120},
        "destination": {
            "apiToken": "t",
            "channelId": "12345",
            "eventTemplateMap": [{"from": "A", "to": "B"}],
        },
        "delivery": {"max_in_flight": 256},
        "server": {"port": 9400},
        "log": {"format": "json"},
    }

    assert validator("config").is_valid(config)
    assert not validator("config").is_valid({**config, "kafak": {}})


DLQ_HEADERS = {
    "x-error-stage": "deliver",
    "x-error-reason": "No contact found",
    "x-error-status": "422",
    "x-original-topic": "rudderstack.events",
    "x-original-partition": "3",
    "x-original-offset": "1200",
    "x-attempts": "1",
    "x-first-attempt-at": "2026-01-02T03:04:05.678000+00:00",
    "x-truncated": "true",
    "x-original-size": "1048576",
    "traceparent": "00-abc-def-01",
}


@pytest.mark.parametrize(
    ("changes", "valid"),
    [
        pytest.param({}, True, id="complete"),
        pytest.param({"x-error-status": None}, True, id="no-status"),
        pytest.param({"x-truncated": None, "x-original-size": None}, True, id="not-truncated"),
        pytest.param({"x-truncated": "yes"}, False, id="truncated-not-true"),
        pytest.param({"x-original-size": "1 MB"}, False, id="size-not-digits"),
        pytest.param({"x-error-stage": "poll"}, False, id="unknown-stage"),
        pytest.param({"x-original-offset": "-1"}, False, id="negative-offset"),
        pytest.param({"x-attempts": "0"}, False, id="zero-attempts"),
        pytest.param({"x-original-topic": None}, False, id="no-topic"),
    ],
)
def test_dead_letter_headers(changes: dict[str, str | None], valid: bool) -> None:
    headers = {
        name: value for name, value in {**DLQ_HEADERS, **changes}.items() if value is not None
    }

    assert validator("dead-letter-headers").is_valid(headers) is valid
    if valid:
        assert DeadLetterHeaders.model_validate(headers).error_stage == headers["x-error-stage"]
    else:
        with pytest.raises(ValidationError):
            DeadLetterHeaders.model_validate(headers)


def test_dead_letter_time_is_iso_8601() -> None:
    with pytest.raises(ValidationError, match="x-first-attempt-at"):
        DeadLetterHeaders.model_validate({**DLQ_HEADERS, "x-first-attempt-at": "yesterday"})


def test_header_constants_are_the_model_aliases() -> None:
    constants = {value for name, value in vars(schemas).items() if name.startswith("HEADER_")}
    aliases = {field.alias for field in DeadLetterHeaders.model_fields.values()}

    assert constants == aliases == {name for name in DLQ_HEADERS if name.startswith("x-")}


@pytest.mark.parametrize("file_name", ["config.schema.json", "destination.schema.json"])
def test_every_config_property_in_the_schema_is_described(file_name: str) -> None:
    schema = json.loads(RENDERED[file_name])
    objects = [schema, *schema.get("$defs", {}).values()]
    undescribed = [
        name
        for model in objects
        for name, prop in model.get("properties", {}).items()
        if not prop.get("description")
    ]
    assert undescribed == []
