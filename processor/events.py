"""Pydantic models of the RudderStack messages read from Kafka.

The models are tolerant where RudderStack is (unknown fields are kept, every field but ``type``
is optional) and strict where the mapping depends on a field's shape: ``type`` must be text;
``traits``, ``context.traits`` and ``properties`` must be objects; ``context.externalId`` must be
a list of objects. The ``type`` is accepted in any letter case and stored lowercased, as
RudderStack lowercases it (``"Identify"`` is an identify).

``Identify`` and ``Track`` reach the map stage, and ``Group`` too when
``destination.enableProfiles`` is on (validate decides); ``Page``, ``Screen`` and ``Alias`` exist
so the union (and the JSON Schema generated from it) names every message type. What each type
becomes in Trengo: docs/architecture.md and docs/rudderstack-compatibility.md.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    JsonValue,
    Tag,
    TypeAdapter,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError


def _lowercase(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _any_letter_case(schema: dict[str, JsonValue]) -> None:
    """Describe a lowercased ``type`` tag in the JSON Schema as a case-insensitive pattern.

    JSON Schema patterns are ECMA-262 regular expressions, which have no inline ``(?i)`` flag.
    """
    tag = str(schema.pop("const"))
    schema.pop("enum", None)
    schema["type"] = "string"
    schema["pattern"] = "^" + "".join(f"[{letter.upper()}{letter}]" for letter in tag) + "$"


def _integer_as_text(value: object) -> object:
    """Server-side sources may send ids as integers; the processor uses them as text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return value
    raise PydanticCustomError("string_or_integer", "Input should be a string or an integer")


_LOWERCASED = BeforeValidator(_lowercase)
_ANY_CASE_IN_SCHEMA = Field(json_schema_extra=_any_letter_case)
TextId = Annotated[
    str,
    BeforeValidator(_integer_as_text),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "integer"}]}),
]


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")


class ExternalId(_Part):
    """One ``context.externalId`` item; only ``type`` and ``id`` are read."""

    type: str | None = None
    id: JsonValue = None


class Context(_Part):
    """``message.context``: SDK facts plus the traits and external ids the mapping reads."""

    traits: dict[str, Any] | None = None
    externalId: list[ExternalId] | None = None  # noqa: N815 - RudderStack's key


class BaseMessage(_Part):
    """Fields every RudderStack message may carry."""

    type: str
    event: str | None = None
    userId: TextId | None = None  # noqa: N815 - RudderStack's keys from here on
    anonymousId: TextId | None = None  # noqa: N815
    messageId: str | None = None  # noqa: N815
    traits: dict[str, Any] | None = None
    context: Context | None = None
    properties: dict[str, Any] | None = None
    timestamp: str | None = None

    @property
    def context_traits(self) -> dict[str, Any]:
        """``context.traits``, empty when absent."""
        return (self.context.traits if self.context else None) or {}

    @property
    def external_ids(self) -> list[ExternalId]:
        """``context.externalId``, empty when absent."""
        return (self.context.externalId if self.context else None) or []


class Identify(BaseMessage):
    """Creates or updates a Trengo contact."""

    type: Annotated[Literal["identify"], _LOWERCASED, _ANY_CASE_IN_SCHEMA]


class Track(BaseMessage):
    """Opens a Trengo ticket when ``event`` is mapped in ``eventTemplateMap``."""

    type: Annotated[Literal["track"], _LOWERCASED, _ANY_CASE_IN_SCHEMA]


class Page(BaseMessage):
    """Not supported by the Trengo destination."""

    type: Annotated[Literal["page"], _LOWERCASED, _ANY_CASE_IN_SCHEMA]
    name: str | None = None


class Screen(BaseMessage):
    """Not supported by the Trengo destination."""

    type: Annotated[Literal["screen"], _LOWERCASED, _ANY_CASE_IN_SCHEMA]
    name: str | None = None


class Group(BaseMessage):
    """Attaches the user's contact to the group's Trengo profile (opt-in: enableProfiles)."""

    type: Annotated[Literal["group"], _LOWERCASED, _ANY_CASE_IN_SCHEMA]
    groupId: TextId | None = None  # noqa: N815


class Alias(BaseMessage):
    """Not supported by the Trengo destination."""

    type: Annotated[Literal["alias"], _LOWERCASED, _ANY_CASE_IN_SCHEMA]
    previousId: TextId | None = None  # noqa: N815


def _message_tag(value: object) -> str | None:
    """The union's discriminator: the lowercased ``type`` of a document or a model."""
    message_type = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return message_type.lower() if isinstance(message_type, str) else None


Message = Identify | Track

AnyMessage = Annotated[
    Annotated[Identify, Tag("identify")]
    | Annotated[Track, Tag("track")]
    | Annotated[Page, Tag("page")]
    | Annotated[Screen, Tag("screen")]
    | Annotated[Group, Tag("group")]
    | Annotated[Alias, Tag("alias")],
    Discriminator(_message_tag),
]

ANY_MESSAGE: TypeAdapter[AnyMessage] = TypeAdapter(AnyMessage)

MESSAGE_MODELS: dict[str, type[Identify] | type[Track]] = {
    "identify": Identify,
    "track": Track,
}
