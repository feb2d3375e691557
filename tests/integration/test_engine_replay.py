"""``dlq replay`` end to end: dead letters go back, a second failure is not replayed again.

All source events share one key, so the processor handles, and dead-letters, them in offset
order: the dead-letter topic's order is known, and so is what each replay reads.
"""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devkit.sandbox.broker import KafkaTarget
from devkit.sandbox.trengo import RunningSandbox
from processor.cli import main
from processor.config import KafkaConfig
from processor.engine.replay import ReplayOptions, replay_dead_letters
from tests.kafka_support import (
    OutgoingRecord,
    Record,
    TopicFactory,
    committed_offsets,
    consume_all,
    produce,
    wait_for_committed_offsets,
)
from tests.processor_support import (
    DEAD_LETTER_UNMAPPED,
    UNLIMITED_RATE,
    ProcessorProcess,
    account,
    end_offsets,
    header,
    identify_record,
    order_record,
    order_subject,
    processor_config,
    ticket_subjects,
)

pytestmark = pytest.mark.integration

KEY = b"one-key"
LATE_USERS = ["late1", "late2", "late3"]  # their contacts are created only after the failure


def keyed(record: OutgoingRecord) -> OutgoingRecord:
    _key, value, headers = record
    return KEY, value, headers


def unmapped_track(name: str) -> OutgoingRecord:
    value = {"type": "track", "event": name, "userId": "x", "context": {"traits": {}}}
    return KEY, json.dumps(value).encode(), [("origin", name.encode())]


# Dead-letter order: decode, deliver, map, deliver, deliver, map.
EVENTS = [
    (KEY, b"{not json", [("origin", b"broken")]),
    keyed(order_record("late1", "late1-1")),
    unmapped_track("Newsletter Opened"),
    keyed(order_record("late2", "late2-1")),
    keyed(order_record("late3", "late3-1")),
    unmapped_track("Coupon Clicked"),
]


def replay(processor: ProcessorProcess, *options: str) -> str:
    """Run ``dlq replay`` with the processor's config; its summary line."""
    done = ProcessorProcess.run_once(
        ["dlq", "replay", "--config", str(processor.config_path), *options]
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_dlq_replay_sends_dead_letters_back_once_with_dry_run_limit_and_stage_filter(
    kafka: KafkaTarget,
    kafka_topic_factory: TopicFactory,
    group_id: str,
    sandbox: RunningSandbox,
    tmp_path: Path,
) -> None:
    topic, dead_letter_topic = kafka_topic_factory(1), kafka_topic_factory(1)
    servers = kafka.bootstrap_servers
    config = processor_config(
        kafka,
        sandbox,
        topic=topic,
        group_id=group_id,
        dead_letter_topic=dead_letter_topic,
        trengo=UNLIMITED_RATE,
        pipeline=DEAD_LETTER_UNMAPPED,
    )

    processor = ProcessorProcess(config, tmp_path)

    def produce_and_wait(records: list[OutgoingRecord]) -> list[Record]:
        produced = produce(servers, topic, records)
        wait_for_committed_offsets(servers, group_id, topic, end_offsets(produced))
        return produced

    with processor:
        originals = produce_and_wait(EVENTS)
        letters = consume_all(servers, dead_letter_topic, min_records=len(EVENTS))
        produce_and_wait([identify_record(user) for user in LATE_USERS])
        assert processor.stop() == 0, processor.log()
    assert [header(letter, "x-error-stage") for letter in letters] == [
        "decode",
        "deliver",
        "map",
        "deliver",
        "deliver",
        "map",
    ]

    # With the processor stopped, nothing is dead-lettered while these replays read.
    assert replay(processor, "--dry-run") == (
        "read 6 dead letters; would replay 6 (decode 1, deliver 3, map 2); "
        "skipped 0 by stage filter, 0 already replayed once (loop guard)"
    )
    assert len(consume_all(servers, topic)) == len(EVENTS) + len(LATE_USERS)
    assert committed_offsets(servers, f"{group_id}.dlq-replay", dead_letter_topic) == {}
    assert replay(processor, "--filter-stage", "deliver", "--limit", "2") == (
        "read 4 dead letters; replayed 2 (deliver 2); "
        "skipped 2 by stage filter, 0 already replayed once (loop guard)"
    )
    assert replay(processor) == (
        "read 2 dead letters; replayed 2 (deliver 1, map 1); "
        "skipped 0 by stage filter, 0 already replayed once (loop guard)"
    )
    replayed = consume_all(servers, topic)[-4:]
    _assert_replayed(replayed, [letters[1], letters[3], letters[4], letters[5]])

    with processor:
        wait_for_committed_offsets(servers, group_id, topic, end_offsets(replayed), timeout=30)
        again = consume_all(servers, dead_letter_topic, min_records=len(EVENTS) + 1)[-1]
        assert (header(again, "x-error-stage"), again.value) == ("map", letters[5].value)
        assert header(again, "x-replayed-at") is not None
        assert replay(processor) == (
            "read 1 dead letters; replayed 0; "
            "skipped 0 by stage filter, 1 already replayed once (loop guard)"
        )
        assert len(consume_all(servers, topic)) == len(EVENTS) + len(LATE_USERS) + 4
        assert processor.stop() == 0, processor.log()

    tickets = ticket_subjects(sandbox)
    assert [tickets[order_subject(f"{user}-1")] for user in LATE_USERS] == [1, 1, 1]
    ledger = account(originals, sandbox, consume_all(servers, dead_letter_topic))
    assert ledger.lost == []


def _assert_replayed(records: list[Record], letters: list[Record]) -> None:
    """Same key, value and original headers as the dead letters; x-replayed-at added."""
    assert [(r.key, r.value) for r in records] == [(d.key, d.value) for d in letters]
    for record, letter in zip(records, letters, strict=True):
        names = [name for name, _value in record.headers]
        assert not [name for name in names if name.startswith("x-error-")]
        assert not [name for name in names if name.startswith("x-original-")]
        original = [(n, v) for n, v in letter.headers if not n.startswith("x-")]
        assert list(record.headers[:-1]) == original
        replayed_at = datetime.fromisoformat(header(record, "x-replayed-at") or "")
        assert abs((datetime.now(UTC) - replayed_at).total_seconds()) < 60


def test_dlq_replay_of_a_topic_that_does_not_exist_ends_at_once(kafka: KafkaTarget) -> None:
    config = KafkaConfig(
        bootstrap_servers=kafka.bootstrap_servers,
        dead_letter_topic=f"never-created-{uuid.uuid4().hex[:8]}",
        settings=dict(kafka.consumer_settings),
    )
    progress = io.StringIO()

    summary = replay_dead_letters(config, ReplayOptions(), progress, assignment_timeout_seconds=5)

    assert summary.read == 0
    assert f"{config.dead_letter_topic} does not exist: nothing to replay" in progress.getvalue()


def test_dlq_replay_commits_only_what_the_broker_acknowledged_and_fails_loudly(
    kafka: KafkaTarget,
    kafka_topic_factory: TopicFactory,
    group_id: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic, dead_letter_topic = kafka_topic_factory(1), kafka_topic_factory(1)
    servers = kafka.bootstrap_servers
    stage = [("x-error-stage", b"deliver"), ("x-error-reason", b"HTTP 503")]
    small, too_large = b'{"type": "identify"}', b'{"p": "' + b"x" * 3000 + b'"}'
    produce(servers, dead_letter_topic, [(KEY, small, stage), (KEY, too_large, stage)] * 2)
    # The replay producer refuses records over 2,000 bytes, as a broker with a smaller
    # message.max.bytes than the dead-letter topic's would.
    settings = {**kafka.consumer_settings, "message.max.bytes": 2000}
    config_path = tmp_path / "replay.yaml"
    config_path.write_text(
        json.dumps(
            {
                "kafka": {
                    "bootstrap_servers": servers,
                    "topic": topic,
                    "group_id": group_id,
                    "dead_letter_topic": dead_letter_topic,
                    "settings": settings,
                },
                "destination": {"apiToken": "t", "channelId": "1"},
            }
        ),
        encoding="utf-8",
    )

    exit_status = main(["dlq", "replay", "--config", str(config_path)])

    assert exit_status == 1
    summary = capsys.readouterr().out.strip()
    assert "replayed 1 (deliver 1); FAILED 1 (not committed: replay again)" in summary
    committed = committed_offsets(servers, f"{group_id}.dlq-replay", dead_letter_topic)
    assert committed == {0: 1}  # up to the refused record, which the next replay reads again
    assert [record.value for record in consume_all(servers, topic)] == [small]
