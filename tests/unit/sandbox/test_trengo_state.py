"""The sandbox state: runtime fault knobs, transient faults, the account setup from the options,
the snapshot and what a reset keeps."""

from __future__ import annotations

import pydantic
import pytest

from devkit.sandbox._trengo_model import (
    DEFAULT_CHANNELS,
    DEFAULT_CUSTOM_FIELDS,
    DEFAULT_LABELS,
    FIRST_CONTACT_ID,
    FIRST_LABEL_ID,
    FIRST_TICKET_ID,
    JSONObject,
    JSONValue,
    SandboxCustomField,
)
from devkit.sandbox._trengo_options import FaultKnobs, ManualClock, SandboxOptions
from devkit.sandbox._trengo_state import SandboxState

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


@pytest.mark.parametrize(
    ("custom_fields", "labels", "error"),
    [
        (
            (
                SandboxCustomField(id=1, title="A", type="CONTACT"),
                SandboxCustomField(id=1, title="B", type="PROFILE"),
            ),
            DEFAULT_LABELS,
            "custom field ids must be unique",
        ),
        (DEFAULT_CUSTOM_FIELDS, ("vip", "VIP"), "label names must be unique"),
        (DEFAULT_CUSTOM_FIELDS, ("vip", " "), "label names must not be empty"),
    ],
)
def test_options_refuse_ambiguous_custom_fields_and_labels(
    custom_fields: tuple[SandboxCustomField, ...], labels: tuple[str, ...], error: str
) -> None:
    with pytest.raises(pydantic.ValidationError, match=error):
        SandboxOptions(custom_fields=custom_fields, labels=labels)


@pytest.mark.parametrize(
    "custom_field",
    [{"id": 1, "title": "A", "type": "ticket"}, {"id": 0, "title": "A", "type": "CONTACT"}],
)
def test_options_refuse_bad_custom_fields(custom_field: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        SandboxOptions.model_validate({"custom_fields": [custom_field]})


def test_options_set_the_account_setup(clock: ManualClock) -> None:
    fields = (SandboxCustomField(id=7, title="Tier", type="PROFILE"),)

    state = SandboxState(
        SandboxOptions(custom_fields=fields, labels=("a", "b")), clock.as_sandbox_clock()
    )
    snapshot = state.snapshot()

    assert snapshot["custom_fields"] == [
        {"id": 7, "title": "Tier", "type": "PROFILE", "field_type": "TEXT"}
    ]
    assert list(state.data.profile_fields) == [7]
    assert state.data.contact_fields == {}
    assert [label.name for label in state.data.labels.values()] == ["a", "b"]


def fill(state: SandboxState) -> None:
    """One contact in one profile, one ticket with a label and a note."""
    data = state.data
    contact, _ = data.find_or_create_contact(DEFAULT_CHANNELS[0], "a@b.c", "A", "then")
    contact.set_custom_field(DEFAULT_CUSTOM_FIELDS[0], "pro")
    profile = state.profiles.create("Acme", "then")
    profile.attach_contact(contact)
    ticket = data.create_ticket(DEFAULT_CHANNELS[0], contact, "Hi", "then")
    ticket.add_label(data.labels[FIRST_LABEL_ID], "then")
    data.post_message(ticket, "note", internal_note=True, posted_at="then")


def as_list(value: JSONValue) -> list[JSONObject]:
    assert isinstance(value, list)
    return [item for item in value if isinstance(item, dict)]


def test_snapshot_shows_profiles_labels_and_messages(state: SandboxState) -> None:
    fill(state)

    snapshot = state.snapshot()

    assert snapshot["counts"] == {
        "contacts": 1,
        "tickets": 1,
        "messages": 1,
        "profiles": 1,
        "requests": 0,
    }
    assert snapshot["contacts"] == state.contacts_json()
    assert snapshot["tickets"] == state.tickets_json()
    assert snapshot["profiles"] == state.profiles_json()
    assert state.contacts_json()[0]["custom_field_data"] == {"Plan": "pro"}
    ticket = state.tickets_json()[0]
    assert (ticket["labels"], ticket["messages"]) == (
        [state.data.labels[FIRST_LABEL_ID].to_json()],
        [state.data.tickets[FIRST_TICKET_ID].messages[0].to_json()],
    )
    assert state.profiles_json()[0]["contacts"] == [
        {"id": FIRST_CONTACT_ID, "name": "A", "identifier": "a@b.c"}
    ]
    assert [label["name"] for label in as_list(snapshot["labels"])] == list(DEFAULT_LABELS)


def test_reset_forgets_profiles_and_messages(state: SandboxState) -> None:
    fill(state)

    state.reset()

    assert state.profiles.by_id == {}
    assert state.data.message_count == 0
    assert state.snapshot()["counts"] == {
        "contacts": 0,
        "tickets": 0,
        "messages": 0,
        "profiles": 0,
        "requests": 0,
    }
