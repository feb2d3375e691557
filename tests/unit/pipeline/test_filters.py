"""Filter stage: RudderStack's per-destination rules, table-driven.

The consent rows marked ``rudder-server`` are ported from rudderlabs/rudder-server
``processor/consent_test.go`` (TestFilterDestinations): each of its destinations becomes one row
(its config, the event's ``context.consentManagement``, kept or dropped).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from processor.config import Settings
from processor.pipeline.filters import FilterRules, filter_event
from processor.pipeline.plan import Skip

DENIED_1_2_3 = ["foo-1", "foo-2", "foo-3"]


def rules(destination: dict[str, Any] | None = None, **pipeline: Any) -> FilterRules:
    settings = Settings(
        destination={
            "apiToken": "t",
            "channelId": "7",
            "eventTemplateMap": [{"from": "Order Completed", "to": "Order"}],
            **(destination or {}),
        },
        pipeline=pipeline,
    )
    return FilterRules.from_settings(settings)


def identify(**fields: Any) -> dict[str, Any]:
    return {"type": "identify", "userId": "u1", **fields}


def one_trust(*categories: str) -> dict[str, Any]:
    return {"oneTrustCookieCategories": [{"oneTrustCookieCategory": c} for c in categories]}


def ketch(*purposes: str) -> dict[str, Any]:
    return {"ketchConsentPurposes": [{"purpose": p} for p in purposes]}


def generic(provider: str, *consents: str, strategy: str = "") -> dict[str, Any]:
    entry = {"provider": provider, "resolutionStrategy": strategy}
    entry["consents"] = [{"consent": c} if c else {} for c in consents]  # type: ignore[assignment]
    return {"consentManagement": [entry]}


def consent(provider: str | None = None, strategy: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"deniedConsentIds": DENIED_1_2_3}
    if provider is not None:
        found["provider"] = provider
    if strategy is not None:
        found["resolutionStrategy"] = strategy
    return {"consentManagement": found}


CONSENT_CASES = [
    # rudder-server: "no denied consent categories"
    ("rs-no-denied", {}, one_trust("foo"), True),
    # rudder-server: "filter out destination with oneTrustCookieCategories" (and the same with
    # provider oneTrust / strategy and, which must not change anything)
    *[
        (f"rs-onetrust-{label}-{dest}", consent(*event), config, kept)
        for label, event in (("legacy", ()), ("provider", ("oneTrust", "and")))
        for dest, config, kept in (
            ("d1-empty-category", {"oneTrustCookieCategories": [{}]}, True),
            ("d2", one_trust("foo-4"), True),
            ("d3", one_trust("foo-1"), False),
            ("d4", one_trust("foo-1", "foo-4"), False),
            ("d5", one_trust("foo-1", "foo-2", "foo-3"), False),
            ("d6", one_trust("foo-1", "foo-1", "foo-1"), False),
        )
    ],
    # rudder-server: "filter out destination with ketchConsentPurposes" (and with provider
    # ketch / strategy or)
    *[
        (f"rs-ketch-{label}-{dest}", consent(*event), config, kept)
        for label, event in (("legacy", ()), ("provider", ("ketch", "or")))
        for dest, config, kept in (
            ("d1-empty-purpose", {"ketchConsentPurposes": [{}]}, True),
            ("d2", ketch("foo-4"), True),
            ("d3", ketch("foo-1"), False),
            ("d4", ketch("foo-1", "foo-4"), True),
            ("d5", ketch("foo-1", "foo-2", "foo-3"), False),
            ("d6", ketch("foo-1", "foo-1", "foo-1"), False),
        )
    ],
    # rudder-server: "filter out destination with generic consent management (Ketch)"
    ("rs-gcm-ketch-d1-empty", consent("ketch", "or"), generic("ketch", ""), True),
    ("rs-gcm-ketch-d2", consent("ketch", "or"), generic("ketch", "foo-4"), True),
    ("rs-gcm-ketch-d3", consent("ketch", "or"), generic("ketch", "foo-1"), False),
    ("rs-gcm-ketch-d4", consent("ketch", "or"), generic("ketch", "foo-1", "foo-4"), True),
    ("rs-gcm-ketch-d5", consent("ketch", "or"), generic("ketch", "foo-1", "foo-2", "foo-3"), False),
    ("rs-gcm-ketch-d6", consent("ketch", "or"), generic("ketch", "foo-1", "foo-1"), False),
    ("rs-gcm-ketch-s2-custom-empty", consent("ketch", "or"), generic("custom", ""), True),
    ("rs-gcm-ketch-s2-custom", consent("ketch", "or"), generic("custom", "foo-4"), True),
    ("rs-gcm-ketch-s2-onetrust", consent("ketch", "or"), generic("oneTrust", "foo-1"), True),
    ("rs-gcm-ketch-s2-ketch", consent("ketch", "or"), generic("ketch", "foo-4", "foo-5"), True),
    # rudder-server: "... generic consent management is unavailable and falls back to legacy
    # consents (Ketch)"
    (
        "rs-fallback-ketch-d1-gcm-preferred",
        consent("ketch", "or"),
        {**generic("ketch", "foo-1"), **ketch("foo-5")},
        False,
    ),
    ("rs-fallback-ketch-d2", consent("ketch", "or"), ketch("foo-4"), True),
    ("rs-fallback-ketch-d3-no-onetrust", consent("ketch", "or"), one_trust("foo-1", "foo-2"), True),
    ("rs-fallback-ketch-d4", consent("ketch", "or"), ketch("foo-1"), False),
    (
        "rs-fallback-ketch-d5-other-gcm",
        consent("ketch", "or"),
        {**generic("custom", "foo-1"), **ketch("foo-5")},
        True,
    ),
    # rudder-server: "filter out destination with generic consent management (OneTrust)"
    ("rs-gcm-onetrust-d1-empty", consent("oneTrust", "and"), generic("oneTrust", ""), True),
    ("rs-gcm-onetrust-d2", consent("oneTrust", "and"), generic("oneTrust", "foo-4"), True),
    ("rs-gcm-onetrust-d3", consent("oneTrust", "and"), generic("oneTrust", "foo-1"), False),
    (
        "rs-gcm-onetrust-d4",
        consent("oneTrust", "and"),
        generic("oneTrust", "foo-1", "foo-4"),
        False,
    ),
    ("rs-gcm-onetrust-s2-ketch", consent("oneTrust", "and"), generic("ketch", "foo-1"), True),
    # rudder-server: "... falls back to legacy consents (OneTrust)"
    (
        "rs-fallback-onetrust-d1-gcm-preferred",
        consent("oneTrust", "and"),
        {**generic("oneTrust", "foo-1"), **one_trust("foo-5")},
        False,
    ),
    ("rs-fallback-onetrust-d2", consent("oneTrust", "and"), one_trust("foo-4"), True),
    ("rs-fallback-onetrust-d3-no-ketch", consent("oneTrust", "and"), ketch("foo-1", "foo-2"), True),
    ("rs-fallback-onetrust-d4", consent("oneTrust", "and"), one_trust("foo-1"), False),
    # rudder-server: "filter out destination with generic consent management (Custom - AND)"
    ("rs-custom-and-d1-empty", consent("custom"), generic("custom", "", strategy="and"), True),
    ("rs-custom-and-d2", consent("custom"), generic("custom", "foo-4", strategy="and"), True),
    ("rs-custom-and-d3", consent("custom"), generic("custom", "foo-1", strategy="and"), False),
    (
        "rs-custom-and-d4",
        consent("custom"),
        generic("custom", "foo-1", "foo-4", strategy="and"),
        False,
    ),
    # Ours: the custom strategy comes from the config, never from the event.
    (
        "custom-or-config",
        consent("custom", "and"),
        generic("custom", "foo-1", "foo-4", strategy="or"),
        True,
    ),
    (
        "custom-or-all-denied",
        consent("custom", "and"),
        generic("custom", "foo-1", "foo-2", strategy="or"),
        False,
    ),
    (
        "custom-no-strategy-is-and",
        consent("custom", "or"),
        generic("custom", "foo-1", "foo-9"),
        False,
    ),
    (
        "iubenda-event-strategy-or",
        consent("iubenda", "or"),
        generic("iubenda", "foo-1", "foo-9"),
        True,
    ),
    (
        "iubenda-unknown-strategy-is-and",
        consent("iubenda", "x"),
        generic("iubenda", "foo-1", "foo-9"),
        False,
    ),
    ("unconfigured-provider-kept", consent("didomi"), one_trust("foo-1"), True),
    ("nothing-configured-kept", consent(), {}, True),
    (
        "later-entry-per-provider-wins",
        consent("custom"),
        {
            "consentManagement": [
                {"provider": "custom", "consents": [{"consent": "foo-1"}]},
                {"provider": "custom", "consents": [{"consent": "foo-9"}]},
            ]
        },
        True,
    ),
    (
        "empty-denied-ids-kept",
        {"consentManagement": {"deniedConsentIds": ["", ""]}},
        one_trust(""),
        True,
    ),
]


@pytest.mark.parametrize(
    ("context", "destination", "kept"),
    [pytest.param(context, dest, kept, id=name) for name, context, dest, kept in CONSENT_CASES],
)
def test_consent_as_rudder_server_decides(
    context: dict[str, Any], destination: dict[str, Any], kept: bool
) -> None:
    result = filter_event(identify(context=context), rules(destination))

    if kept:
        assert result is None
    else:
        assert isinstance(result, Skip)
        assert result.reason == "consent"


@pytest.mark.parametrize(
    ("integrations", "kept"),
    [
        pytest.param({}, True, id="empty-object"),
        pytest.param({"All": True}, True, id="all-true"),
        pytest.param({"All": False}, False, id="all-false"),
        pytest.param({"All": False, "Trengo": True}, True, id="own-true-wins"),
        pytest.param({"All": True, "Trengo": False}, False, id="own-false-wins"),
        pytest.param({"All": False, "Trengo": {"x": 1}}, True, id="own-object-keeps"),
        pytest.param({"All": False, "Trengo": "yes"}, False, id="own-other-type-all-decides"),
        pytest.param({"Trengo": None}, True, id="own-null-missing-all-is-true"),
        pytest.param({"All": False, "TRENGO": True}, False, id="definition-name-does-not-match"),
        pytest.param({"All": False, "trengo": True}, False, id="case-sensitive"),
        pytest.param({"All": "false"}, False, id="all-not-boolean-keeps-nothing"),
        pytest.param({"All": None, "Trengo": True}, False, id="all-null-keeps-nothing"),
        pytest.param(None, False, id="null-keeps-nothing"),
        pytest.param(["Trengo"], False, id="list-keeps-nothing"),
        pytest.param(7, False, id="number-keeps-nothing"),
    ],
)
def test_integrations_as_filter_client_integrations(integrations: object, kept: bool) -> None:
    result = filter_event(identify(integrations=integrations), rules())

    assert (
        result is None
        if kept
        else result == Skip("integrations", "integrations object disables Trengo")
    )


def test_a_missing_integrations_object_keeps_the_event() -> None:
    assert filter_event(identify(), rules()) is None


@pytest.mark.parametrize(
    ("document", "destination", "pipeline", "expected"),
    [
        pytest.param({"type": "page"}, {}, {}, "message_type", id="page"),
        pytest.param({"type": "Screen"}, {}, {}, "message_type", id="screen-any-case"),
        pytest.param({"type": "alias"}, {}, {}, "message_type", id="alias"),
        pytest.param({"type": "group"}, {}, {}, "message_type", id="group-profiles-off"),
        pytest.param(
            {"type": "group"},
            {"enableProfiles": True, "profileKeyFieldId": 1},
            {},
            None,
            id="group-profiles-on",
        ),
        pytest.param(
            {"type": "page"}, {}, {"dead_letter_unsupported_types": True}, None, id="opt-out"
        ),
        pytest.param(
            {"type": "identify"}, {}, {"ignore_types": ["IDENTIFY"]}, "ignore_types", id="ignore"
        ),
        pytest.param(
            {"type": "page"}, {}, {"ignore_types": ["page"]}, "message_type", id="unsupported-first"
        ),
        pytest.param({"type": "track", "event": "Viewed"}, {}, {}, "unmapped_event", id="unmapped"),
        pytest.param({"type": "track", "event": "Order Completed"}, {}, {}, None, id="mapped"),
        pytest.param(
            {"type": "track", "event": "order completed"},
            {},
            {},
            "unmapped_event",
            id="case-sensitive",
        ),
        pytest.param(
            {"type": "track", "event": "Viewed"},
            {},
            {"unmapped_events": "dead_letter"},
            None,
            id="unmapped-dl",
        ),
        pytest.param(
            {"type": "track", "event": 5}, {}, {}, None, id="non-text-event-left-to-validate"
        ),
        pytest.param({"event": "x"}, {}, {}, None, id="missing-type-left-to-validate"),
        pytest.param({"type": ["page"]}, {}, {}, None, id="list-type-left-to-validate"),
        pytest.param(
            {"type": "page", "integrations": {"All": False}},
            {},
            {},
            "integrations",
            id="integrations-first",
        ),
        pytest.param(
            {"type": "page", "context": consent()},
            one_trust("foo-2"),
            {},
            "consent",
            id="consent-before-type",
        ),
    ],
)
def test_types_ignore_list_and_unmapped_events(
    document: dict[str, Any],
    destination: dict[str, Any],
    pipeline: dict[str, Any],
    expected: str | None,
) -> None:
    result = filter_event(document, rules(destination, **pipeline))

    assert (result.reason if result else None) == expected


HOSTILE_VALUES: list[object] = [
    None,
    7,
    -1.5,
    True,
    "text",
    [],
    [None, 1, {"a": 1}, ["foo-1"]],
    {"nested": {"deeper": [1, 2, {"x": None}]}},
    ["x" * 100_000] * 100,
    list(range(100_000)),
]


@pytest.mark.parametrize("value", HOSTILE_VALUES, ids=lambda v: type(v).__name__)
@pytest.mark.parametrize(
    "place",
    [
        "integrations",
        "integrations.All",
        "integrations.Trengo",
        "context",
        "context.consentManagement",
        "context.consentManagement.deniedConsentIds",
        "context.consentManagement.provider",
        "context.consentManagement.resolutionStrategy",
        "event",
    ],
)
def test_hostile_fields_never_raise(place: str, value: object) -> None:
    document: dict[str, Any] = {
        "type": "track",
        "event": "Order Completed",
        "integrations": {"All": True},
        "context": {"consentManagement": {"deniedConsentIds": ["foo-1"], "provider": "custom"}},
    }
    *parents, leaf = place.split(".")
    target = document
    for parent in parents:
        target = target[parent]
    target[leaf] = value
    destination = {**generic("custom", "foo-2"), **one_trust("foo-2"), **ketch("foo-2")}

    result = filter_event(json.loads(json.dumps(document)), rules(destination))

    assert result is None or isinstance(result, Skip)


def test_a_huge_denied_list_is_read_once() -> None:
    denied = [f"c{n}" for n in range(200_000)] + ["foo-1"]
    context = {"consentManagement": {"deniedConsentIds": denied}}

    result = filter_event(identify(context=context), rules(one_trust("foo-1")))

    assert result == Skip("consent", "OneTrust category foo-1 denied")


def test_the_consent_reason_names_the_denied_consent() -> None:
    result = filter_event(
        identify(context=consent("custom")), rules(generic("custom", "foo-9", "foo-2"))
    )

    assert result == Skip("consent", "custom consent foo-2 denied (and)")
