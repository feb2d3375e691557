"""The sandbox state: runtime fault knobs, transient faults and what a reset keeps."""

from __future__ import annotations

import pydantic
import pytest

from processor.sandbox._trengo_model import DEFAULT_CHANNELS
from processor.sandbox._trengo_options import FaultKnobs, ManualClock, SandboxOptions
from processor.sandbox._trengo_state import SandboxState

START_OPTIONS = SandboxOptions(requests_per_minute=10, outage_seconds=5, storm_429_requests=2)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def state(clock: ManualClock) -> SandboxState:
    return SandboxState(START_OPTIONS, clock.as_sandbox_clock())


def test_start_options_start_their_transient_faults(
    clock: ManualClock, state: SandboxState
) -> None:
    assert state.outage_active()
    assert [state.take_storm_request() for _ in range(3)] == [True, True, False]
    clock.advance(5)
    assert not state.outage_active()


def test_naming_a_transient_knob_restarts_it(clock: ManualClock, state: SandboxState) -> None:
    clock.advance(5)
    state.apply_faults({"latency_ms": 3})
    assert not state.outage_active()  # not named: no new outage

    state.apply_faults({"outage_seconds": 1, "storm_429_requests": 1})

    assert state.outage_active()
    assert state.take_storm_request()
    assert state.knobs.latency_ms == 3


@pytest.mark.parametrize(
    "update",
    [
        {"error_rate": 1.5},
        {"latency_ms": -1},
        {"requests_per_minute": -5},
        {"storm_retry_after_seconds": 0},
        {"no_such_knob": 1},
        {"tokens": "not-a-list"},
    ],
)
def test_invalid_updates_are_refused_and_change_nothing(
    state: SandboxState, update: dict[str, object]
) -> None:
    before = state.knobs

    with pytest.raises(pydantic.ValidationError):
        state.apply_faults(update)

    assert state.knobs is before


@pytest.mark.parametrize(("requests_per_minute", "rate_limit"), [(0, None), (None, None), (7, 7)])
def test_zero_or_none_switches_the_rate_limit_off(
    requests_per_minute: int | None, rate_limit: int | None
) -> None:
    assert FaultKnobs(requests_per_minute=requests_per_minute).rate_limit == rate_limit


def test_reset_forgets_data_and_transient_faults_but_keeps_knobs(state: SandboxState) -> None:
    state.apply_faults({"requests_per_minute": 3, "error_rate": 0.5})
    state.data.find_or_create_contact(DEFAULT_CHANNELS[0], "a@b.c", None, "now")
    first_draws = [state.rng.random() for _ in range(3)]

    state.reset()

    assert state.data.contacts == {}
    assert not state.outage_active()
    assert not state.take_storm_request()
    assert (state.knobs.requests_per_minute, state.knobs.error_rate) == (3, 0.5)
    assert [state.rng.random() for _ in range(3)] == first_draws


def test_reset_can_restore_the_start_options(state: SandboxState) -> None:
    state.apply_faults({"requests_per_minute": 3, "tokens": ["other"]})

    state.reset(restore_config=True)

    assert state.knobs == START_OPTIONS.fault_knobs()
    assert state.outage_active()


def test_options_refuse_duplicate_channel_ids() -> None:
    with pytest.raises(pydantic.ValidationError, match="unique"):
        SandboxOptions(channels=(DEFAULT_CHANNELS[0], DEFAULT_CHANNELS[0]))


def test_snapshot_reports_config_and_transient_faults(
    clock: ManualClock, state: SandboxState
) -> None:
    clock.advance(2)

    config = state.snapshot()["config"]

    assert isinstance(config, dict)
    assert config["requests_per_minute"] == 10
    assert config["outage_remaining_seconds"] == 3
    assert config["storm_429_remaining"] == 2
