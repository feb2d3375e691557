"""Tests for processor/pipeline/decode.py: record bytes → a JSON object or a decode rejection."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(b'{"a":-9223372036854775809}', {"a": -9223372036854775809}, id="below-int64"),
        pytest.param(b'{"a":18446744073709551616}', {"a": 18446744073709551616}, id="above-uint64"),
        pytest.param(b'{"a":' + b"7" * 60 + b"}", {"a": int("7" * 60)}, id="sixty-digits"),
        pytest.param(
            b'{"id":"1234567890123456789012","n":1.5e19}',
            {"id": "1234567890123456789012", "n": 1.5e19},
            id="long-digits-in-text",
        ),
        pytest.param(
            b'{"p":' + b"[" * 950 + b"]" * 950 + b"}",
            {"p": json.loads(b"[" * 950 + b"]" * 950)},
            id="deep-but-parseable",
        ),
    ],
)
def test_reads_what_the_standard_parser_reads(value: bytes, expected: dict[str, object]) -> None:
    """The fast parser (orjson) reads big integers as floats and nests deeper: such values go
    to the standard parser, so every value reads the same whichever parser took it."""
    decoded = decode(value)
    assert decoded == expected
    assert decoded == json.loads(value)
    assert [type(item) for item in decoded.values()] == [  # type: ignore[union-attr]
        type(item) for item in expected.values()
    ]


def test_nesting_past_the_standard_parsers_limit_is_rejected_though_orjson_could_read_it() -> None:
    value = b'{"p":' + b"[" * 1010 + b"]" * 1010 + b"}"  # orjson stops at 1,024 levels
    assert decode(value) == Rejection("Event value is not valid JSON: nested too deeply", "decode")


@given(
    st.dictionaries(
        st.text(max_size=8),
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers(min_value=-(2**70), max_value=2**70)
            | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(max_size=20),
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
            max_leaves=20,
        ),
        max_size=6,
    ),
    st.booleans(),
)
def test_any_json_object_decodes_as_the_standard_parser_reads_it(
    document: dict[str, object], ascii_only: bool
) -> None:
    value = json.dumps(document, ensure_ascii=ascii_only).encode()
    assert decode(value) == json.loads(value)
