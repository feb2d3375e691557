"""The seeded workload: counts, per-user order, renames, determinism."""

from __future__ import annotations

import json

import pytest

from bench.workload import DESTINATION, MAPPED_EVENTS, WorkloadSpec, generate

SMALL = WorkloadSpec(users=50, events=600, identify_share=0.2, rename_share=0.1, seed=3)


def test_counts_follow_the_spec() -> None:
    workload = generate(SMALL)
    assert len(workload.events) == 600
    assert workload.count("first_identify") == 50
    assert workload.count("first_identify", "repeat_identify", "rename") == 120
    assert workload.count("rename") == 12
    assert workload.count("track") == 480


def test_every_users_first_event_is_an_identify_and_the_key_is_the_user_id() -> None:
    seen: set[bytes] = set()
    for event in generate(SMALL).events:
        document = json.loads(event.value)
        assert event.key == document["userId"].encode()
        if event.key not in seen:
            assert event.kind == "first_identify"
            seen.add(event.key)
    assert len(seen) == 50


def test_renames_change_the_name_and_repeats_keep_it() -> None:
    names: dict[str, str] = {}
    for event in generate(SMALL).events:
        document = json.loads(event.value)
        if event.kind == "track":
            assert document["event"] in MAPPED_EVENTS
            continue
        user, name = document["userId"], document["traits"]["name"]
        if event.kind == "rename":
            assert name != names[user]
        elif event.kind == "repeat_identify":
            assert name == names[user]
        names[user] = name


def test_tracks_are_mapped_by_the_destination() -> None:
    mapped = {mapping["from"] for mapping in DESTINATION["eventTemplateMap"]}
    assert set(MAPPED_EVENTS) == mapped


def test_the_same_spec_gives_the_same_bytes_and_another_seed_does_not() -> None:
    assert generate(SMALL) == generate(SMALL)
    other = generate(WorkloadSpec(users=50, events=600, seed=4))
    assert other.events != generate(SMALL).events


@pytest.mark.parametrize(
    "spec",
    [
        WorkloadSpec(users=100, events=400, identify_share=0.2),  # 80 identifies < 100 users
        WorkloadSpec(users=100, events=500, identify_share=0.2, rename_share=0.5),
    ],
)
def test_impossible_shares_are_refused(spec: WorkloadSpec) -> None:
    with pytest.raises(ValueError):
        generate(spec)
