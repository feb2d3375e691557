"""Validate stage: a decoded JSON object → an ``Identify``, ``Track`` or ``Group`` message, or a
rejection.

The type checks come first and keep RudderStack's texts (docs/rudderstack-compatibility.md): a
missing type is ``Event type is required``; a type other than identify or track (compared
lowercased) is ``Event type <type> is not supported``. The filter stage skips such events before
they get here unless ``pipeline.dead_letter_unsupported_types`` is on. A group is accepted only
when ``destination.enableProfiles`` is on (the caller says so with ``accept_groups``). A type
that is not text is rejected here with a clear reason (RudderStack fails it with a 500 and
retries it forever).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from processor.events import MESSAGE_MODELS, Group, Identify, Message, Track
from processor.pipeline.plan import Rejection

_MAX_PROBLEMS_SHOWN = 3
_MAX_VALUE_SHOWN = 40


def validate(
    document: dict[str, Any], *, accept_groups: bool = False
) -> Message | Group | Rejection:
    """Check the message type, then the fields the mapping reads.

    ``accept_groups`` is ``destination.enableProfiles``: without it a group is not supported.
    """
    message_type = document.get("type")
    if message_type is None or message_type == "":
        return _reject("Event type is required")
    if not isinstance(message_type, str):
        shown = json.dumps(message_type)[:_MAX_VALUE_SHOWN]
        return _reject(f"Event type must be a string, got {shown}")
    lowered = message_type.lower()
    model = _model_for(lowered, accept_groups)
    if model is None:
        return _reject(f"Event type {lowered} is not supported")
    try:
        return model.model_validate(document)
    except ValidationError as error:
        return _reject(f"Invalid {lowered} event: {_describe(error)}")


def _model_for(
    message_type: str, accept_groups: bool
) -> type[Identify] | type[Track] | type[Group] | None:
    if accept_groups and message_type == "group":
        return Group
    return MESSAGE_MODELS.get(message_type)


def _describe(error: ValidationError) -> str:
    """The field errors on one line: ``context.traits: Input should be a valid dictionary``."""
    problems = [
        f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
        for item in error.errors(include_url=False, include_input=False)
    ]
    shown = "; ".join(problems[:_MAX_PROBLEMS_SHOWN])
    hidden = len(problems) - _MAX_PROBLEMS_SHOWN
    return f"{shown} (and {hidden} more)" if hidden > 0 else shown


def _reject(reason: str) -> Rejection:
    return Rejection(reason=reason, stage="validate")
