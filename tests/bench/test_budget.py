"""The budget measure: rate windows rebuilt from arrivals, and the share used while backlogged."""

from __future__ import annotations

import json

import pytest

from bench.budget import Arrival, budget_use, final_names
from bench.workload import WorkloadSpec, generate


def evenly(start: float, end: float, count: int, refused: bool = False) -> list[Arrival]:
    step = (end - start) / count
    return [Arrival(start + number * step, refused) for number in range(count)]


def test_windows_open_at_the_first_call_after_the_previous_one_ended() -> None:
    arrivals = [*evenly(0, 59.9, 100), *evenly(61, 120, 100), *evenly(121.5, 125, 10)]
    use = budget_use(arrivals, limit=100)
    assert use.window_calls == (100, 100, 10)
    assert use.backlogged_seconds == pytest.approx(121.5)  # idle seconds between windows count
    assert use.backlogged_calls == 200
    assert use.share == pytest.approx(200 / (100 * 121.5 / 60))


def test_refused_calls_are_not_budget_used() -> None:
    arrivals = [*evenly(0, 50, 90), *evenly(50, 59, 10, refused=True), Arrival(60, False)]
    use = budget_use(arrivals, limit=100)
    assert use.window_calls == (90, 1)
    assert use.share == pytest.approx(0.9)


def test_arrival_order_does_not_matter() -> None:
    arrivals = [*evenly(0, 59, 50), *evenly(60, 70, 5)]
    assert budget_use(arrivals[::-1], limit=50) == budget_use(arrivals, limit=50)


@pytest.mark.parametrize("arrivals", [[], evenly(0, 50, 10)])
def test_without_a_full_window_there_is_no_share(arrivals: list[Arrival]) -> None:
    assert budget_use(arrivals, limit=100).share is None


def test_final_names_are_the_names_of_the_last_identifies() -> None:
    workload = generate(WorkloadSpec(users=30, events=300, rename_share=0.5))
    expected: dict[str, str] = {}
    for event in reversed(workload.events):
        traits = json.loads(event.value).get("traits", {})
        if event.kind != "track":
            expected.setdefault(traits["email"], traits["name"])
    first_names = {
        json.loads(event.value)["traits"]["name"]
        for event in workload.events
        if event.kind == "first_identify"
    }
    names = final_names(workload)
    assert names == expected
    assert len(names) == 30
    assert set(names.values()) != first_names  # renames happened, so the check has teeth
