"""Filter stage: what RudderStack would never have sent to Trengo is skipped, not dead-lettered.

rudder-server applies these rules to every cloud-mode destination before the destination's
transformer (docs/rudderstack-compatibility.md); here they run on the decoded (and transformed)
event, before validation, and read only the fields they need. In order:

1. ``pipeline.ignore_types``: the operator's own list of message types to skip.
2. The event's ``integrations`` object, as rudder-server's ``FilterClientIntegrations``: a
   missing ``All`` is true; ``"Trengo": false`` drops, ``true`` or an object keeps; otherwise
   ``All`` decides. An ``integrations`` or ``All`` that is not an object / boolean drops.
3. Consent, as rudder-server's ``getConsentFilteredDestinations``: only events with denied
   consent ids are filtered; generic consent management for the event's provider (``and``
   drops on any configured consent denied, ``or`` only when all are; the custom provider takes
   the strategy from the config), else legacy OneTrust (any category denied drops) and legacy
   Ketch (all purposes denied drops).
4. Message types: only identify and track, and group with ``enableProfiles``
   (``pipeline.dead_letter_unsupported_types`` hands the others to validation instead).
5. Tracks without an ``eventTemplateMap`` entry (``pipeline.unmapped_events: skip``).

A value of an unexpected type never raises: it is read the way rudder-server's JSON decoding
would read it (a wrong type is an empty value).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, get_args

from processor.config import ConsentItems, Settings
from processor.pipeline.plan import Skip, SkipReason

SKIP_REASONS: tuple[SkipReason, ...] = get_args(SkipReason)
# RudderStack's message types.
MESSAGE_TYPES = frozenset({"identify", "track", "page", "screen", "group", "alias"})
# The destination's display name, the key of the integrations object.
DESTINATION_NAME = "Trengo"
_CUSTOM_PROVIDER = "custom"
_LEGACY_ONE_TRUST = frozenset({"", "oneTrust"})
_LEGACY_KETCH = frozenset({"", "ketch"})


@dataclass(frozen=True, slots=True)
class GenericConsent:
    """The consents a destination requires for one consent-management provider."""

    resolution_strategy: str
    consents: frozenset[str]


@dataclass(frozen=True, slots=True)
class ConsentRules:
    """A destination's consent settings, read as rudder-server reads them."""

    generic: Mapping[str, GenericConsent]
    one_trust_categories: frozenset[str]
    ketch_purposes: frozenset[str]

    @classmethod
    def from_items(
        cls, generic: ConsentItems, one_trust: ConsentItems, ketch: ConsentItems
    ) -> ConsentRules:
        """From the three settings' lists; items without a usable id are left out."""
        providers: dict[str, GenericConsent] = {}
        for item in generic:
            provider, consents = item.get("provider"), item.get("consents")
            ids = _texts_of(consents, "consent") if isinstance(consents, list) else frozenset()
            if isinstance(provider, str) and provider and ids:
                strategy = item.get("resolutionStrategy")
                providers[provider] = GenericConsent(
                    strategy if isinstance(strategy, str) else "", ids
                )
        return cls(
            providers, _texts_of(one_trust, "oneTrustCookieCategory"), _texts_of(ketch, "purpose")
        )

    def allows(self, denied: frozenset[str], provider: str, strategy: str) -> bool:
        """Whether an event with these denied consent ids may reach the destination."""
        if not denied:
            return True
        generic = self.generic.get(provider)
        if generic is not None:
            if provider == _CUSTOM_PROVIDER:
                strategy = generic.resolution_strategy
            if strategy == "or":
                return not generic.consents <= denied
            return not generic.consents & denied
        if provider in _LEGACY_ONE_TRUST and self.one_trust_categories:
            return not self.one_trust_categories & denied
        if provider in _LEGACY_KETCH and self.ketch_purposes:
            return not self.ketch_purposes <= denied
        return True


@dataclass(frozen=True, slots=True)
class EventFilter:
    """The filter stage for one destination config: ``__call__`` returns a Skip or None."""

    ignore_types: frozenset[str]
    supported_types: frozenset[str]
    consent: ConsentRules
    mapped_events: frozenset[str]
    skip_unsupported: bool
    skip_unmapped: bool
    # The skips of the known message types, made once: most of a stream is skipped.
    _ignored: Mapping[str, Skip] = field(default_factory=dict)
    _unsupported: Mapping[str, Skip] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> EventFilter:
        """Built once at start."""
        destination, pipeline = settings.destination, settings.pipeline
        supported = {"identify", "track"} | ({"group"} if destination.enableProfiles else set())
        ignore_types = frozenset(kind.lower() for kind in pipeline.ignore_types)
        return cls(
            ignore_types=ignore_types,
            supported_types=frozenset(supported),
            consent=ConsentRules.from_items(
                destination.consent_items("consentManagement"),
                destination.consent_items("oneTrustCookieCategories"),
                destination.consent_items("ketchConsentPurposes"),
            ),
            mapped_events=frozenset(
                mapping.from_ for mapping in destination.eventTemplateMap if mapping.from_
            ),
            skip_unsupported=not pipeline.dead_letter_unsupported_types,
            skip_unmapped=pipeline.unmapped_events == "skip",
            _ignored={kind: _ignored_skip(kind) for kind in ignore_types},
            _unsupported={kind: _unsupported_skip(kind) for kind in MESSAGE_TYPES - supported},
        )

    def __call__(self, document: Mapping[str, Any]) -> Skip | None:
        """A skip when RudderStack would not have sent the event to Trengo, else None."""
        kind = document.get("type")
        kind = kind.lower() if isinstance(kind, str) else None
        if kind in self.ignore_types:
            return self._ignored.get(kind) or _ignored_skip(kind)
        return self._routing_skip(document) or self._type_skip(kind, document)

    def _routing_skip(self, document: Mapping[str, Any]) -> Skip | None:
        """rudder-server's per-destination routing: the integrations object, then consent."""
        if not _integrations_allow(document.get("integrations", {})):
            return _EXCLUDED
        if not self._consent_allows(document.get("context")):
            return _DENIED
        return None

    def _type_skip(self, kind: str | None, document: Mapping[str, Any]) -> Skip | None:
        """Message types Trengo does not take, and tracks without a template."""
        if kind is None:
            return None  # validation says what is wrong with the type
        if kind not in self.supported_types:
            if not self.skip_unsupported:
                return None
            return self._unsupported.get(kind) or _unsupported_skip(kind)
        if kind == "track" and self.skip_unmapped and not self._mapped(document.get("event")):
            return _UNMAPPED
        return None

    def _mapped(self, event: object) -> bool:
        return isinstance(event, str) and event in self.mapped_events

    def _consent_allows(self, context: object) -> bool:
        management = context.get("consentManagement") if isinstance(context, dict) else None
        if not isinstance(management, dict):
            return True
        denied = management.get("deniedConsentIds")
        return self.consent.allows(
            frozenset(_texts(denied) if isinstance(denied, list) else ()),
            _text(management.get("provider")),
            _text(management.get("resolutionStrategy")),
        )


def _integrations_allow(integrations: object) -> bool:
    if not isinstance(integrations, dict):
        return False
    everything = integrations.get("All", True)
    if not isinstance(everything, bool):
        return False
    own = integrations.get(DESTINATION_NAME)
    if isinstance(own, bool):
        return own
    if isinstance(own, dict):
        return True
    return everything


def _ignored_skip(kind: str) -> Skip:
    return Skip("ignore_types", f"Event type {kind} is ignored (pipeline.ignore_types)")


def _unsupported_skip(kind: str) -> Skip:
    return Skip("message_type", f"Message type {kind} not supported")


_EXCLUDED = Skip("integrations", f"integrations object excludes {DESTINATION_NAME}")
_DENIED = Skip("consent", "the user denied a consent this destination requires")
_UNMAPPED = Skip("unmapped_event", "event is not present in Event-Map template keys")


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _texts(values: Iterable[object]) -> Iterable[str]:
    return (value for value in values if isinstance(value, str) and value)


def _texts_of(items: Iterable[object], field: str) -> frozenset[str]:
    """The non-empty text ``field`` of each object in ``items`` (other items left out)."""
    return frozenset(_texts(item.get(field) for item in items if isinstance(item, dict)))
