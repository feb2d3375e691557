"""Decode stage: a Kafka record value (bytes) → a JSON object, or a rejection saying why not.

Strict JSON only: ``NaN`` and ``Infinity`` (which Python's parser accepts by default) are
rejected, and so is nesting deep enough to exhaust the parser's recursion.

Text and numbers are decided here, once, so no later step (hashing, URL quoting, JSON request
bodies, Kafka headers) can fail on them: a string holding a lone UTF-16 surrogate (the escape
``"\\ud800"`` without its pair, which is not text) and a number too large for a double
(``1e400``, which Python reads as infinity) reject the event.

Most values are parsed by ``orjson``, much cheaper than the standard library on RudderStack's
events (``make bench``, sitestream). It is strict where this stage is (no ``NaN``, no lone
surrogate, no infinite number, valid UTF-8 only); whatever it refuses goes to the standard
parser, which says why in the words the rejections have always used. Two kinds of value skip
it, where it would read them differently: integers of 19 digits or more (it reads those beyond
64 bits as floats; the standard parser keeps them exact) and values that may nest deeper than
the standard parser can (orjson allows 1,024 levels; later steps, such as JSON request bodies,
recurse like the standard parser).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from processor.pipeline.plan import Rejection

_JSON_TYPE_NAMES: dict[type, str] = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}
# Strict UTF-8 decoding refuses encoded surrogates, so a lone one can only come from a
# ``\uD800``-``\uDFFF`` escape: only values holding such an escape have their strings walked.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_MAX_SHOWN = 40
# Every digit as 0, so that a run of 19 digits is a run of 19 zeros (found faster than a regex).
_DIGITS_AS_ZEROS = bytes.maketrans(b"0123456789", b"0" * 10)
_LONG_DIGIT_RUN = b"0" * 19
# Nesting both parsers read (the standard one stops at about 1,000 levels, orjson at 1,024).
_SAFE_DEPTH = 900


def decode(value: bytes | None) -> dict[str, Any] | Rejection:
    """Parse one record value as a UTF-8 JSON object of text and finite numbers."""
    if value and _fast_parse_reads_alike(value):
        try:
            document = orjson.loads(value)
        except orjson.JSONDecodeError:
            pass  # the standard parser below says what is wrong
        else:
            return document if isinstance(document, dict) else _not_an_object(document)
    text = _utf8_text(value)
    if isinstance(text, Rejection):
        return text
    document = _parse_json(text)
    if isinstance(document, Rejection):
        return document
    if not isinstance(document, dict):
        return _not_an_object(document)
    if value is not None and _SURROGATE_ESCAPE.search(value) and _has_lone_surrogate(document):
        return _reject("Event value holds a lone UTF-16 surrogate (\\ud800-\\udfff), not text")
    return document


def _fast_parse_reads_alike(value: bytes) -> bool:
    """Whether orjson reads the value as the standard parser would (module docstring)."""
    # Each level of nesting takes two bytes: a value this short cannot nest deep, uncounted.
    shallow = len(value) < 2 * _SAFE_DEPTH or (value.count(b"{") + value.count(b"[") < _SAFE_DEPTH)
    return shallow and _LONG_DIGIT_RUN not in value.translate(_DIGITS_AS_ZEROS)


def _not_an_object(document: Any) -> Rejection:
    return _reject(f"Event value must be a JSON object, got {_JSON_TYPE_NAMES[type(document)]}")


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
        return _STRICT_DECODER.decode(text)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno} column {error.colno}"
        return _reject(f"Event value is not valid JSON: {error.msg} at {where}")
    except ValueError as error:  # the hooks below, or an integer over Python's digit limit
        return _reject(f"Event value is not valid JSON: {error}")
    except RecursionError:
        return _reject("Event value is not valid JSON: nested too deeply")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(literal: str) -> float:
    number = float(literal)
    if not math.isfinite(number):
        raise ValueError(f"number {literal[:_MAX_SHOWN]} is out of range for a double")
    return number


_STRICT_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def _has_lone_surrogate(document: dict[str, Any]) -> bool:
    """Walks every key and string without recursion (nesting may be as deep as the parser's)."""
    pending: list[Any] = [document]
    while pending:
        node = pending.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                return True
        elif isinstance(node, dict):
            pending.extend(node.keys())
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return False


def _reject(reason: str) -> Rejection:
    return Rejection(reason=reason, stage="decode")
