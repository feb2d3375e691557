"""Tests for processor/events.py: tolerant, typed models of RudderStack messages."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from processor.events import ANY_MESSAGE, Alias, Group, Identify, Page, Screen, Track


@pytest.mark.parametrize(
    ("message_type", "model"),
    [
        pytest.param("identify", Identify, id="identify"),
        pytest.param("Track", Track, id="track"),
        pytest.param("PAGE", Page, id="page"),
        pytest.param("screen", Screen, id="screen"),
        pytest.param("Group", Group, id="group"),
        pytest.param("alias", Alias, id="alias"),
    ],
)
def test_union_picks_the_model_by_lowercased_type(message_type: str, model: type[Any]) -> None:
    message = ANY_MESSAGE.validate_python({"type": message_type})

    assert type(message) is model
    assert message.type == message_type.lower()


@pytest.mark.parametrize(
    "document",
    [
        pytest.param({"type": 5}, id="number"),
        pytest.param({"type": "order"}, id="unknown-name"),
        pytest.param({"event": "x"}, id="missing"),
    ],
)
def test_union_refuses_a_type_that_names_no_model(document: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ANY_MESSAGE.validate_python(document)


def test_a_model_refuses_another_type() -> None:
    with pytest.raises(ValidationError, match="type"):
        Identify.model_validate({"type": "track"})


def test_unknown_fields_are_kept() -> None:
    message = Track.model_validate(
        {
            "type": "track",
            "event": "Order Completed",
            "channel": "web",
            "context": {"ip": "14.5.67.21", "externalId": [{"type": "x", "id": 1, "extra": 2}]},
        }
    )

    assert message.model_extra == {"channel": "web"}
    assert message.context is not None
    assert message.context.model_extra == {"ip": "14.5.67.21"}
    assert message.external_ids[0].model_extra == {"extra": 2}


def test_context_shortcuts_are_empty_without_context() -> None:
    message = Identify.model_validate({"type": "identify"})

    assert (message.context_traits, message.external_ids) == ({}, [])


def test_context_shortcuts_read_context() -> None:
    message = Identify.model_validate(
        {
            "type": "identify",
            "context": {
                "traits": {"email": "jo@example.com"},
                "externalId": [{"type": "trengoContactId", "id": 7}],
            },
        }
    )

    assert message.context_traits == {"email": "jo@example.com"}
    assert [(item.type, item.id) for item in message.external_ids] == [("trengoContactId", 7)]


@pytest.mark.parametrize(
    "external_id",
    [
        pytest.param({"type": "brazeExternalId", "id": {"nested": True}}, id="object-id"),
        pytest.param({"type": "other", "id": 1.5}, id="float-id"),
        pytest.param({"id": "no type"}, id="no-type"),
        pytest.param({"type": "trengoChannelId", "value": "x"}, id="no-id"),
    ],
)
def test_external_ids_of_any_json_shape_are_accepted(external_id: dict[str, Any]) -> None:
    message = Track.model_validate({"type": "track", "context": {"externalId": [external_id]}})

    assert message.external_ids[0].id == external_id.get("id")


@pytest.mark.parametrize(
    ("user_id", "stored"),
    [
        pytest.param("u1", "u1", id="text"),
        pytest.param(123, "123", id="integer-as-text"),
        pytest.param(None, None, id="null"),
    ],
)
def test_user_id_is_text(user_id: object, stored: str | None) -> None:
    assert Identify.model_validate({"type": "identify", "userId": user_id}).userId == stored


@pytest.mark.parametrize(
    "user_id",
    [
        pytest.param(1.5, id="fraction"),
        pytest.param(True, id="boolean"),
        pytest.param({"id": 1}, id="object"),
    ],
)
def test_user_id_is_neither_text_nor_integer(user_id: object) -> None:
    with pytest.raises(ValidationError, match="Input should be a string or an integer"):
        Identify.model_validate({"type": "identify", "userId": user_id})


def test_messages_are_frozen() -> None:
    message = Identify.model_validate({"type": "identify"})

    with pytest.raises(ValidationError, match="frozen"):
        message.event = "x"  # type: ignore[misc]
