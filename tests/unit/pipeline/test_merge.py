"""The merge rule for Trengo plans: identifies of one contact become one call."""

from __future__ import annotations

import dataclasses

import pytest

from processor.pipeline.merge import merged_identify
from processor.pipeline.plan import (
    CreateContact,
    IdentifyPlan,
    KnownContact,
    Plan,
    Rejection,
    ResolveContact,
    SetCustomField,
    UpdateContact,
)
from tests.unit.engine.fakes import CHANNEL, identify_plan, ticket_plan

KNOWN_ONLY = IdentifyPlan(
    contact=identify_plan("a@example.com", "A").contact, update=UpdateContact("A2"), create=None
)
BY_ID = IdentifyPlan(contact=KnownContact(7), update=UpdateContact("A2"), create=None)
OTHER_CHANNEL = dataclasses.replace(
    identify_plan("a@example.com", "A2"),
    create=CreateContact("999", "a@example.com", "A2"),
)


def with_fields(plan: IdentifyPlan, *fields: tuple[int, str]) -> IdentifyPlan:
    custom_fields = tuple(SetCustomField(field_id, value) for field_id, value in fields)
    return dataclasses.replace(plan, custom_fields=custom_fields)


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        pytest.param(identify_plan("a@example.com", "A"), KNOWN_ONLY, id="create-vs-no-create"),
        pytest.param(KNOWN_ONLY, identify_plan("a@example.com", "A"), id="no-create-vs-create"),
        pytest.param(identify_plan("a@example.com", "A"), OTHER_CHANNEL, id="other-channel"),
        pytest.param(
            identify_plan("a@example.com", "A"), identify_plan("b@example.com", "B"), id="other"
        ),
        pytest.param(KNOWN_ONLY, BY_ID, id="search-vs-known-id"),
        pytest.param(
            identify_plan("a@example.com", "A"), ticket_plan("a@example.com", "T"), id="ticket"
        ),
        pytest.param(
            ticket_plan("a@example.com", "T"),
            identify_plan("a@example.com", "A"),
            id="after-ticket",
        ),
        pytest.param(
            Rejection("bad", "validate"), identify_plan("a@example.com", "A"), id="rejection"
        ),
    ],
)
def test_plans_for_another_contact_or_another_kind_are_not_merged(
    older: Plan | Rejection, newer: Plan | Rejection
) -> None:
    assert merged_identify(older, newer) is None


def test_identifies_of_one_contact_merge_into_the_newest() -> None:
    merged = merged_identify(
        identify_plan("a@example.com", "A1"), identify_plan("a@example.com", "A2")
    )
    assert merged == identify_plan("a@example.com", "A2")
    assert merged_identify(KNOWN_ONLY, dataclasses.replace(KNOWN_ONLY, update=UpdateContact("A3")))


def test_the_merged_identify_keeps_an_older_name_and_older_custom_fields() -> None:
    nameless = IdentifyPlan(
        contact=ResolveContact("a@example.com", "email", CHANNEL),
        update=UpdateContact(None),
        create=CreateContact(CHANNEL, "a@example.com", None),
    )

    merged = merged_identify(
        with_fields(identify_plan("a@example.com", "Ann"), (1, "pro"), (2, "Acme")),
        with_fields(nameless, (1, "enterprise")),
    )

    assert merged == with_fields(
        identify_plan("a@example.com", "Ann"), (2, "Acme"), (1, "enterprise")
    )
