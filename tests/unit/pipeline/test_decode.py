"""Tests for processor/pipeline/decode.py: record bytes → a JSON object or a decode rejection."""

from __future__ import annotations

import pytest

from processor.pipeline.decode import decode
from processor.pipeline.plan import Rejection


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(b'{"type":"identify"}', {"type": "identify"}, id="object"),
        pytest.param(b'  {"a": [1, 2.5, null]}\n', {"a": [1, 2.5, None]}, id="whitespace-around"),
        pytest.param('{"name":"Zoë"}'.encode(), {"name": "Zoë"}, id="utf-8-text"),
        pytest.param(b'{"a":1,"a":2}', {"a": 2}, id="duplicate-key-last-wins"),
    ],
)
def test_decodes_a_json_object(value: bytes, expected: dict[str, object]) -> None:
    assert decode(value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param(None, "Event has no value (a tombstone record)", id="null-value"),
        pytest.param(b"", "Event value is empty", id="empty"),
        pytest.param(
            b'{"a":"\xff"}',
            "Event value is not valid UTF-8: invalid start byte at byte 6",
            id="bad-utf-8",
        ),
        pytest.param(
            b'{"type": identify}',
            "Event value is not valid JSON: Expecting value at line 1 column 10",
            id="bad-json",
        ),
        pytest.param(
            b'{"a":\n NaN}', "Event value is not valid JSON: NaN is not a JSON value", id="nan"
        ),
        pytest.param(
            b'{"a": -Infinity}',
            "Event value is not valid JSON: -Infinity is not a JSON value",
            id="infinity",
        ),
        pytest.param(
            b"[" * 100_000 + b"]" * 100_000,
            "Event value is not valid JSON: nested too deeply",
            id="deep-nesting",
        ),
        pytest.param(b"[1]", "Event value must be a JSON object, got an array", id="array"),
        pytest.param(b'"x"', "Event value must be a JSON object, got a string", id="string"),
        pytest.param(b"12", "Event value must be a JSON object, got a number", id="integer"),
        pytest.param(b"1.5", "Event value must be a JSON object, got a number", id="float"),
        pytest.param(b"true", "Event value must be a JSON object, got a boolean", id="boolean"),
        pytest.param(b"null", "Event value must be a JSON object, got null", id="json-null"),
    ],
)
def test_rejects_what_is_not_a_json_object(value: bytes | None, reason: str) -> None:
    assert decode(value) == Rejection(reason=reason, stage="decode")
