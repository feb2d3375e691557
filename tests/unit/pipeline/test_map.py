"""Tests for processor/pipeline/map.py: RudderStack's Trengo mapping as plans
(docs/rudderstack-compatibility.md), then the opt-in additions (custom fields, ticket follow-ups,
profiles).

Messages go through ``validate`` first, as in the engine. The RudderStack test-suite cases
(processor Tests 0-16, router Tests 0-1) are restated as plans: where RudderStack's expected
output depends on its mocked search reply, the plan names the search and both outcomes
(update if found, create if not); carrying them out is the delivery stage's job.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from processor.config import DestinationConfig
from processor.events import Group, Message
from processor.pipeline.map import plan_event
from processor.pipeline.plan import (
    ChannelIdentifier,
    ContactRef,
    CreateContact,
    CreateTicket,
    GroupPlan,
    IdentifyPlan,
    KnownContact,
    Plan,
    PostMessage,
    Rejection,
    ResolveContact,
    ResolveProfile,
    SetCustomField,
    TicketPlan,
    UpdateContact,
)
from processor.pipeline.templates import EventTemplates
from processor.pipeline.validate import validate

EMAIL_CHANNEL = "trengo_email_channel"
PHONE_CHANNEL = "trengo_phone_channel"
# RudderStack's suite names it "trengo_emailext_channel"; an id from an event must be digits.
EXTERNAL_CHANNEL = "470011"
EMAIL = "utsab@outlook.com"
PHONE = "9830311521"

# The eventTemplateMap of every case in RudderStack's test suite.
SUITE_TEMPLATE_MAP = (
    {"from": "Product Purchased", "to": "{{event}} from Rudderstack"},
    {"from": "checkedOut", "to": "Total cart value {{value}} shipped"},
    {"from": "Order Completed", "to": "Completed Order"},
    {"from": "Stress Test"},
    {"from": "Stress test2", "to": ""},
    {"from": "Stress test3", "to": "{event} Stress test"},
)
SDK_CONTEXT = {
    "ip": "14.5.67.21",
    "app": {"build": "1", "name": "RudderAndroidClient", "version": "1.0"},
    "device": {"id": "7e32188a4dab669f", "manufacturer": "Google", "type": "android"},
    "library": {"name": "com.rudderstack.android.sdk.core", "version": "0.1.4"},
    "locale": "en-US",
    "network": {"carrier": "Android", "bluetooth": False, "cellular": True, "wifi": True},
    "screen": {"density": 420, "height": 1794, "width": 1080},
    "timezone": "Asia/Kolkata",
}


def destination(
    channel: str = EMAIL_CHANNEL,
    identifier: str = "email",
    dedup: bool | None = True,
    template_map: tuple[dict[str, Any], ...] = SUITE_TEMPLATE_MAP,
    **opt_ins: Any,
) -> DestinationConfig:
    """A destination config as RudderStack's test suite writes it (dedup None: key absent),
    plus any of the opt-in keys."""
    config: dict[str, Any] = {
        "apiToken": "trengo1",
        "channelId": channel,
        "channelIdentifier": identifier,
        "eventTemplateMap": template_map,
        **opt_ins,
    }
    if dedup is not None:
        config["enableDedup"] = dedup
    return DestinationConfig.model_validate(config)


def identify(traits: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """An identify with ``traits`` in ``context.traits``, as the Android SDK sends it."""
    context = {**SDK_CONTEXT, "traits": traits or {}, **fields.pop("context", {})}
    return {"userId": "randomUserId", "type": "identify", "context": context, **fields}


def track(event: str | None, properties: dict[str, Any] | None, **fields: Any) -> dict[str, Any]:
    """A track event; ``event`` None leaves the key out."""
    document = {"userId": "randomUserId", "type": "track", "properties": properties}
    document["context"] = {**SDK_CONTEXT, **fields.pop("context", {})}
    if event is not None:
        document["event"] = event
    return {**document, **fields}


def external_ids(*pairs: tuple[str, Any]) -> dict[str, Any]:
    """``context`` holding externalIds from (type, id) pairs."""
    return {"externalId": [{"type": id_type, "id": value} for id_type, value in pairs]}


def plan(document: dict[str, Any], config: DestinationConfig) -> Plan | Rejection:
    """validate then plan_event, as the engine runs them."""
    message = validate(document, accept_groups=config.enableProfiles)
    assert not isinstance(message, Rejection), message
    return plan_event(message, config, EventTemplates(config))


def rejected(reason: str) -> Rejection:
    return Rejection(reason=reason, stage="map")


def search(
    identifier: str, by: ChannelIdentifier = "email", channel: str = EMAIL_CHANNEL
) -> ResolveContact:
    return ResolveContact(identifier=identifier, channel_identifier=by, channel_id=channel)


def upsert(contact: ResolveContact | None, name: str | None, identifier: Any) -> IdentifyPlan:
    """Update when the contact is found, create on ``contact.channel_id`` otherwise."""
    channel = contact.channel_id if contact else EMAIL_CHANNEL
    return IdentifyPlan(
        contact=contact,
        update=UpdateContact(name=name),
        create=CreateContact(channel_id=channel, identifier=identifier, name=name),
    )


def ticket(
    contact: KnownContact | ResolveContact, channel: str, subject: str | None, event: str
) -> TicketPlan:
    return TicketPlan(
        event=event, contact=contact, ticket=CreateTicket(channel_id=channel, subject=subject)
    )


# RudderStack test suite ---------------------------------------------------------------------

SUITE_CASES = [
    pytest.param(
        destination(),
        identify({"name": "Jimothy Halpert", "email": "jimbo@dunmiff.com"}),
        upsert(search("jimbo@dunmiff.com"), "Jimothy Halpert", "jimbo@dunmiff.com"),
        id="processor-0-email-identify-dedup",
    ),
    pytest.param(
        destination(identifier="phone"),
        identify({"name": "Jimothy Halpert", "email": "jimbo@dunmiff.com"}),
        # RudderStack searches term=null; here nothing is searched (deliberate fix).
        rejected("Mandatory field for Channel-Identifier :phone not present"),
        id="processor-1-phone-identify-without-phone",
    ),
    *(
        pytest.param(
            destination(PHONE_CHANNEL, "phone"),
            identify({"name": name, "phone": phone}),
            upsert(search(phone, "phone", PHONE_CHANNEL), name, phone),
            id=case,
        )
        for case, name, phone in [
            ("processor-2-phone-identify-created", "Dwight Schrute", "12345678910"),
            ("processor-3-phone-identify-search-failed", "Angela Martin", "99999666661"),
            ("processor-4-phone-identify-duplicates", "Michael Gary Scott", "98765432100"),
            ("processor-14-phone-identify-updated", "Thalmor Bretz 2", PHONE),
        ]
    ),
    pytest.param(
        destination(PHONE_CHANNEL, "phone", dedup=False),
        identify({"name": "Dr Manhatten", "phone": "5678943215"}),
        IdentifyPlan(
            contact=None,
            update=UpdateContact(name="Dr Manhatten"),
            create=CreateContact(PHONE_CHANNEL, "5678943215", "Dr Manhatten"),
        ),
        id="processor-5-phone-identify-no-dedup",
    ),
    pytest.param(
        destination(dedup=False),
        track(
            "Product Purchased", {"name": "Random_Track_call", "cart_value": 5000, "email": EMAIL}
        ),
        ticket(
            search(EMAIL), EMAIL_CHANNEL, "Product Purchased from Rudderstack", "Product Purchased"
        ),
        id="processor-6-track-event-template",
    ),
    pytest.param(
        destination(dedup=False),
        track("checkedOut", {"name": "Random_Track_call", "value": 5000, "email": EMAIL}),
        ticket(search(EMAIL), EMAIL_CHANNEL, "Total cart value 5000 shipped", "checkedOut"),
        id="processor-7-track-property-template",
    ),
    pytest.param(
        destination(PHONE_CHANNEL, "phone", dedup=False),
        track(
            "Order Completed",
            {"name": "Random_Track_call", "value": 5000, "phone": "98765432100"},
            context={
                "externalId": [{"type": "trengoChannelId", "value": "trengo_phoneext_channel"}]
            },
        ),
        ticket(
            search("98765432100", "phone", PHONE_CHANNEL), PHONE_CHANNEL, None, "Order Completed"
        ),
        id="processor-8-external-id-value-key-ignored",
    ),
    *(
        pytest.param(
            destination(PHONE_CHANNEL, "email", dedup=False),
            track(
                event,
                {"name": "Random_Track_call", "value": 5000, "phone": PHONE, "email": EMAIL},
                context=external_ids(("trengoChannelId", EXTERNAL_CHANNEL)),
            ),
            ticket(search(EMAIL, channel=EXTERNAL_CHANNEL), EXTERNAL_CHANNEL, subject, event),
            id=case,
        )
        for case, event, subject in [
            ("processor-9-channel-override-static-subject", "Order Completed", "Completed Order"),
            ("processor-10-mapping-without-to", "Stress Test", None),
            ("processor-11-mapping-with-empty-to", "Stress test2", None),
            ("processor-12-single-braces-literal", "Stress test3", "{event} Stress test"),
        ]
    ),
    pytest.param(
        destination(PHONE_CHANNEL, "email", dedup=False),
        track(
            "Stress test4",
            {"value": 5000, "email": EMAIL},
            context=external_ids(("trengoChannelId", EXTERNAL_CHANNEL)),
        ),
        rejected("Stress test4 is not present in Event-Map template keys, aborting event"),
        id="processor-13-unmapped-event",
    ),
    pytest.param(
        destination(PHONE_CHANNEL, "email", dedup=False),
        track(
            "Stress test2",
            {"name": "Random_Track_call", "value": 5000},
            context=external_ids(
                ("trengoChannelId", EXTERNAL_CHANNEL), ("trengoContactId", 97694755)
            ),
        ),
        ticket(KnownContact(97694755), EXTERNAL_CHANNEL, None, "Stress test2"),
        id="processor-15-known-contact-no-search",
    ),
    pytest.param(
        destination(PHONE_CHANNEL, "email", dedup=False),
        track("Stress test2", {"name": "Random_Track_call", "value": 5000}),
        # RudderStack searches term=null (and got a 401); here nothing is searched (fix).
        rejected(
            "No email or trengoContactId present for track event Stress test2, aborting event"
        ),
        id="processor-16-track-without-identifier",
    ),
    pytest.param(
        destination(PHONE_CHANNEL, "phone"),
        {
            **track("Product Purchased", {"name": "Test Product", "phone": PHONE}),
            "userId": None,
            "anonymousId": "anon_id_success",
        },
        ticket(search(PHONE, "phone", PHONE_CHANNEL), PHONE_CHANNEL, None, "Product Purchased"),
        id="router-0-phone-track-no-subject",
    ),
    pytest.param(
        destination(),
        identify({"name": "Jimothy Halpert", "email": "j@d.com"}),
        upsert(search("j@d.com"), "Jimothy Halpert", "j@d.com"),
        id="router-1-email-identify",
    ),
]


@pytest.mark.parametrize(("config", "document", "expected"), SUITE_CASES)
def test_rudderstack_suite(
    config: DestinationConfig, document: dict[str, Any], expected: Plan | Rejection
) -> None:
    assert plan(document, config) == expected


# entry checks -----------------------------------------------------------------------------


def test_identify_type_in_any_letter_case_is_mapped() -> None:
    document = {**identify({"name": "Jo", "email": EMAIL}), "type": "Identify"}

    assert plan(document, destination()) == upsert(search(EMAIL), "Jo", EMAIL)


@pytest.mark.parametrize(
    "channel_id", [pytest.param("", id="empty"), pytest.param("  ", id="blank")]
)
def test_empty_channel_id_is_refused_at_startup(channel_id: str) -> None:
    """RudderStack rejects every event; here the config does not load at all."""
    with pytest.raises(ValidationError, match="channelId"):
        destination(channel=channel_id)


def test_missing_channel_id_is_refused_at_startup() -> None:
    with pytest.raises(ValidationError, match="channelId"):
        DestinationConfig.model_validate({"apiToken": "t"})


# field resolution -------------------------------------------------------------------------


def create_of(document: dict[str, Any], identifier: str = "email") -> CreateContact | Rejection:
    """The create step of an identify without dedup: shows identifier, name and channel."""
    result = plan(document, destination(identifier=identifier, dedup=False))
    if isinstance(result, Rejection):
        return result
    assert isinstance(result, IdentifyPlan) and result.create is not None
    return result.create


def bare_identify(**fields: Any) -> dict[str, Any]:
    return {"type": "identify", **fields}


@pytest.mark.parametrize(
    ("document", "identifier"),
    [
        pytest.param(bare_identify(traits={"email": "t@x.io"}), "t@x.io", id="traits"),
        pytest.param(
            bare_identify(context={"traits": {"email": "c@x.io"}}), "c@x.io", id="context-traits"
        ),
        pytest.param(bare_identify(properties={"email": "p@x.io"}), "p@x.io", id="properties"),
        pytest.param(
            bare_identify(
                traits={"email": "t@x.io"},
                context={"traits": {"email": "c@x.io"}},
                properties={"email": "p@x.io"},
            ),
            "t@x.io",
            id="traits-first",
        ),
        pytest.param(
            bare_identify(context={"traits": {"email": "c@x.io"}}, properties={"email": "p@x.io"}),
            "c@x.io",
            id="context-traits-before-properties",
        ),
        pytest.param(
            bare_identify(traits={"email": ""}, context={"traits": {"email": "c@x.io"}}),
            "c@x.io",
            id="empty-text-skipped",
        ),
        pytest.param(
            bare_identify(traits={"email": True}, properties={"email": "p@x.io"}),
            "p@x.io",
            id="non-text-skipped",
        ),
        pytest.param(
            bare_identify(context={"externalId": [{"type": "email", "id": "e@x.io"}]}),
            "e@x.io",
            id="first-external-id-fallback",
        ),
        pytest.param(
            bare_identify(
                context={
                    "externalId": [{"type": "crmId", "id": "e@x.io"}, {"type": "x", "id": "no"}]
                }
            ),
            "e@x.io",
            id="only-the-first-external-id",
        ),
    ],
)
def test_email_resolution(document: dict[str, Any], identifier: str) -> None:
    assert create_of(document) == CreateContact(EMAIL_CHANNEL, identifier, None)


@pytest.mark.parametrize(
    "trengo_type",
    [
        pytest.param("trengoChannelId", id="channel-id"),
        pytest.param("trengoContactId", id="contact-id"),
    ],
)
def test_a_trengo_external_id_is_never_the_email(trengo_type: str) -> None:
    """Deliberate fix: RudderStack would use the channel or contact id."""
    document = bare_identify(context=external_ids((trengo_type, "123")))

    assert create_of(document) == rejected(
        "Mandatory field for Channel-Identifier :email not present"
    )


@pytest.mark.parametrize(
    ("document", "identifier"),
    [
        pytest.param(bare_identify(traits={"phone": "1"}), "1", id="traits"),
        pytest.param(bare_identify(context={"traits": {"phone": "2"}}), "2", id="context-traits"),
        pytest.param(bare_identify(properties={"phone": "3"}), "3", id="properties"),
        pytest.param(
            bare_identify(traits={"phone": "1"}, context={"traits": {"phone": "2"}}),
            "1",
            id="order",
        ),
        pytest.param(bare_identify(traits={"phone": 31612345678}), 31612345678, id="number-kept"),
        pytest.param(
            bare_identify(traits={"phone": 0}, properties={"phone": "3"}), "3", id="zero-skipped"
        ),
    ],
)
def test_phone_resolution(document: dict[str, Any], identifier: str | int) -> None:
    create = create_of(document, identifier="phone")

    assert create == CreateContact(EMAIL_CHANNEL, identifier, None)


def test_phone_has_no_external_id_fallback() -> None:
    document = bare_identify(context={"externalId": [{"type": "phone", "id": "31612345678"}]})

    assert create_of(document, "phone") == rejected(
        "Mandatory field for Channel-Identifier :phone not present"
    )


def test_the_identifier_follows_channel_identifier() -> None:
    document = bare_identify(traits={"email": EMAIL, "phone": PHONE})

    assert [create_of(document, by) for by in ("email", "phone")] == [
        CreateContact(EMAIL_CHANNEL, EMAIL, None),
        CreateContact(EMAIL_CHANNEL, PHONE, None),
    ]


def test_a_numeric_identifier_is_searched_as_text() -> None:
    document = bare_identify(traits={"phone": 31612345678})

    result = plan(document, destination(identifier="phone"))

    assert isinstance(result, IdentifyPlan)
    assert result.contact == search("31612345678", "phone")
    assert result.create is not None and result.create.identifier == 31612345678


@pytest.mark.parametrize(
    ("traits", "context_traits", "name"),
    [
        pytest.param({"name": "Jo Doe"}, {}, "Jo Doe", id="traits-name"),
        pytest.param({}, {"name": "Jo Doe"}, "Jo Doe", id="context-traits-name"),
        pytest.param({"name": "A"}, {"name": "B"}, "A", id="traits-name-first"),
        pytest.param({"name": "A", "firstName": "F"}, {}, "A", id="name-before-parts"),
        pytest.param({"firstName": "John", "lastName": "Doe"}, {}, "John Doe", id="camel-case"),
        pytest.param({"firstname": "John", "lastname": "Doe"}, {}, "John Doe", id="lower-case"),
        pytest.param({"first_name": "John", "last_name": "Doe"}, {}, "John Doe", id="snake-case"),
        pytest.param({}, {"firstName": "John", "last_name": "Doe"}, "John Doe", id="context-parts"),
        pytest.param({"firstName": "John"}, {"lastName": "Doe"}, "John Doe", id="mixed-sources"),
        pytest.param({"firstName": "A"}, {"firstName": "B"}, "A", id="traits-part-first"),
        pytest.param({"first_name": "A", "firstName": "B"}, {}, "B", id="camel-before-snake"),
        pytest.param(
            {"name": "", "firstName": "John", "lastName": "Doe"}, {}, "John Doe", id="empty-name"
        ),
        pytest.param({"name": 42}, {}, "42", id="numeric-name"),
        # Deliberate fixes: RudderStack sends "John null", "null Doe", "null null".
        pytest.param({"firstName": "John"}, {}, "John", id="first-name-only"),
        pytest.param({"lastName": "Doe"}, {}, "Doe", id="last-name-only"),
        pytest.param({}, {}, None, id="no-name"),
    ],
)
def test_name_resolution(
    traits: dict[str, Any], context_traits: dict[str, Any], name: str | None
) -> None:
    document = bare_identify(traits={**traits, "email": EMAIL}, context={"traits": context_traits})

    assert create_of(document) == CreateContact(EMAIL_CHANNEL, EMAIL, name)


@pytest.mark.parametrize(
    ("ids", "channel"),
    [
        pytest.param([("trengoChannelId", "4712")], "4712", id="override"),
        pytest.param([("trengoChannelId", 4711)], "4711", id="integer-override-as-text"),
        pytest.param(
            [("trengoChannelId", "4713"), ("trengoChannelId", "4714")], "4713", id="first-wins"
        ),
        pytest.param([("trengoChannelId", "")], EMAIL_CHANNEL, id="empty-id-ignored"),
        pytest.param([("other", "x")], EMAIL_CHANNEL, id="other-type-ignored"),
    ],
)
def test_channel_override(ids: list[tuple[str, Any]], channel: str) -> None:
    """The override reaches the create path and body, the search and the ticket."""
    identify_plan = plan(
        bare_identify(traits={"email": EMAIL}, context=external_ids(*ids)), destination()
    )
    ticket_plan = plan(
        track("Order Completed", {"email": EMAIL}, context=external_ids(*ids)), destination()
    )

    assert identify_plan == upsert(search(EMAIL, channel=channel), None, EMAIL)
    assert ticket_plan == ticket(
        search(EMAIL, channel=channel), channel, "Completed Order", "Order Completed"
    )


@pytest.mark.parametrize(
    ("contact_id", "contact"),
    [
        pytest.param(97694755, KnownContact(97694755), id="integer-kept"),
        pytest.param("97694755", KnownContact("97694755"), id="text-kept"),
        pytest.param("", search(EMAIL), id="empty-means-search"),
        pytest.param(0, search(EMAIL), id="zero-means-search"),
    ],
)
def test_contact_id(contact_id: object, contact: KnownContact | ResolveContact) -> None:
    document = track(
        "Order Completed", {"email": EMAIL}, context=external_ids(("trengoContactId", contact_id))
    )

    assert plan(document, destination()) == ticket(
        contact, EMAIL_CHANNEL, "Completed Order", "Order Completed"
    )


@pytest.mark.parametrize(
    ("id_type", "bad_id", "shown"),
    [
        pytest.param("trengoContactId", 1.5, "1.5", id="contact-float"),
        pytest.param("trengoContactId", True, "true", id="contact-bool"),
        pytest.param("trengoChannelId", {"id": 1}, '{"id": 1}', id="channel-object"),
        pytest.param("trengoContactId", "..", '".."', id="contact-dot-dot"),
        pytest.param(
            "trengoContactId", "../../channels/1", '"../../channels/1"', id="contact-traversal"
        ),
        pytest.param("trengoContactId", "1/labels", '"1/labels"', id="contact-sub-path"),
        pytest.param("trengoContactId", -1, "-1", id="contact-negative"),
        pytest.param("trengoContactId", "-1", '"-1"', id="contact-negative-text"),
        pytest.param("trengoContactId", "0", '"0"', id="contact-zero-text"),
        pytest.param("trengoContactId", " 12", '" 12"', id="contact-space"),
        pytest.param("trengoContactId", "12\n", '"12\\n"', id="contact-newline"),
        pytest.param("trengoContactId", "\u0661", '"\\u0661"', id="contact-arabic-digit"),
        pytest.param("trengoContactId", 10**19, str(10**19), id="contact-20-digits"),
        pytest.param("trengoContactId", "9" * 25, f'"{"9" * 25}"'[:40], id="contact-huge-text"),
        pytest.param("trengoChannelId", "..", '".."', id="channel-dot-dot"),
        pytest.param("trengoChannelId", "1?x=2", '"1?x=2"', id="channel-query"),
        pytest.param("trengoChannelId", "1e3", '"1e3"', id="channel-exponent"),
    ],
)
def test_a_trengo_id_that_is_not_a_positive_integer_is_rejected(
    id_type: str, bad_id: object, shown: str
) -> None:
    """An id from an event becomes a URL path segment: only digits may get there."""
    document = track("Order Completed", {"email": EMAIL}, context=external_ids((id_type, bad_id)))

    assert plan(document, destination()) == rejected(
        f"{id_type} id must be a positive integer (at most 19 digits), got {shown}"
    )


@pytest.mark.parametrize(
    "contact_id", [1, "1", 10**19 - 1, "9" * 19], ids=["one", "one-text", "max", "max-text"]
)
def test_a_trengo_id_of_up_to_19_digits_is_kept(contact_id: int | str) -> None:
    document = track(
        "Order Completed", {"email": EMAIL}, context=external_ids(("trengoContactId", contact_id))
    )

    assert plan(document, destination()) == ticket(
        KnownContact(contact_id), EMAIL_CHANNEL, "Completed Order", "Order Completed"
    )


@pytest.mark.parametrize(
    ("identifier", "traits", "reason"),
    [
        pytest.param(
            "email",
            {"email": "a" * 243 + "@example.com"},
            "email is longer than Trengo accepts (at most 254 characters), aborting event",
            id="email-255",
        ),
        pytest.param(
            "phone",
            {"phone": "+" + "1" * 21},
            "phone is longer than Trengo accepts (at most 20 digits (64 characters)), "
            "aborting event",
            id="phone-21-digits",
        ),
        pytest.param(
            "phone",
            {"phone": 10**21},
            "phone is longer than Trengo accepts (at most 20 digits (64 characters)), "
            "aborting event",
            id="phone-number-22-digits",
        ),
        pytest.param(
            "phone",
            {"phone": "1" + " -" * 40},
            "phone is longer than Trengo accepts (at most 20 digits (64 characters)), "
            "aborting event",
            id="phone-81-characters",
        ),
    ],
)
def test_an_identifier_longer_than_trengo_accepts_is_rejected(
    identifier: str, traits: dict[str, Any], reason: str
) -> None:
    config = destination(PHONE_CHANNEL, identifier) if identifier == "phone" else destination()

    assert plan(bare_identify(traits=traits), config) == rejected(reason)
    assert plan(track("Order Completed", traits), config) == rejected(reason)


@pytest.mark.parametrize(
    ("identifier", "traits"),
    [
        pytest.param("email", {"email": "a" * 242 + "@example.com"}, id="email-254"),
        pytest.param("phone", {"phone": "+" + "1" * 20}, id="phone-20-digits"),
    ],
)
def test_an_identifier_at_trengos_limit_is_kept(identifier: str, traits: dict[str, Any]) -> None:
    config = destination(PHONE_CHANNEL, identifier) if identifier == "phone" else destination()

    assert isinstance(plan(bare_identify(traits=traits), config), IdentifyPlan)


# identify ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "document", "expected"),
    [
        pytest.param(
            destination(),
            identify({"name": "Jo", "email": EMAIL}, context=external_ids(("trengoContactId", 7))),
            IdentifyPlan(contact=KnownContact(7), update=UpdateContact("Jo"), create=None),
            id="dedup-known-contact-update-only",
        ),
        pytest.param(
            destination(),
            identify({"name": "Jo"}, context=external_ids(("trengoContactId", 7))),
            IdentifyPlan(contact=KnownContact(7), update=UpdateContact("Jo"), create=None),
            id="dedup-known-contact-needs-no-identifier",
        ),
        pytest.param(
            destination(),
            identify({"name": "Jo", "email": EMAIL}),
            upsert(search(EMAIL), "Jo", EMAIL),
            id="dedup-search-then-update-or-create",
        ),
        pytest.param(
            destination(dedup=False),
            identify({"name": "Jo", "email": EMAIL}, context=external_ids(("trengoContactId", 7))),
            upsert(None, "Jo", EMAIL),
            id="no-dedup-ignores-contact-id-and-creates",
        ),
        pytest.param(
            destination(dedup=False),
            identify({"name": "Jo"}),
            rejected("Mandatory field for Channel-Identifier :email not present"),
            id="no-dedup-without-identifier",
        ),
        pytest.param(
            destination(),
            identify({"name": "Jo"}),
            # RudderStack searches term=null first; rejected before any call.
            rejected("Mandatory field for Channel-Identifier :email not present"),
            id="dedup-without-identifier-fix",
        ),
        pytest.param(
            destination(dedup=None),
            identify({"name": "Jo", "email": EMAIL}),
            # RudderStack treats a config without the key as dedup off.
            upsert(search(EMAIL), "Jo", EMAIL),
            id="dedup-absent-means-on-fix",
        ),
        pytest.param(
            destination(),
            identify({"email": EMAIL}),
            upsert(search(EMAIL), None, EMAIL),
            id="no-name-left-out-fix",
        ),
    ],
)
def test_identify(
    config: DestinationConfig, document: dict[str, Any], expected: Plan | Rejection
) -> None:
    assert plan(document, config) == expected


# track ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "document", "expected"),
    [
        pytest.param(
            destination(),
            track("order completed", {"email": EMAIL}),
            rejected("order completed is not present in Event-Map template keys, aborting event"),
            id="event-match-case-sensitive",
        ),
        pytest.param(
            destination(),
            track(None, {"email": EMAIL}),
            rejected("undefined is not present in Event-Map template keys, aborting event"),
            id="missing-event-named-undefined",
        ),
        pytest.param(
            destination(template_map=({"from": "undefined", "to": "x"},)),
            track(None, {"email": EMAIL}),
            rejected("undefined is not present in Event-Map template keys, aborting event"),
            id="missing-event-never-matches-undefined-fix",
        ),
        pytest.param(
            destination(template_map=()),
            track("Order Completed", {"email": EMAIL}),
            rejected("Order Completed is not present in Event-Map template keys, aborting event"),
            id="empty-map-rejects-every-track",
        ),
        pytest.param(
            destination(template_map=({"from": "", "to": "x"},)),
            track("", {"email": EMAIL}),
            rejected(" is not present in Event-Map template keys, aborting event"),
            id="empty-from-ignored",
        ),
        pytest.param(
            destination(),
            track("Stress test4", {}),
            rejected("Stress test4 is not present in Event-Map template keys, aborting event"),
            id="template-checked-before-identifier",
        ),
        pytest.param(
            destination(template_map=({"from": "A", "to": "first"}, {"from": "A", "to": "second"})),
            track("A", {"email": EMAIL}),
            ticket(search(EMAIL), EMAIL_CHANNEL, "second", "A"),
            id="later-mapping-wins",
        ),
        pytest.param(
            destination(identifier="phone"),
            track("Product Purchased", {"phone": PHONE}),
            ticket(search(PHONE, "phone"), EMAIL_CHANNEL, None, "Product Purchased"),
            id="phone-never-has-subject",
        ),
        pytest.param(
            destination(template_map=({"from": "A", "to": "{{ missing }}"},)),
            track("A", {"email": EMAIL}),
            ticket(search(EMAIL), EMAIL_CHANNEL, "", "A"),
            id="empty-rendered-subject-kept",
        ),
        pytest.param(
            destination(template_map=({"from": "A", "to": "{{ total * 2 }}"},)),
            track("A", {"email": EMAIL, "total": "x"}),
            ticket(search(EMAIL), EMAIL_CHANNEL, "xx", "A"),
            id="jinja-expressions",
        ),
        pytest.param(
            destination(template_map=({"from": "A", "to": "{{ total + 1 }}"},)),
            track("A", {"email": EMAIL, "total": "x"}),
            rejected("Error occurred in parsing event template for A"),
            id="render-error",
        ),
        pytest.param(
            destination(),
            track("Product Purchased", {}, context=external_ids(("trengoContactId", "101"))),
            ticket(
                KnownContact("101"),
                EMAIL_CHANNEL,
                "Product Purchased from Rudderstack",
                "Product Purchased",
            ),
            id="known-contact-needs-no-identifier",
        ),
        pytest.param(
            destination(identifier="phone"),
            track("Product Purchased", {"email": EMAIL}),
            rejected(
                "No phone or trengoContactId present for track event Product Purchased, "
                "aborting event"
            ),
            id="no-identifier-rejected-before-search-fix",
        ),
        pytest.param(
            destination(),
            track("Order Completed", None, traits={"email": EMAIL}),
            ticket(search(EMAIL), EMAIL_CHANNEL, "Completed Order", "Order Completed"),
            id="no-properties-static-template-fix",
        ),
        pytest.param(
            destination(),
            track("Product Purchased", None, context={"traits": {"email": EMAIL}}),
            ticket(
                search(EMAIL),
                EMAIL_CHANNEL,
                "Product Purchased from Rudderstack",
                "Product Purchased",
            ),
            id="no-properties-event-template-fix",
        ),
        pytest.param(
            destination(template_map=({"from": "A", "to": "{{ title }}"},)),
            track("A", {"email": EMAIL, "title": "<b>Tom & Jerry</b>"}),
            ticket(search(EMAIL), EMAIL_CHANNEL, "<b>Tom & Jerry</b>", "A"),
            id="subject-not-html-escaped-fix",
        ),
    ],
)
def test_track(
    config: DestinationConfig, document: dict[str, Any], expected: Plan | Rejection
) -> None:
    assert plan(document, config) == expected


def test_the_map_is_pure() -> None:
    """The same message and config give equal plans, and the message is left unchanged."""
    config = destination()
    message: Message | Group | Rejection = validate(
        track("checkedOut", {"email": EMAIL, "value": 1})
    )
    assert not isinstance(message, Rejection)
    before = message.model_dump()
    templates = EventTemplates(config)

    assert plan_event(message, config, templates) == plan_event(message, config, templates)
    assert message.model_dump() == before


# Opt-in additions: with none configured, plans are as above ------------------------------


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param(
            identify({"email": EMAIL, "plan": "pro", "company": "Acme"}),
            upsert(search(EMAIL), None, EMAIL),
            id="identify-without-custom-fields",
        ),
        pytest.param(
            track("Order Completed", {"email": EMAIL}, messageId="m-1"),
            ticket(search(EMAIL), EMAIL_CHANNEL, "Completed Order", "Order Completed"),
            id="track-without-follow-ups-or-event-key",
        ),
    ],
)
def test_plans_without_opt_ins_are_unchanged(
    document: dict[str, Any], expected: Plan | Rejection
) -> None:
    """No custom fields, no message, no labels, and no event key although a messageId is there."""
    assert plan(document, destination()) == expected


def test_a_group_is_not_mapped_without_profiles() -> None:
    """validate already rejects it; the map refuses one handed over anyway."""
    message = Group.model_validate({"type": "group", "groupId": "acme-1"})
    config = destination()

    assert plan_event(message, config, EventTemplates(config)) == rejected(
        "Event type group is not supported"
    )


# Custom fields (customFieldMap) -----------------------------------------------------------

PLAN_FIELD = 1001


def custom_fields_of(document: dict[str, Any], *mappings: tuple[str, int]) -> Any:
    """The custom field steps of an identify planned with ``(trait, fieldId)`` mappings."""
    field_map = [{"trait": trait, "fieldId": field_id} for trait, field_id in mappings]
    result = plan(document, destination(customFieldMap=field_map))
    return result.custom_fields if isinstance(result, IdentifyPlan) else result


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        pytest.param("pro", "pro", id="text"),
        pytest.param(" pro ", " pro ", id="text-unchanged"),
        pytest.param("", None, id="empty-text-skipped"),
        pytest.param(3, "3", id="integer"),
        pytest.param(3.0, "3", id="integral-float-like-javascript"),
        pytest.param(2.5, "2.5", id="fraction"),
        pytest.param(0, "0", id="zero-is-a-value"),
        pytest.param(-1, "-1", id="negative"),
        pytest.param(True, "true", id="true"),
        pytest.param(False, "false", id="false-is-a-value"),
        pytest.param(None, None, id="null-skipped"),
        pytest.param({"tier": "pro"}, None, id="object-skipped"),
        pytest.param(["pro"], None, id="list-skipped"),
    ],
)
def test_custom_field_values_are_sent_as_javascript_text(value: object, sent: str | None) -> None:
    document = identify({"email": EMAIL, "plan": value})

    expected = () if sent is None else (SetCustomField(PLAN_FIELD, sent),)
    assert custom_fields_of(document, ("plan", PLAN_FIELD)) == expected


@pytest.mark.parametrize(
    ("traits", "context_traits", "sent"),
    [
        pytest.param({"plan": "a"}, {}, "a", id="traits"),
        pytest.param({}, {"plan": "b"}, "b", id="context-traits"),
        pytest.param({"plan": "a"}, {"plan": "b"}, "a", id="traits-first"),
        pytest.param({"plan": ""}, {"plan": "b"}, "b", id="empty-falls-through"),
        pytest.param({"plan": {"x": 1}}, {"plan": "b"}, "b", id="object-falls-through"),
        pytest.param({"plan": False}, {"plan": "b"}, "false", id="false-does-not-fall-through"),
        pytest.param({}, {}, None, id="absent"),
    ],
)
def test_custom_field_value_sources(
    traits: dict[str, Any], context_traits: dict[str, Any], sent: str | None
) -> None:
    document = bare_identify(traits={"email": EMAIL, **traits}, context={"traits": context_traits})

    expected = () if sent is None else (SetCustomField(PLAN_FIELD, sent),)
    assert custom_fields_of(document, ("plan", PLAN_FIELD)) == expected


def test_custom_fields_never_come_from_properties() -> None:
    document = bare_identify(traits={"email": EMAIL}, properties={"plan": "p"})

    assert custom_fields_of(document, ("plan", PLAN_FIELD)) == ()


def test_custom_fields_follow_the_map_order_and_skip_missing_traits() -> None:
    document = identify({"email": EMAIL, "tier": "gold", "plan": "pro"})

    fields = custom_fields_of(document, ("plan", 1001), ("company", 1002), ("tier", 1003))

    assert fields == (SetCustomField(1001, "pro"), SetCustomField(1003, "gold"))


@pytest.mark.parametrize(
    ("dedup", "context", "expected"),
    [
        pytest.param(
            True,
            external_ids(("trengoContactId", 7)),
            IdentifyPlan(KnownContact(7), UpdateContact(None), None),
            id="known-contact",
        ),
        pytest.param(True, {}, upsert(search(EMAIL), None, EMAIL), id="search-then-upsert"),
        pytest.param(False, {}, upsert(None, None, EMAIL), id="always-create"),
    ],
)
def test_custom_fields_ride_on_every_identify_path(
    dedup: bool, context: dict[str, Any], expected: IdentifyPlan
) -> None:
    document = identify({"email": EMAIL, "plan": "pro"}, context=context)
    config = destination(dedup=dedup, customFieldMap=[{"trait": "plan", "fieldId": PLAN_FIELD}])

    assert plan(document, config) == IdentifyPlan(
        expected.contact, expected.update, expected.create, (SetCustomField(PLAN_FIELD, "pro"),)
    )


def test_custom_fields_do_not_save_an_identify_without_identifier() -> None:
    document = identify({"plan": "pro"})

    assert custom_fields_of(document, ("plan", PLAN_FIELD)) == rejected(
        "Mandatory field for Channel-Identifier :email not present"
    )


# Ticket follow-ups (eventTemplateMap[].message, .messageType, .labels) ---------------------

FOLLOW_UP_MAP = (
    {"from": "Note", "to": "Order {{ id }}", "message": "Paid {{ total }} for {{ event }}"},
    {"from": "Reply", "message": "Thanks {{ name }}: {{ properties }}", "messageType": "message"},
    {"from": "Tagged", "labels": [" vip ", "order", "VIP"]},
    {"from": "Empty", "message": "  {{ missing }} ", "labels": ["lead"]},
    {"from": "Blank", "message": "{{ missing }}"},
    {"from": "Broken", "message": "{{ name + 1 }}"},
    {"from": "Both broken", "to": "{{ name + 1 }}", "message": "{{ name + 1 }}"},
)
FOLLOW_UP_PROPERTIES = {"email": EMAIL, "phone": PHONE, "id": 7, "total": 19.5, "name": "Jo"}


def follow_up_ticket(
    event: str,
    subject: str | None,
    message: PostMessage | None = None,
    labels: tuple[str, ...] = (),
    by: ChannelIdentifier = "email",
) -> TicketPlan:
    contact = search(EMAIL) if by == "email" else search(PHONE, "phone")
    return TicketPlan(
        event=event,
        contact=contact,
        ticket=CreateTicket(channel_id=EMAIL_CHANNEL, subject=subject),
        message=message,
        labels=labels,
        event_key="m-1",
    )


@pytest.mark.parametrize(
    ("identifier", "event", "expected"),
    [
        pytest.param(
            "email",
            "Note",
            follow_up_ticket("Note", "Order 7", PostMessage("Paid 19.5 for Note", True)),
            id="internal-note-by-default",
        ),
        pytest.param(
            "email",
            "Reply",
            follow_up_ticket(
                "Reply",
                None,
                PostMessage(
                    "Thanks Jo: email: utsab@outlook.com phone: 9830311521 id: 7 total: 19.5 "
                    "name: Jo",
                    False,
                ),
            ),
            id="customer-message-same-variables-as-subject",
        ),
        pytest.param(
            "phone",
            "Note",
            follow_up_ticket("Note", None, PostMessage("Paid 19.5 for Note", True), by="phone"),
            id="message-on-every-channel-subject-only-on-email",
        ),
        pytest.param(
            "email",
            "Tagged",
            follow_up_ticket("Tagged", None, labels=("vip", "order")),
            id="labels-as-configured",
        ),
        pytest.param(
            "email",
            "Empty",
            follow_up_ticket("Empty", None, labels=("lead",)),
            id="empty-message-not-sent-labels-kept",
        ),
        pytest.param(
            "email",
            "Blank",
            ticket(search(EMAIL), EMAIL_CHANNEL, None, "Blank"),
            id="no-follow-ups-no-event-key",
        ),
        pytest.param(
            "email",
            "Broken",
            rejected("Error occurred in parsing message template for Broken"),
            id="message-render-error",
        ),
        pytest.param(
            "phone",
            "Broken",
            rejected("Error occurred in parsing message template for Broken"),
            id="message-render-error-on-phone",
        ),
        pytest.param(
            "email",
            "Both broken",
            rejected("Error occurred in parsing event template for Both broken"),
            id="subject-error-first",
        ),
    ],
)
def test_ticket_follow_ups(
    identifier: ChannelIdentifier, event: str, expected: Plan | Rejection
) -> None:
    config = destination(identifier=identifier, template_map=FOLLOW_UP_MAP)
    document = track(event, FOLLOW_UP_PROPERTIES, messageId="m-1")

    assert plan(document, config) == expected


def test_follow_ups_without_message_id_have_no_event_key() -> None:
    config = destination(template_map=FOLLOW_UP_MAP)

    result = plan(track("Tagged", FOLLOW_UP_PROPERTIES), config)

    assert isinstance(result, TicketPlan)
    assert (result.labels, result.event_key) == (("vip", "order"), None)


# Profiles (enableProfiles, profileKeyFieldId) ---------------------------------------------

PROFILE_KEY_FIELD = 2001
GROUP_ID = "acme-1"


def profiles(identifier: str = "email", dedup: bool = True) -> DestinationConfig:
    return destination(
        identifier=identifier,
        dedup=dedup,
        enableProfiles=True,
        profileKeyFieldId=PROFILE_KEY_FIELD,
    )


def group(
    group_id: object = GROUP_ID,
    traits: dict[str, Any] | None = None,
    user_traits: dict[str, Any] | None = None,
    **context: Any,
) -> dict[str, Any]:
    """A group: ``traits`` describe the group, ``user_traits`` (context.traits) the user."""
    document: dict[str, Any] = {
        "type": "group",
        "userId": "randomUserId",
        "traits": traits or {},
        "context": {"traits": user_traits or {}, **context},
    }
    if group_id is not None:
        document["groupId"] = group_id
    return document


def attach(
    contact: ContactRef, name: str = "Acme", group_id: str = GROUP_ID, channel: str = EMAIL_CHANNEL
) -> GroupPlan:
    return GroupPlan(
        group_id=group_id,
        contact=contact,
        profile=ResolveProfile(
            key=group_id, key_field_id=PROFILE_KEY_FIELD, name=name, channel_id=channel
        ),
    )


@pytest.mark.parametrize(
    ("config", "document", "expected"),
    [
        pytest.param(
            profiles(),
            group(traits={"name": "Acme"}, user_traits={"email": EMAIL}),
            attach(search(EMAIL)),
            id="user-email-from-context-traits",
        ),
        pytest.param(
            profiles(),
            group(user_traits={"email": EMAIL}),
            attach(search(EMAIL), name=GROUP_ID),
            id="unnamed-group-named-by-id",
        ),
        pytest.param(
            profiles(),
            group(traits={"name": "  "}, user_traits={"email": EMAIL}),
            attach(search(EMAIL), name=GROUP_ID),
            id="blank-name-named-by-id",
        ),
        pytest.param(
            profiles(),
            group(traits={"name": " Acme "}, user_traits={"email": EMAIL}),
            attach(search(EMAIL)),
            id="name-stripped",
        ),
        pytest.param(
            profiles(),
            group(traits={"name": 42}, user_traits={"email": EMAIL}),
            attach(search(EMAIL), name="42"),
            id="numeric-name-as-text",
        ),
        pytest.param(
            profiles(),
            group(42, traits={"name": "Acme"}, user_traits={"email": EMAIL}),
            attach(search(EMAIL), group_id="42"),
            id="integer-group-id-as-text",
        ),
        pytest.param(
            profiles(),
            group(traits={"name": "Acme", "email": "info@acme.io"}, user_traits={"email": EMAIL}),
            attach(search(EMAIL)),
            id="group-email-is-not-the-user",
        ),
        pytest.param(
            profiles(),
            group(traits={"name": "Acme"}, **external_ids(("trengoContactId", 7))),
            attach(KnownContact(7)),
            id="known-contact",
        ),
        pytest.param(
            profiles(),
            group(
                traits={"name": "Acme"},
                user_traits={"email": EMAIL},
                **external_ids(("trengoChannelId", EXTERNAL_CHANNEL)),
            ),
            attach(search(EMAIL, channel=EXTERNAL_CHANNEL)),
            id="channel-override",
        ),
        pytest.param(
            profiles("phone"),
            group(traits={"name": "Acme"}, user_traits={"email": EMAIL, "phone": PHONE}),
            attach(search(PHONE, "phone")),
            id="phone-identifier",
        ),
        pytest.param(
            profiles(dedup=False),
            group(traits={"name": "Acme"}, user_traits={"email": EMAIL}),
            attach(search(EMAIL)),
            id="found-even-without-dedup",
        ),
    ],
)
def test_group_attaches_the_user_to_a_profile(
    config: DestinationConfig, document: dict[str, Any], expected: GroupPlan
) -> None:
    assert plan(document, config) == expected


@pytest.mark.parametrize(
    ("config", "document", "reason"),
    [
        pytest.param(
            profiles(),
            group(None, user_traits={"email": EMAIL}),
            "No groupId present for group event, aborting event",
            id="missing-group-id",
        ),
        pytest.param(
            profiles(),
            group("", user_traits={"email": EMAIL}),
            "No groupId present for group event, aborting event",
            id="empty-group-id",
        ),
        pytest.param(
            profiles(),
            group("  ", user_traits={"email": EMAIL}),
            "No groupId present for group event, aborting event",
            id="blank-group-id",
        ),
        pytest.param(
            profiles(),
            group(traits={"name": "Acme", "email": "info@acme.io", "phone": PHONE}),
            "No email in context.traits or trengoContactId present for group event acme-1, "
            "aborting event",
            id="group-traits-never-identify-the-user",
        ),
        pytest.param(
            profiles(),
            {**group(user_traits={}), "properties": {"email": EMAIL}},
            "No email in context.traits or trengoContactId present for group event acme-1, "
            "aborting event",
            id="properties-never-identify-the-user",
        ),
        pytest.param(
            profiles(),
            group(**external_ids(("email", EMAIL))),
            "No email in context.traits or trengoContactId present for group event acme-1, "
            "aborting event",
            id="no-external-id-fallback",
        ),
        pytest.param(
            profiles("phone"),
            group(user_traits={"email": EMAIL}),
            "No phone in context.traits or trengoContactId present for group event acme-1, "
            "aborting event",
            id="identifier-follows-channel-identifier",
        ),
    ],
)
def test_group_rejections(config: DestinationConfig, document: dict[str, Any], reason: str) -> None:
    assert plan(document, config) == rejected(reason)
