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


SURROGATE = "Event value holds a lone UTF-16 surrogate (\\ud800-\\udfff), not text"


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(rb'{"type":"identify","userId":"\ud800"}', id="user-id"),
        pytest.param(rb'{"type":"\uDFFF"}', id="type-upper-case-escape"),
        pytest.param(rb'{"type":"track","event":"Order \udc00"}', id="event-name"),
        pytest.param(rb'{"traits":{"name":"Ada \ud83d"}}', id="trait-high-without-low"),
        pytest.param(rb'{"properties":{"\ude00key":1}}', id="property-key"),
        pytest.param(rb'{"properties":{"items":[[["x\udbff"]]]}}', id="nested-list"),
        pytest.param(rb'{"a":"\ude00\ud83d"}', id="pair-in-wrong-order"),
        pytest.param(b'{"p":' + b"[" * 900 + rb'"\ud800"' + b"]" * 900 + b"}", id="deep"),
    ],
)
def test_rejects_a_lone_surrogate_anywhere(value: bytes) -> None:
    """A lone surrogate is not text: hashing, URL quoting and JSON bodies would fail on it."""
    assert decode(value) == Rejection(reason=SURROGATE, stage="decode")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(rb'{"e":"\ud83d\ude00"}', {"e": "\U0001f600"}, id="surrogate-pair"),
        pytest.param(rb'{"e":"\\ud800"}', {"e": "\\ud800"}, id="escaped-backslash"),
        pytest.param('{"e":"\ud7ff\ue000"}'.encode(), {"e": "\ud7ff\ue000"}, id="around-range"),
    ],
)
def test_keeps_text_that_only_looks_like_a_surrogate(
    value: bytes, expected: dict[str, object]
) -> None:
    assert decode(value) == expected


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        pytest.param(b'{"a":1e400}', "1e400", id="overflow"),
        pytest.param(b'{"a":[-1.5E+999]}', "-1.5E+999", id="negative-overflow-in-list"),
        pytest.param(b'{"p":{"x":' + b"9" * 400 + b".0}}", "9" * 40, id="long-literal-shown-cut"),
    ],
)
def test_rejects_a_number_too_large_for_a_double(value: bytes, literal: str) -> None:
    assert decode(value) == Rejection(
        reason=f"Event value is not valid JSON: number {literal} is out of range for a double",
        stage="decode",
    )


def test_keeps_finite_numbers_and_tiny_ones() -> None:
    assert decode(b'{"a":1.5e308,"b":1e-400,"c":-0.0,"d":12345678901234567890}') == {
        "a": 1.5e308,
        "b": 0.0,
        "c": -0.0,
        "d": 12345678901234567890,
    }
