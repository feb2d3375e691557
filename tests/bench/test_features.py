"""The features benchmark's pure parts: workload, configs, expected costs, the check, tables."""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections import defaultdict
from typing import Any

import pytest

from bench.features import (
    ATTACH_CONTACT,
    CONFIGURATIONS,
    CREATE_CONTACT,
    CREATE_TICKET,
    FEATURES,
    LABEL_TICKET,
    LABELS,
    LIST_LABELS,
    PROFILE_KEY_FIELD,
    SET_CONTACT_FIELD,
    Configuration,
    Counts,
    Feature,
    FeatureWorkloadSpec,
    Run,
    cost_table,
    destination,
    expected_counts,
    generate,
    measured_counts,
    routes_table,
    section,
    surprises,
)
from devkit.sandbox.trengo import DEFAULT_CUSTOM_FIELDS, DEFAULT_LABELS
from processor.config import DestinationConfig

SMALL = FeatureWorkloadSpec(users=60, seed=3)


def documents_by_user() -> dict[str, list[dict[str, Any]]]:
    by_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in generate(SMALL).events:
        document = json.loads(event.value)
        assert event.key == document["userId"].encode()
        assert event.kind == document["type"]
        by_user[document["userId"]].append(document)
    return by_user


def test_every_user_sends_two_identifies_one_group_and_the_orders() -> None:
    workload = generate(SMALL)
    assert len(workload.events) == SMALL.events == 60 * 7
    assert (workload.count("identify"), workload.count("group")) == (120, 60)
    assert workload.count("track") == SMALL.tickets == 240
    for documents in documents_by_user().values():
        kinds = [document["type"] for document in documents]
        assert sorted(kinds) == ["group", "identify", "identify", *["track"] * 4]


def test_a_user_starts_with_an_identify_and_never_sends_two_in_a_row() -> None:
    for documents in documents_by_user().values():
        kinds = [document["type"] for document in documents]
        assert kinds[0] == "identify"
        assert ("identify", "identify") not in itertools.pairwise(kinds)
    events = generate(SMALL).events
    for first, second in itertools.pairwise(events):
        assert not (first.kind == second.kind == "identify" and first.key == second.key)


def test_users_are_interleaved() -> None:
    keys = [event.key for event in generate(SMALL).events]
    runs = sum(1 for first, second in itertools.pairwise(keys) if first != second)
    assert runs > len(keys) // 2


def test_plan_changes_and_companies_follow_the_spec() -> None:
    changed = 0
    members: dict[str, set[str]] = defaultdict(set)
    for user, documents in documents_by_user().items():
        identifies = [
            document["traits"] for document in documents if document["type"] == "identify"
        ]
        first, second = identifies
        changed += first["plan"] != second["plan"]
        assert {**first, "plan": None} == {**second, "plan": None}
        [group] = [document for document in documents if document["type"] == "group"]
        assert group["traits"]["name"] == first["company"]
        assert group["context"]["traits"]["email"] == first["email"]
        members[group["groupId"]].add(user)
    assert changed == SMALL.plan_changes == 12
    assert len(members) == SMALL.companies == 3


def test_the_same_spec_gives_the_same_bytes_and_another_seed_does_not() -> None:
    assert generate(SMALL) == generate(SMALL)
    assert generate(dataclasses.replace(SMALL, seed=4)).events != generate(SMALL).events


@pytest.mark.parametrize("configuration", CONFIGURATIONS, ids=lambda one: one.label)
def test_every_configuration_is_a_valid_destination(configuration: Configuration) -> None:
    DestinationConfig.model_validate(destination(configuration.features))


def test_all_off_is_rudderstacks_config_and_features_use_the_sandboxs_defaults() -> None:
    assert set(destination(())) == {
        "channelId",
        "channelIdentifier",
        "enableDedup",
        "eventTemplateMap",
    }
    assert set(destination(())["eventTemplateMap"][0]) == {"from", "to"}
    field_types = {field.id: field.type for field in DEFAULT_CUSTOM_FIELDS}
    everything = DestinationConfig.model_validate(destination(FEATURES))
    assert {field_types[mapping.fieldId] for mapping in everything.customFieldMap} == {"CONTACT"}
    assert field_types[PROFILE_KEY_FIELD] == "PROFILE"
    assert set(LABELS) <= set(DEFAULT_LABELS)


def test_expected_costs_per_feature() -> None:
    off = expected_counts(SMALL, ())
    assert off.calls_by_route == {CREATE_CONTACT: 60, CREATE_TICKET: 240}
    assert off.dead_letters == 60  # the groups
    fields = expected_counts(SMALL, ["custom_fields"])
    assert fields.calls_by_route[SET_CONTACT_FIELD] == 2 * 60 + 12
    profiles = expected_counts(SMALL, ["profiles"])
    assert profiles.calls - off.calls == 4 * 3 + 1 + 60
    assert profiles.calls_by_route[ATTACH_CONTACT] == 60
    assert profiles.dead_letters == 0
    assert expected_counts(SMALL, ["message"]).calls - off.calls == 240
    labels = expected_counts(SMALL, ["labels"])
    assert labels.calls_by_route[LIST_LABELS] == 1
    assert labels.calls_by_route[LABEL_TICKET] == 2 * 240


def test_everything_on_costs_the_sum_of_the_features() -> None:
    def extra(features: tuple[Feature, ...]) -> int:
        return expected_counts(SMALL, features).calls - expected_counts(SMALL, ()).calls

    assert extra(FEATURES) == sum(extra((feature,)) for feature in FEATURES)


def sandbox_state() -> dict[str, Any]:
    return {
        "request_counts": [
            {"method": "POST", "route": "/api/v2/tickets", "status": 200, "count": 4},
            {"method": "POST", "route": "/api/v2/tickets", "status": 500, "count": 1},
            {"method": "GET", "route": "/api/v2/labels", "status": 200, "count": 1},
        ],
        "contacts": [{"id": 1}],
        "tickets": [
            {"labels": [{"id": 3001}, {"id": 3002}], "messages": [{"id": 1}]},
            {"labels": [], "messages": []},
        ],
        "profiles": [{"contacts": [{"id": 1}, {"id": 2}]}],
    }


def test_measured_counts_read_the_sandboxs_state() -> None:
    counts = measured_counts(sandbox_state(), dead_letters=2)
    assert counts.calls_by_route == {"POST /tickets": 5, "GET /labels": 1}
    assert counts.calls == 6
    assert counts.failed_calls == 1
    assert counts.dead_letters == 2
    assert counts.records == {
        "contacts": 1,
        "tickets": 2,
        "messages": 1,
        "ticket labels": 2,
        "profiles": 1,
        "profile members": 2,
    }


def as_run(number: int, counts: Counts | None = None, exit_codes: tuple[int, ...] = (0,)) -> Run:
    configuration = CONFIGURATIONS[number]
    expected = expected_counts(SMALL, configuration.features)
    return Run(configuration, SMALL.events, counts or expected, expected, exit_codes)


def test_a_run_as_expected_has_no_surprises() -> None:
    assert [surprises(as_run(number)) for number in range(len(CONFIGURATIONS))] == [[]] * 6


def test_every_difference_is_a_surprise() -> None:
    expected = expected_counts(SMALL, ["labels"])
    calls = {**expected.calls_by_route, LIST_LABELS: 2}
    del calls[LABEL_TICKET]
    measured = dataclasses.replace(
        expected,
        calls_by_route=calls,
        failed_calls=3,
        dead_letters=0,
        records={**expected.records, "ticket labels": 0},
    )
    assert surprises(as_run(4, measured, exit_codes=(1,))) == [
        "`GET /labels`: 2 calls, expected 1",
        "`POST /tickets/{ticket_id}/labels`: 0 calls, expected 480",
        "ticket labels: 0 in Trengo, expected 480",
        "3 calls not answered 2xx",
        "0 dead letters, expected 60",
        "processor exit codes [1]",
    ]


def test_the_cost_table_compares_each_configuration_with_the_first() -> None:
    more_fields = dict(expected_counts(SMALL, ["custom_fields"]).calls_by_route)
    more_fields[SET_CONTACT_FIELD] += 42
    off_by_some = dataclasses.replace(as_run(1).counts, calls_by_route=more_fields)
    lines = cost_table([as_run(0), as_run(1, off_by_some), as_run(2)]).splitlines()
    assert len(lines) == 2 + 3
    assert lines[2] == (
        "| (1) all off (RudderStack's config) | 420 | 360 | 60 | 300 | 0.714 | +0.000 "
        "| as expected |"
    )
    assert lines[3].endswith(f"| 474 | {474 / 420:.3f} | +{174 / 420:.3f} | **unexpected** |")
    assert lines[4].startswith("| (3) + enableProfiles | 420 | 420 | 0 | 373 |")


def test_the_routes_table_has_a_row_per_route_and_a_column_per_configuration() -> None:
    lines = routes_table([as_run(0), as_run(5)]).splitlines()
    assert lines[0] == "| route | (1) | (6) |"
    assert len(lines) == 2 + len(expected_counts(SMALL, FEATURES).calls_by_route)
    assert f"| `{LIST_LABELS}` | 0 | 1 |" in lines
    assert f"| `{CREATE_TICKET}` | 240 | 240 |" in lines


def test_the_section_lists_the_unexpected() -> None:
    runs = [as_run(number) for number in range(len(CONFIGURATIONS))]
    assert "**unexpected**" not in section(SMALL, runs, "embedded", 60.0, quick=True)
    runs[3] = as_run(3, exit_codes=(0, 137))
    text = section(SMALL, runs, "embedded", 60.0, quick=False)
    assert text.startswith("## Cost of the opt-in features (`python -m bench features`)")
    assert "* (4) + ticket message (note): unexpected: processor exit codes [0, 137]." in text
