"""Filter stage: RudderStack's integrations, consent, message-type and unmapped-event rules."""

from __future__ import annotations

from typing import Any

import pytest

from processor.config import ConsentItems, Settings
from processor.pipeline.filters import ConsentRules, EventFilter
from processor.pipeline.plan import Skip

MAPPED = "Order Completed"


def event_filter(destination: dict[str, Any] | None = None, **pipeline: Any) -> EventFilter:
    settings = Settings.model_validate(
        {
            "destination": {
                "apiToken": "token",
                "channelId": "1",
                "eventTemplateMap": [{"from": MAPPED, "to": "Order"}],
                **(destination or {}),
            },
            "pipeline": pipeline,
        }
    )
    return EventFilter.from_settings(settings)


def track(**fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": MAPPED, "userId": "u1", **fields}


def reason(skip: Skip | None) -> str | None:
    return None if skip is None else skip.reason


# --- integrations: rudder-server processor/integrations/integrations.go FilterClientIntegrations


@pytest.mark.parametrize(
    ("integrations", "expected"),
    [
        pytest.param({}, None, id="empty object: All defaults to true"),
        pytest.param({"All": True}, None, id="All true"),
        pytest.param({"All": False}, "integrations", id="All false"),
        pytest.param({"All": False, "Trengo": True}, None, id="Trengo true wins over All"),
        pytest.param({"All": True, "Trengo": False}, "integrations", id="Trengo false drops"),
        pytest.param({"All": False, "Trengo": {"x": 1}}, None, id="an object keeps"),
        pytest.param({"Trengo": False}, "integrations", id="Trengo false, All missing"),
        pytest.param({"All": False, "Trengo": "yes"}, "integrations", id="Trengo text: All"),
        pytest.param({"All": True, "TRENGO": False}, None, id="names are case-sensitive"),
        pytest.param({"All": "true"}, "integrations", id="All not a boolean drops"),
        pytest.param([], "integrations", id="a list drops"),
        pytest.param("Trengo", "integrations", id="text drops"),
        pytest.param(None, "integrations", id="null drops (not an object)"),
        pytest.param(7, "integrations", id="a number drops"),
    ],
)
def test_integrations_object(integrations: object, expected: str | None) -> None:
    assert reason(event_filter()(track(integrations=integrations))) == expected


def test_a_missing_integrations_object_keeps_the_event() -> None:
    assert event_filter()(track()) is None


# --- consent: rudder-server processor/consent.go getConsentFilteredDestinations, with the cases
# of processor/consent_test.go TestFilterDestinations ported (one destination per case here).


def rules(
    generic: ConsentItems = (), one_trust: ConsentItems = (), ketch: ConsentItems = ()
) -> ConsentRules:
    return ConsentRules.from_items(generic, one_trust, ketch)


def one_trust(*categories: object) -> ConsentItems:
    return tuple({"oneTrustCookieCategory": category} for category in categories)


def ketch(*purposes: object) -> ConsentItems:
    return tuple({"purpose": purpose} for purpose in purposes)


def generic(provider: str, *consents: str, strategy: str = "") -> ConsentItems:
    item: dict[str, Any] = {"provider": provider, "consents": [{"consent": c} for c in consents]}
    if strategy:
        item["resolutionStrategy"] = strategy
    return (item,)


DENIED = frozenset({"foo-1", "foo-2", "foo-3"})


@pytest.mark.parametrize(
    ("consent", "provider", "strategy", "allowed"),
    [
        # "filter out destination with oneTrustCookieCategories" (destID-1 … destID-6)
        pytest.param(rules(one_trust=({},)), "", "", True, id="ot: empty category item"),
        pytest.param(rules(one_trust=one_trust("foo-4")), "", "", True, id="ot: not denied"),
        pytest.param(rules(one_trust=one_trust("foo-1")), "", "", False, id="ot: denied"),
        pytest.param(rules(one_trust=one_trust("foo-1", "foo-4")), "", "", False, id="ot: any"),
        pytest.param(rules(one_trust=one_trust("foo-1", "foo-2", "foo-3")), "", "", False),
        pytest.param(rules(one_trust=one_trust("foo-1", "foo-1")), "", "", False, id="ot: dup"),
        # "... with event containing provider details": provider oneTrust, strategy ignored
        pytest.param(rules(one_trust=one_trust("foo-4")), "oneTrust", "and", True),
        pytest.param(rules(one_trust=one_trust("foo-1", "foo-4")), "oneTrust", "and", False),
        # "filter out destination with ketchConsentPurposes": all purposes denied drops
        pytest.param(rules(ketch=({},)), "", "", True, id="ketch: empty purpose item"),
        pytest.param(rules(ketch=ketch("foo-4")), "", "", True, id="ketch: not denied"),
        pytest.param(rules(ketch=ketch("foo-1")), "", "", False, id="ketch: the one denied"),
        pytest.param(rules(ketch=ketch("foo-1", "foo-4")), "", "", True, id="ketch: one allowed"),
        pytest.param(rules(ketch=ketch("foo-1", "foo-2", "foo-3")), "", "", False),
        pytest.param(rules(ketch=ketch("foo-1", "foo-4")), "ketch", "or", True),
        # "filter out destination with generic consent management (Ketch)", strategy "or"
        pytest.param(
            rules(generic=({"provider": "ketch", "consents": [{}]},)), "ketch", "or", True
        ),
        pytest.param(rules(generic("ketch", "foo-4")), "ketch", "or", True, id="gcm or: kept"),
        pytest.param(rules(generic("ketch", "foo-1")), "ketch", "or", False, id="gcm or: all"),
        pytest.param(rules(generic("ketch", "foo-1", "foo-4")), "ketch", "or", True),
        # strategy "and" (the default): any configured consent denied drops
        pytest.param(rules(generic("ketch", "foo-1", "foo-4")), "ketch", "and", False),
        pytest.param(rules(generic("ketch", "foo-1", "foo-4")), "ketch", "", False),
        pytest.param(rules(generic("iubenda", "foo-4", "foo-5")), "iubenda", "", True),
        # custom provider: the strategy comes from the destination, not the event
        pytest.param(
            rules(generic("custom", "foo-1", "foo-4", strategy="or")), "custom", "and", True
        ),
        pytest.param(
            rules(generic("custom", "foo-1", "foo-4", strategy="and")), "custom", "or", False
        ),
        # generic settings of another provider do not apply; legacy ones do for oneTrust
        pytest.param(
            rules(generic("ketch", "foo-1"), one_trust=one_trust("foo-4")), "oneTrust", "", True
        ),
        pytest.param(rules(generic("ketch", "foo-1")), "oneTrust", "", True),
        # legacy Ketch settings are not read for a oneTrust event, and vice versa
        pytest.param(rules(ketch=ketch("foo-1")), "oneTrust", "", True),
        pytest.param(rules(one_trust=one_trust("foo-1")), "ketch", "", True),
        pytest.param(rules(one_trust=one_trust("foo-1")), "custom", "", True),
        # our own: nothing configured keeps everything; junk items are left out
        pytest.param(rules(), "", "", True, id="no consent settings"),
        pytest.param(rules(one_trust=one_trust(123, "", None)), "", "", True, id="junk ids"),
        pytest.param(
            rules(generic=({"provider": 5}, {"consents": "x"}, {"provider": "", "consents": []})),
            "",
            "",
            True,
        ),
    ],
)
def test_consent_rules(consent: ConsentRules, provider: str, strategy: str, allowed: bool) -> None:
    assert consent.allows(DENIED, provider, strategy) is allowed


def test_no_denied_consents_keeps_every_destination() -> None:
    assert rules(one_trust=one_trust("foo-1")).allows(frozenset(), "", "") is True


@pytest.mark.parametrize(
    ("management", "expected"),
    [
        pytest.param({"deniedConsentIds": ["C0004"]}, "consent", id="legacy OneTrust"),
        pytest.param(
            {"provider": "oneTrust", "deniedConsentIds": ["C0002", "C0004"]}, "consent", id="gcm"
        ),
        pytest.param({"provider": "oneTrust", "deniedConsentIds": ["C0002"]}, None, id="other"),
        pytest.param({"deniedConsentIds": []}, None, id="nothing denied"),
        pytest.param({"deniedConsentIds": "C0004"}, None, id="denied ids not a list"),
        pytest.param({"deniedConsentIds": [4, None, {"a": 1}]}, None, id="ids not text"),
        pytest.param({"deniedConsentIds": ["", "C0004"]}, "consent", id="empty ids dropped"),
        pytest.param({"provider": ["x"], "deniedConsentIds": ["C0004"]}, "consent"),
        pytest.param("denied", None, id="consentManagement not an object"),
        pytest.param({"provider": "\ud800", "deniedConsentIds": ["\ud800"]}, None),
    ],
)
def test_consent_read_from_the_event(management: object, expected: str | None) -> None:
    destination = {
        "consentManagement": [
            {"provider": "oneTrust", "consents": [{"consent": "C0004"}]},
        ],
        "oneTrustCookieCategories": [{"oneTrustCookieCategory": "C0004"}],
    }
    event = track(context={"consentManagement": management})
    assert reason(event_filter(destination)(event)) == expected


@pytest.mark.parametrize("context", [None, "text", [1, 2], {"consentManagement": None}])
def test_odd_contexts_keep_the_event(context: object) -> None:
    destination = {"oneTrustCookieCategories": [{"oneTrustCookieCategory": "C0004"}]}
    assert event_filter(destination)(track(context=context)) is None


HOSTILE_VALUES: list[object] = [
    None,
    7,
    -1.5,
    True,
    "text",
    [],
    [None, 1, {"a": 1}, ["C0004"]],
    {"nested": {"deeper": [1, 2, {"x": None}]}},
    ["x" * 100_000] * 100,
    list(range(100_000)),
]


@pytest.mark.parametrize("value", HOSTILE_VALUES, ids=lambda value: type(value).__name__)
@pytest.mark.parametrize(
    "place",
    [
        "type",
        "event",
        "integrations",
        "integrations.All",
        "integrations.Trengo",
        "context",
        "context.consentManagement",
        "context.consentManagement.deniedConsentIds",
        "context.consentManagement.provider",
        "context.consentManagement.resolutionStrategy",
    ],
)
def test_hostile_fields_never_raise(place: str, value: object) -> None:
    document: dict[str, Any] = track(
        integrations={"All": True},
        context={"consentManagement": {"deniedConsentIds": ["C0001"], "provider": "custom"}},
    )
    *parents, leaf = place.split(".")
    target = document
    for parent in parents:
        target = target[parent]
    target[leaf] = value
    consent = [{"provider": "custom", "consents": [{"consent": "C0004"}]}]
    destination = {
        "consentManagement": consent,
        "oneTrustCookieCategories": [{"oneTrustCookieCategory": "C0004"}],
        "ketchConsentPurposes": [{"purpose": "C0004"}],
    }

    result = event_filter(destination)(document)

    assert result is None or isinstance(result, Skip)


def test_a_huge_denied_list_still_finds_the_configured_category() -> None:
    denied = [f"C{number}" for number in range(200_000)] + ["C0004"]
    destination = {"oneTrustCookieCategories": [{"oneTrustCookieCategory": "C0004"}]}

    event = track(context={"consentManagement": {"deniedConsentIds": denied}})

    assert reason(event_filter(destination)(event)) == "consent"


# --- message types and unmapped events


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"type": "identify"}, None),
        ({"type": "IDENTIFY"}, None),
        (track(), None),
        ({"type": "page", "name": "Home"}, "message_type"),
        ({"type": "screen"}, "message_type"),
        ({"type": "alias"}, "message_type"),
        ({"type": "group", "groupId": "g"}, "message_type"),
        ({"type": "merge"}, "message_type"),
        ({"type": "x" * 100_000}, "message_type"),
        ({"type": 5}, None),  # validation explains a type that is not text
        ({}, None),
        (track(event="Product Viewed"), "unmapped_event"),
        (track(event=None), "unmapped_event"),
        (track(event=["Order Completed"]), "unmapped_event"),
        (track(event="order completed"), "unmapped_event"),  # names are case-sensitive
    ],
)
def test_message_types_and_unmapped_events(document: dict[str, Any], expected: str | None) -> None:
    assert reason(event_filter()(document)) == expected


def test_groups_are_for_trengo_when_profiles_are_on() -> None:
    profiles = {"enableProfiles": True, "profileKeyFieldId": 7}
    assert event_filter(profiles)({"type": "group", "groupId": "g"}) is None


def test_dead_letter_unsupported_types_hands_them_to_validation() -> None:
    assert event_filter(dead_letter_unsupported_types=True)({"type": "page"}) is None


def test_unmapped_events_may_be_dead_lettered() -> None:
    assert event_filter(unmapped_events="dead_letter")(track(event="Product Viewed")) is None


def test_ignore_types_come_first_and_win_over_supported_types() -> None:
    only = event_filter(ignore_types=["Identify", "page"])
    assert reason(only({"type": "identify"})) == "ignore_types"
    assert reason(only({"type": "PAGE"})) == "ignore_types"


def test_integrations_are_checked_before_consent_and_types() -> None:
    destination = {"oneTrustCookieCategories": [{"oneTrustCookieCategory": "C1"}]}
    event = {
        "type": "page",
        "integrations": {"All": False},
        "context": {"consentManagement": {"deniedConsentIds": ["C1"]}},
    }
    assert reason(event_filter(destination)(event)) == "integrations"
    event["integrations"] = {}
    assert reason(event_filter(destination)(event)) == "consent"
