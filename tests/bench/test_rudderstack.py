"""Calls of RudderStack's flow, computed from events."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench.rudderstack import rudderstack_calls
from bench.workload import DESTINATION, WorkloadSpec, generate

CONTACT_ID = {"externalId": [{"type": "trengoContactId", "id": "42"}]}


def value(**document: Any) -> bytes:
    return json.dumps(document).encode()


IDENTIFY = value(type="identify", userId="u", traits={"email": "a@x.test", "name": "A"})
TRACK = value(type="track", event="Order Completed", context={"traits": {"email": "a@x.test"}})


@pytest.mark.parametrize(
    ("values", "destination_changes", "calls"),
    [
        ([IDENTIFY], {}, 2),  # search + create or update
        ([IDENTIFY, IDENTIFY], {}, 4),  # no cache, no skip of an unchanged name
        ([IDENTIFY, TRACK], {}, 4),  # search + ticket
        ([TRACK], {}, 1),  # the search finds nobody: no ticket
        ([IDENTIFY], {"enableDedup": False}, 1),  # create only
        ([IDENTIFY], {"enableDedup": None}, 1),  # RudderStack: a missing flag is off
        ([value(type="Identify", traits={"email": "a@x.test"}, context=CONTACT_ID)], {}, 1),
        ([value(type="track", event="Order Completed", context=CONTACT_ID)], {}, 1),
        ([value(type="identify", traits={"name": "no identifier"})], {}, 1),  # term=null
        ([value(type="identify", traits={})], {"enableDedup": False}, 0),
        ([IDENTIFY, value(type="track", event="Unmapped", traits={"email": "a@x.test"})], {}, 2),
        ([value(type="page", name="Home"), b"{not json", value(type="alias")], {}, 0),
        ([IDENTIFY, TRACK], {"channelId": ""}, 0),
    ],
)
def test_calls_per_flow(
    values: list[bytes], destination_changes: dict[str, Any], calls: int
) -> None:
    destination = {**DESTINATION, **destination_changes}
    assert rudderstack_calls(values, destination) == calls


def test_a_phone_destination_identifies_by_phone() -> None:
    destination = {**DESTINATION, "channelIdentifier": "phone"}
    by_phone = value(type="identify", traits={"phone": "+31612345678"})
    track = value(type="track", event="Order Completed", properties={"phone": "+31612345678"})
    assert rudderstack_calls([by_phone, track], destination) == 4
    assert rudderstack_calls([IDENTIFY, TRACK], destination) == 2  # no phone: nobody found


def test_the_bench_workload_costs_two_calls_per_event() -> None:
    workload = generate(WorkloadSpec(users=20, events=200))
    assert rudderstack_calls((event.value for event in workload.events), DESTINATION) == 400
