"""Decode stage: a Kafka record value (bytes) → a JSON object, or a rejection saying why not.

Strict JSON only: ``NaN`` and ``Infinity`` (which Python's parser accepts by default) are
rejected, and so is nesting deep enough to exhaust the parser's recursion.
"""

from __future__ import annotations

import json
from typing import Any

from processor.pipeline.plan import Rejection

_JSON_TYPE_NAMES: dict[type, str] = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def decode(value: bytes | None) -> dict[str, Any] | Rejection:
    """Parse one record value as a UTF-8 JSON object."""
    text = _utf8_text(value)
    if isinstance(text, Rejection):
        return text
    document = _parse_json(text)
    if isinstance(document, Rejection):
        return document
    if not isinstance(document, dict):
        return _reject(f"Event value must be a JSON object, got {_JSON_TYPE_NAMES[type(document)]}")
    return document


def _utf8_text(value: bytes | None) -> str | Rejection:
    if value is None:
        return _reject("Event has no value (a tombstone record)")
    if not value:
        return _reject("Event value is empty")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as error:
        return _reject(f"Event value is not valid UTF-8: {error.reason} at byte {error.start}")


def _parse_json(text: str) -> Any:
    """The parsed JSON value, or a Rejection."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno} column {error.colno}"
        return _reject(f"Event value is not valid JSON: {error.msg} at {where}")
    except ValueError as error:  # from _refuse_constant
        return _reject(f"Event value is not valid JSON: {error}")
    except RecursionError:
        return _reject("Event value is not valid JSON: nested too deeply")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _reject(reason: str) -> Rejection:
    return Rejection(reason=reason, stage="decode")
