"""The site-stream benchmark: its workload's mix, and how a drain is timed and reported."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from bench.siteevents import NO_CALL_MIX, StreamSpec, stream_records
from bench.sitestream import (
    CommitSeen,
    Drain,
    Round,
    Window,
    _goals_text,
    _stream_text,
    measured_window,
)
from bench.workload import DESTINATION
from processor.config import Settings
from processor.pipeline.filters import EventFilter
from processor.pipeline.validate import validate

SETTINGS = Settings(destination={**DESTINATION, "apiToken": "t"})


@pytest.mark.parametrize("call_share", [0.0, 0.1])
def test_the_mix_has_the_shares_asked_for_deterministically(call_share: float) -> None:
    spec = StreamSpec(events=20_000, users=50, call_share=call_share)
    records = list(stream_records(spec))
    assert records == list(stream_records(spec))
    kinds = Counter(kind for _key, _value, kind in records)
    assert kinds["call"] / len(records) == pytest.approx(call_share, abs=0.01)
    no_call = len(records) - kinds["call"]
    for kind, share in NO_CALL_MIX.items():
        assert kinds[kind] / no_call == pytest.approx(share, abs=0.02)
    assert {key for key, _value, _kind in records} <= {f"user-{n:06d}".encode() for n in range(50)}


def test_no_call_events_are_skipped_and_call_events_are_delivered_by_the_processor() -> None:
    event_filter = EventFilter.from_settings(SETTINGS)
    for key, value, kind in stream_records(StreamSpec(events=2_000, call_share=0.1)):
        event = json.loads(value)
        assert key.decode() == event["userId"]
        skip = event_filter(event)
        if kind == "call":
            assert skip is None
            assert not hasattr(validate(event, accept_groups=False), "reason")
        else:
            assert skip is not None
            assert skip.reason == ("unmapped_event" if kind == "unmapped_track" else "message_type")
            assert 1_000 < len(value) < 2_000  # SDK-sized, so parsing costs what it does live


def seen(*points: tuple[float, int]) -> list[CommitSeen]:
    return [CommitSeen(at, committed) for at, committed in points]


def test_a_drain_is_timed_from_the_first_commit_seen_to_the_last_offset_committed() -> None:
    window = measured_window(seen((0.0, 0), (0.5, 0), (1.0, 400), (2.0, 900), (3.0, 1000)), 1000)
    assert window == Window(start=1.0, end=3.0, events=600)
    assert window.seconds == 2.0


@pytest.mark.parametrize(
    "points",
    [
        pytest.param([(0.0, 0), (1.0, 500)], id="never-all-committed"),
        pytest.param([(0.0, 0), (1.0, 0)], id="nothing-committed"),
        pytest.param([(0.0, 0), (1.0, 1000)], id="all-in-one-commit"),
    ],
)
def test_a_drain_that_cannot_be_timed_is_an_error(points: list[tuple[float, int]]) -> None:
    with pytest.raises(ValueError, match="commit"):
        measured_window(seen(*points), 1000)


def drain(flow: str, events_per_second: float, cpu_micros: float) -> Drain:
    events = 10_000
    seconds = events / events_per_second
    window = Window(0.0, seconds, events)
    return Drain(flow, window, events * cpu_micros / 1e6, seconds / 4)  # type: ignore[arg-type]


def test_rounds_report_the_ratio_of_wall_rates_and_of_cpu_per_event() -> None:
    rounds = [
        Round(drain("trengo-processor", 8_000, 20.0), drain("bare loop", 10_000, 10.0)),
        Round(drain("trengo-processor", 9_000, 18.0), drain("bare loop", 20_000, 9.0)),
        Round(drain("trengo-processor", 10_000, 16.0), drain("bare loop", 10_000, 11.0)),
    ]
    assert [round(one.ratio, 2) for one in rounds] == [0.8, 0.45, 1.0]
    lines = _stream_text("no-call", rounds).splitlines()
    assert lines[4] == "| 1 | 8,000 | 10,000 | 0.80 | 20.0 | 10.0 | 2.00 | 50,000 | 0.25 |"
    assert (
        lines[-1] == "| **median** | 9,000 | 10,000 | 0.80 | 18.0 | 10.0 | 2.00 | 55,556 | 0.25 |"
    )
    goals = _goals_text({"no-call": rounds, "mixed": rounds})
    assert "no-call path ≥ 0.8 x the bare loop: met (median ratio 0.80)" in goals
    assert "about 55,556 events/s" in goals
