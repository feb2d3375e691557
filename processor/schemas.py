"""JSON Schemas of what operators and producers exchange with the processor, and the DLQ headers.

``python -m processor.schemas schemas`` (``make schemas``) writes ``<name>.schema.json`` for:

* ``event``: a Kafka record value, one RudderStack message (``processor.events``);
* ``destination``: the ``destination`` section, RudderStack's own keys;
* ``config``: the whole configuration file;
* ``dead-letter-headers``: the headers of a dead-letter record.

The dead-letter header names are defined once, by the dead-letter writer (``engine/dlq.py``);
the header model below takes them as its aliases (docs/errors.md lists what each one holds).
Header values are UTF-8 text; numbers are decimal digits and the time is ISO 8601.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from processor.config import DestinationConfig, Settings
from processor.engine.dlq import (
    HEADER_ATTEMPTS,
    HEADER_ERROR_REASON,
    HEADER_ERROR_STAGE,
    HEADER_ERROR_STATUS,
    HEADER_FIRST_ATTEMPT_AT,
    HEADER_ORIGINAL_OFFSET,
    HEADER_ORIGINAL_PARTITION,
    HEADER_ORIGINAL_SIZE,
    HEADER_ORIGINAL_TOPIC,
    HEADER_TRUNCATED,
    Stage,
)
from processor.events import ANY_MESSAGE

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_Digits = Annotated[str, Field(pattern=r"^[0-9]+$")]


class DeadLetterHeaders(BaseModel):
    """Headers of a dead-letter record; its key and value are the original record's, unchanged."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="allow")

    error_stage: Stage = Field(
        alias=HEADER_ERROR_STAGE, description="The pipeline stage that gave up on the event."
    )
    error_reason: str = Field(alias=HEADER_ERROR_REASON, description="Why, in human words.")
    error_status: Annotated[str, Field(pattern=r"^[1-5][0-9]{2}$")] | SkipJsonSchema[None] = Field(
        default=None,
        alias=HEADER_ERROR_STATUS,
        description="Trengo's HTTP status, when a response decided the outcome.",
    )
    original_topic: str = Field(alias=HEADER_ORIGINAL_TOPIC)
    original_partition: _Digits = Field(alias=HEADER_ORIGINAL_PARTITION)
    original_offset: _Digits = Field(alias=HEADER_ORIGINAL_OFFSET)
    attempts: Annotated[str, Field(pattern=r"^[1-9][0-9]*$")] = Field(
        alias=HEADER_ATTEMPTS, description="Delivery attempts made, at least 1."
    )
    first_attempt_at: datetime = Field(
        alias=HEADER_FIRST_ATTEMPT_AT, description="When the first attempt started (ISO 8601)."
    )
    truncated: Literal["true"] | SkipJsonSchema[None] = Field(
        default=None,
        alias=HEADER_TRUNCATED,
        description="Present when the broker refused the record as too large: the value is cut.",
    )
    original_size: _Digits | SkipJsonSchema[None] = Field(
        default=None,
        alias=HEADER_ORIGINAL_SIZE,
        description="With x-truncated: the original value's size in bytes.",
    )


def _event_schema() -> dict[str, Any]:
    return ANY_MESSAGE.json_schema()


def _destination_schema() -> dict[str, Any]:
    return DestinationConfig.model_json_schema(by_alias=True)


def _config_schema() -> dict[str, Any]:
    return Settings.model_json_schema(by_alias=True)


def _dead_letter_headers_schema() -> dict[str, Any]:
    return DeadLetterHeaders.model_json_schema(by_alias=True)


SCHEMAS: dict[str, tuple[str, Callable[[], dict[str, Any]]]] = {
    "event": ("A RudderStack message: one Kafka record value", _event_schema),
    "destination": ("The destination section (RudderStack's Trengo config)", _destination_schema),
    "config": ("The trengo-processor configuration file", _config_schema),
    "dead-letter-headers": ("Headers of a dead-letter record", _dead_letter_headers_schema),
}


def render_schemas() -> dict[str, str]:
    """Every schema file's name and its exact text (sorted keys, indent 2, trailing newline)."""
    rendered = {}
    for name, (title, build) in SCHEMAS.items():
        schema = {"$schema": JSON_SCHEMA_DIALECT, **build(), "title": title}
        rendered[f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return rendered


def main(argv: Sequence[str] | None = None) -> int:
    """Write the schema files into the given directory."""
    parser = argparse.ArgumentParser(prog="python -m processor.schemas", description=__doc__)
    parser.add_argument("directory", type=Path, help="where to write <name>.schema.json")
    directory: Path = parser.parse_args(argv).directory
    directory.mkdir(parents=True, exist_ok=True)
    for file_name, text in render_schemas().items():
        (directory / file_name).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
