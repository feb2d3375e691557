"""What the sandbox's API routes share: the app and request keys, JSON answers, and Laravel's
request validation (422 ``{"message", "errors": {field: [message]}}``, 404 ``{"message"}``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from aiohttp import web

from devkit.sandbox._trengo_model import JSONObject, JSONValue
from devkit.sandbox._trengo_state import SandboxState

STATE_KEY = web.AppKey("trengo_sandbox_state", SandboxState)
JSON_BODY_KEY: web.RequestKey[JSONValue] = web.RequestKey("trengo_sandbox_json_body")

_RecordT = TypeVar("_RecordT")
# Laravel's `boolean` rule accepts exactly true/false, 1/0 and "1"/"0" (1 and 0 hash like the
# bools, so they find the first two keys).
_BOOLEANS: Mapping[object, bool] = {True: True, False: False, "1": True, "0": False}


def json_answer(body: JSONValue, status: int = 200) -> web.Response:
    """A JSON response."""
    return web.json_response(body, status=status)


def message_answer(message: str, status: int) -> web.Response:
    """A ``{"message": ...}`` response, the shape of every non-validation error."""
    return json_answer({"message": message}, status)


def model_not_found(model: str, record_id: int) -> web.Response:
    """Laravel's 404 for a route-bound model: ``No query results for model [App\\Models\\X] id``."""
    return message_answer(f"No query results for model [App\\Models\\{model}] {record_id}", 404)


def as_int(value: JSONValue) -> int | None:
    """An integer, or a string of digits, as an int; None for anything else (also booleans)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else None


def page_number(raw: str | None) -> int:
    """The ``page`` query parameter; missing, non-numeric or below 1 means page 1."""
    page = as_int(raw)
    return page if page is not None and page >= 1 else 1


class Validator:
    """Reads fields of a JSON body and collects Laravel's 422 messages for the wrong ones.

    Strings are trimmed and an empty string counts as missing, as Laravel's middleware does.
    """

    def __init__(self, body: JSONValue) -> None:
        self._body: Mapping[str, JSONValue] = body if isinstance(body, dict) else {}
        self.errors: dict[str, list[str]] = {}

    def fail(self, field: str, rule_message: str) -> None:
        """Record ``The <field> <rule_message>`` for ``field``."""
        self.errors.setdefault(field, []).append(f"The {_label(field)} {rule_message}")

    def string(self, field: str, *, required: bool) -> str | None:
        """The trimmed string in ``field``, or None (an error when required or not a string)."""
        value = self._body.get(field)
        if isinstance(value, str):
            value = value.strip() or None
        if value is None:
            if required:
                self.fail(field, "field is required.")
            return None
        if not isinstance(value, str):
            self.fail(field, "field must be a string.")
            return None
        return value

    def integer(self, field: str) -> int | None:
        """The required integer in ``field`` (a string of digits counts), or None."""
        value = self._body.get(field)
        if value is None or value == "":
            self.fail(field, "field is required.")
            return None
        number = as_int(value)
        if number is None:
            self.fail(field, "field must be an integer.")
        return number

    def existing(self, field: str, records: Mapping[int, _RecordT]) -> _RecordT | None:
        """The record whose id is in ``field`` (required, integer, must be in ``records``)."""
        record_id = self.integer(field)
        if record_id is None:
            return None
        record = records.get(record_id)
        if record is None:
            self.invalid(field)
        return record

    def invalid(self, field: str) -> None:
        """Record Laravel's ``The selected <field> is invalid.`` for ``field``."""
        self.errors.setdefault(field, []).append(f"The selected {_label(field)} is invalid.")

    def boolean(self, field: str) -> bool:
        """The optional boolean in ``field`` (missing means False)."""
        value = self._body.get(field)
        if value is None:
            return False
        if isinstance(value, (bool, int, str)) and value in _BOOLEANS:
            return _BOOLEANS[value]
        self.fail(field, "field must be true or false.")
        return False

    def optional_ids(self, field: str) -> tuple[int, ...] | None:
        """A list of integer ids in ``field``, or None when absent."""
        value = self._body.get(field)
        if value is None:
            return None
        ids = [as_int(item) for item in value] if isinstance(value, list) else None
        if ids is None or None in ids:
            self.fail(field, "field must be an array of integers.")
            return None
        return tuple(i for i in ids if i is not None)

    def failure(self) -> web.Response:
        """The 422 answer: first message (+ "(and N more errors)") and all errors by field."""
        messages = [
            message for field_messages in self.errors.values() for message in field_messages
        ]
        summary = messages[0]
        if len(messages) > 1:
            more = len(messages) - 1
            summary += f" (and {more} more error{'s' if more > 1 else ''})"
        errors: JSONObject = {field: list(msgs) for field, msgs in self.errors.items()}
        return json_answer({"message": summary, "errors": errors}, 422)


def _label(field: str) -> str:
    return field.replace("_", " ")
