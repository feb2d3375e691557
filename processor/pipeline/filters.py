"""Filter stage: what RudderStack would never have sent to Trengo is skipped, not dead-lettered.

Pure: reads the decoded document, never raises. The rules and their order are rudder-server's
for a cloud-mode destination (``reference/rudderstack-filters.md``), then the operator's own:

1. ``integrations`` (``processor/integrations/integrations.go``, FilterClientIntegrations),
   keyed by the destination's display name ``Trengo``;
2. consent (``processor/consent.go``, getConsentFilteredDestinations) against
   ``context.consentManagement``;
3. supported message types (``processor/eventfilter/eventfilter.go``): identify, track, and group
   when ``enableProfiles`` is on, unless ``pipeline.dead_letter_unsupported_types``;
4. ``pipeline.ignore_types``;
5. a track whose event has no ``eventTemplateMap`` entry (``pipeline.unmapped_events: skip``).

An event whose ``type`` is missing or not text passes untouched: validate dead-letters it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from processor.config import ConsentProvider, Settings
from processor.pipeline.plan import Skip, SkipReason

DESTINATION_NAME = "Trengo"  # the display name events use in their integrations object
OR_STRATEGY = "or"
CUSTOM_PROVIDER = "custom"
_LEGACY_ONE_TRUST = frozenset({"", "oneTrust"})
_LEGACY_KETCH = frozenset({"", "ketch"})
_SUPPORTED_TYPES = frozenset({"identify", "track"})
_MAX_NAME_SHOWN = 80


@dataclass(frozen=True, slots=True)
class ProviderConsents:
    """The consents the destination needs from one provider, and its configured strategy."""

    resolution_strategy: str
    consents: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FilterRules:
    """Everything the filter reads from the config, prepared once."""

    supported_types: frozenset[str] | None  # None: unsupported types go on to validate
    ignore_types: frozenset[str]
    mapped_events: frozenset[str] | None  # None: unmapped tracks go on to map
    generic_consents: Mapping[str, ProviderConsents]
    one_trust_categories: tuple[str, ...]
    ketch_purposes: tuple[str, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> FilterRules:
        destination, pipeline = settings.destination, settings.pipeline
        supported = _SUPPORTED_TYPES | ({"group"} if destination.enableProfiles else set())
        mapped = frozenset(m.from_ for m in destination.eventTemplateMap if m.from_)
        return cls(
            supported_types=None if pipeline.dead_letter_unsupported_types else supported,
            ignore_types=frozenset(name.lower() for name in pipeline.ignore_types),
            mapped_events=mapped if pipeline.unmapped_events == "skip" else None,
            generic_consents=_generic_consents(destination.consentManagement),
            one_trust_categories=_non_empty(
                c.oneTrustCookieCategory for c in destination.oneTrustCookieCategories
            ),
            ketch_purposes=_non_empty(p.purpose for p in destination.ketchConsentPurposes),
        )


def filter_event(document: Mapping[str, Any], rules: FilterRules) -> Skip | None:
    """A skip (with its reason) when a rule filters the event out, else ``None``."""
    message_type = document.get("type")
    if not isinstance(message_type, str) or not message_type:
        return None
    lowered = message_type.lower()
    if not _integrations_allow(document.get("integrations", {})):
        return _skip("integrations", f"integrations object disables {DESTINATION_NAME}")
    denied = _denied_by_consent(document, rules)
    if denied is not None:
        return _skip("consent", denied)
    if rules.supported_types is not None and lowered not in rules.supported_types:
        return _skip("message_type", f"Message type {lowered} not supported")
    if lowered in rules.ignore_types:
        return _skip("ignore_types", f"Event type {lowered} is ignored (pipeline.ignore_types)")
    return _unmapped(document, lowered, rules.mapped_events)


def _integrations_allow(integrations: object) -> bool:
    """FilterClientIntegrations for one destination: a non-object (even null) keeps nothing."""
    if not isinstance(integrations, dict):
        return False
    all_value = integrations.get("All", True)
    if not isinstance(all_value, bool):
        return False
    own = integrations.get(DESTINATION_NAME)
    if isinstance(own, bool):
        return own
    return isinstance(own, dict) or all_value


def _denied_by_consent(document: Mapping[str, Any], rules: FilterRules) -> str | None:
    """Why consent withholds the event, or ``None`` (getConsentFilteredDestinations)."""
    consent_management = _consent_management(document)
    denied = _texts(consent_management.get("deniedConsentIds"))
    if not denied:
        return None
    provider = _text(consent_management.get("provider"))
    generic = rules.generic_consents.get(provider)
    if generic is not None:
        strategy = (
            generic.resolution_strategy
            if provider == CUSTOM_PROVIDER
            else _text(consent_management.get("resolutionStrategy"))
        )
        return _generic_denial(provider, strategy, generic.consents, denied)
    if provider in _LEGACY_ONE_TRUST and rules.one_trust_categories:
        hit = [c for c in rules.one_trust_categories if c in denied]
        return f"OneTrust category {_shown(hit[0])} denied" if hit else None
    if provider in _LEGACY_KETCH and rules.ketch_purposes:
        every = all(purpose in denied for purpose in rules.ketch_purposes)
        return "every configured Ketch purpose denied" if every else None
    return None


def _generic_denial(
    provider: str, strategy: str, consents: tuple[str, ...], denied: Collection[str]
) -> str | None:
    shown_provider = _shown(provider)
    if strategy == OR_STRATEGY:
        every = all(consent in denied for consent in consents)
        return f"every configured {shown_provider} consent denied (or)" if every else None
    hit = [consent for consent in consents if consent in denied]
    return f"{shown_provider} consent {_shown(hit[0])} denied (and)" if hit else None


def _unmapped(
    document: Mapping[str, Any], message_type: str, mapped_events: frozenset[str] | None
) -> Skip | None:
    event = document.get("event")
    if mapped_events is None or message_type != "track" or not isinstance(event, str):
        return None
    if event in mapped_events:
        return None
    return _skip("unmapped_event", f"{_shown(event)} is not present in Event-Map template keys")


def _consent_management(document: Mapping[str, Any]) -> Mapping[str, Any]:
    context = document.get("context")
    found = context.get("consentManagement") if isinstance(context, dict) else None
    return found if isinstance(found, dict) else {}


def _generic_consents(providers: tuple[ConsentProvider, ...]) -> dict[str, ProviderConsents]:
    """Per provider (a later entry wins, as in rudder-server), its non-empty consent ids."""
    by_provider: dict[str, ProviderConsents] = {}
    for entry in providers:
        consents = _non_empty(item.consent for item in entry.consents)
        if entry.provider and consents:
            by_provider[entry.provider] = ProviderConsents(entry.resolutionStrategy, consents)
    return by_provider


def _texts(value: object) -> frozenset[str]:
    """The non-empty strings of a list; anything else holds none."""
    if not isinstance(value, list):
        return frozenset()
    return frozenset(item for item in value if isinstance(item, str) and item)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _non_empty(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(value for value in values if value)


def _shown(text: str) -> str:
    return text if len(text) <= _MAX_NAME_SHOWN else f"{text[:_MAX_NAME_SHOWN]}…"


def _skip(reason: SkipReason, detail: str) -> Skip:
    return Skip(reason=reason, detail=detail)
