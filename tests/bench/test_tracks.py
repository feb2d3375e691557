"""The tracks workload: deterministic, one known contact per user, subjects naming events."""

from __future__ import annotations

import json

from bench.tracks import SUBJECT_FORMAT, TrackSpec, email, emails, records, sequence_of
from bench.workload import DESTINATION
from processor.config import DestinationConfig
from processor.pipeline.templates import EventTemplates


def test_records_are_deterministic_and_keyed_by_user() -> None:
    spec = TrackSpec(events=50, users=7)
    first, again = list(records(spec)), list(records(spec))
    assert first == again
    assert len(first) == 50
    for key, value in first:
        event = json.loads(value)
        assert key.decode() == event["userId"]
        assert event["context"]["traits"]["email"] in emails(spec)
    assert len({key for key, _ in first}) == 7


def test_the_subject_format_is_what_the_destination_template_renders() -> None:
    templates = EventTemplates(DestinationConfig.model_validate(DESTINATION))
    for sequence, value in enumerate(value for _, value in records(TrackSpec(20, users=3))):
        event = json.loads(value)
        subject = templates.render(event["event"], event["properties"])
        assert subject == SUBJECT_FORMAT.format(**event["properties"])
        assert sequence_of(subject or "") == sequence


def test_subjects_of_other_events_name_no_sequence() -> None:
    assert sequence_of("Order x completed") is None
    assert sequence_of("Review of SKU-1") is None
    assert email(3) == "user000003@bench.example"
