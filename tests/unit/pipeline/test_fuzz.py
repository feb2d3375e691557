"""Property-based fuzzing at the boundary: any bytes, any JSON document, through decode →
validate → map → the executor (the dry run's rehearsal), is well-formed requests or a rejection,
never an exception.

``make test`` runs a bounded, derandomized number of examples (stable in CI); ``make fuzz``
runs the ``fuzz`` profile: many more examples, randomized.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.config import Settings
from processor.pipeline.decode import decode
from processor.pipeline.map import plan_event
from processor.pipeline.plan import Rejection
from processor.pipeline.templates import EventTemplates
from processor.pipeline.validate import validate
from processor.render import rehearse
from tests.processor_support import KNOWN_ROUTE

settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "fuzz",
    max_examples=20_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

EVENTS = ("Order Completed", "Signed Up")
# Replaced in the serialized document by raw JSON no Python value serializes to.
_RAW = {
    "\x00RAW-BIG\x00": "1e400",
    "\x00RAW-NEG\x00": "-1e999",
    "\x00RAW-DEEP\x00": "[" * 990 + '"x"' + "]" * 990,
    "\x00RAW-DEEPER\x00": "[" * 5_000 + "]" * 5_000,
    "\x00RAW-OBJECTS\x00": '{"a":' * 900 + "1" + "}" * 900,
}


def _destination(identifier: str) -> Settings:
    mappings = [
        {"from": EVENTS[0], "to": "Order {{ properties }}", "message": "{{ items }} {{ a.b }}"},
        {"from": EVENTS[1], "to": "{{ event }}", "labels": ["vip"], "messageType": "message"},
    ]
    return Settings(
        destination={
            "apiToken": "t",
            "channelId": "7",
            "channelIdentifier": identifier,
            "eventTemplateMap": mappings,
            "customFieldMap": [{"trait": "plan", "fieldId": 11}, {"trait": "email", "fieldId": 12}],
            "enableProfiles": True,
            "profileKeyFieldId": 21,
        }
    )


SETTINGS = {identifier: _destination(identifier) for identifier in ("email", "phone")}

_hostile_text = st.sampled_from(
    [
        "\ud800",
        "a\udfffb",
        "..",
        "../../channels/1",
        "1/labels",
        "-1",
        "1.5",
        "0",
        "9" * 25,
        "a" * 300 + "@example.com",
        "+" + "1" * 30,
        "ann@example.com",
        "+31612345678",
        "123",
        "{{ 7 * 7 }}",
        "x" * 100_000,
        *_RAW,
    ]
)
# Mostly valid text (so events get past decode), else one of the hostile strings above.
_text = st.text() | st.text() | _hostile_text
_scalars = st.none() | st.booleans() | st.integers() | st.floats() | _text
_json = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
    max_leaves=12,
)


def _field(*likely: Any) -> st.SearchStrategy[Any]:
    """Mostly one of the values the mapping looks for, else anything (hostile included)."""
    return _mostly(st.sampled_from(likely))


def _mostly(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` nine times in ten, anything (hostile included) else."""
    return st.integers(0, 9).flatmap(lambda draw: _json if draw == 0 else good)


_traits = st.fixed_dictionaries(
    {
        "email": _field("ann@example.com", "b@example.org"),
        "phone": _field("+31612345678", 31612345678),
    },
    optional={
        "name": _field("Ann"),
        "firstName": _field("Ann"),
        "plan": _field("pro", 3),
    },
)
_external_id = st.fixed_dictionaries(
    {
        "type": _field("trengoContactId", "trengoChannelId"),
        "id": _field(1, "42", 10**19, "..", "../../channels/1", "1/labels", -1, "1e3"),
    }
)
_context = st.fixed_dictionaries(
    {"traits": _mostly(_traits)},
    optional={"externalId": _mostly(st.lists(_external_id, max_size=2))},
)
_event = st.fixed_dictionaries(
    {
        "type": _field("identify", "track", "group", "Identify"),
        "event": _field(*EVENTS),
        "context": _mostly(_context),
    },
    optional={
        "userId": _field("u1", 7),
        "messageId": _field("m1"),
        "groupId": _field("acme", 7),
        "traits": _mostly(_traits),
        "properties": _mostly(_traits | st.dictionaries(_text, _json, max_size=5)),
    },
)


def _serialized(document: object) -> bytes:
    text = json.dumps(document)  # NaN and Infinity come out as such: decode must refuse them
    for marker, raw in _RAW.items():
        text = text.replace(json.dumps(marker), raw)
    return text.encode()


def _check_outcome(value: bytes, identifier: str) -> None:
    """A rejection, or requests on known routes whose parts all encode."""
    config = SETTINGS[identifier]
    document = decode(value)
    if isinstance(document, Rejection):
        return
    message = validate(document, accept_groups=True)
    if isinstance(message, Rejection):
        return
    plan = plan_event(message, config.destination, EventTemplates(config.destination))
    if isinstance(plan, Rejection):
        return
    steps, _ = rehearse(plan, config.trengo)  # the executor raises nothing but TrengoErrors
    for step in steps:
        path = step.request.url.raw_path.decode().split("?")[0].removeprefix("/api/v2")
        assert KNOWN_ROUTE.fullmatch(path), path


@pytest.mark.parametrize("identifier", ["email", "phone"])
@given(value=st.binary(max_size=512))
def test_any_bytes(identifier: str, value: bytes) -> None:
    _check_outcome(value, identifier)


@pytest.mark.parametrize("identifier", ["email", "phone"])
@given(document=_json)
def test_any_json_document(identifier: str, document: object) -> None:
    _check_outcome(_serialized(document), identifier)


@pytest.mark.parametrize("identifier", ["email", "phone"])
@given(event=_event)
def test_any_event_shaped_document(identifier: str, event: dict[str, Any]) -> None:
    _check_outcome(_serialized(event), identifier)
