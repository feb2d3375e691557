"""The processor as users run it: a subprocess, a real broker, the sandbox over loopback HTTP."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from devkit.sandbox.broker import KafkaTarget
from devkit.sandbox.trengo import RunningSandbox, SandboxOptions
from tests.kafka_support import (
    Record,
    TopicFactory,
    consume_all,
    produce,
    wait_for_committed_offsets,
)
from tests.processor_support import (
    DEAD_LETTER_UNMAPPED,
    EMAIL_CHANNEL,
    PHONE_CHANNEL,
    ProcessorProcess,
    processor_config,
    wait_until,
)
from tests.promtool import run_promtool

pytestmark = pytest.mark.integration

CHANNEL = str(EMAIL_CHANNEL)
POISON = b"\xff\xfe not json"


def event(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def identify(user: str, email: str, first: str, last: str) -> tuple[bytes, bytes, list[Any]]:
    traits = {"email": email, "firstName": first, "lastName": last}
    return user.encode(), event(type="identify", userId=user, traits=traits), []


def track(user: str, email: str, name: str, **properties: Any) -> tuple[bytes, bytes, list[Any]]:
    value = event(
        type="track",
        event=name,
        userId=user,
        properties=properties,
        context={"traits": {"email": email}},
    )
    return user.encode(), value, [("source", b"web")]


EVENTS = [
    identify("alice", "alice@example.com", "Alice", "Smith"),
    track("alice", "alice@example.com", "Order Completed", order_id="A-1"),
    identify("alice", "alice@example.com", "Alice", "Jones"),
    identify("bob", "bob@example.com", "Bob", "Stone"),
    track("bob", "bob@example.com", "Product Reviewed", rating=5),
    track("carol", "carol@example.com", "Order Completed", order_id="C-9"),
    track("alice", "alice@example.com", "Stress test4"),
    (b"mallory", POISON, []),
]


def contact_id_of(sandbox: RunningSandbox, email: str) -> int:
    contacts = sandbox.snapshot()["contacts"]
    assert isinstance(contacts, list)
    ids = [c["id"] for c in contacts if isinstance(c, dict) and c.get("email") == email]
    assert len(ids) == 1, f"expected one contact for {email}, got {ids}"
    contact_id = ids[0]
    assert isinstance(contact_id, int)
    return contact_id


def calls(sandbox: RunningSandbox) -> list[tuple[str, str, Any]]:
    return [
        (request.method, request.path + _query(request.query), request.json_body)
        for request in sandbox.requests()
    ]


def _query(query: dict[str, str]) -> str:
    return "?" + "&".join(f"{k}={v}" for k, v in sorted(query.items())) if query else ""


def test_events_reach_trengo_and_offsets_commit_only_after_trengo_answered(
    kafka: KafkaTarget,
    kafka_topic_factory: TopicFactory,
    group_id: str,
    sandbox: RunningSandbox,
    tmp_path: Path,
) -> None:
    topic, dead_letter_topic = kafka_topic_factory(2), kafka_topic_factory(1)
    produced = produce(kafka.bootstrap_servers, topic, EVENTS)
    config = processor_config(
        kafka,
        sandbox,
        topic=topic,
        group_id=group_id,
        dead_letter_topic=dead_letter_topic,
        pipeline=DEAD_LETTER_UNMAPPED,
    )
    end_offsets = {p: max(r.offset for r in produced if r.partition == p) + 1 for p in (0, 1)}
    end_offsets = {p: o for p, o in end_offsets.items() if o > 0}

    started_at = time.time()
    with ProcessorProcess(config, tmp_path) as processor:
        wait_for_committed_offsets(
            kafka.bootstrap_servers, group_id, topic, end_offsets, timeout=60
        )
        _assert_progress_metrics(processor, started_at)
        assert processor.stop() == 0, processor.log()

    alice = contact_id_of(sandbox, "alice@example.com")
    bob = contact_id_of(sandbox, "bob@example.com")
    received = calls(sandbox)
    assert [c for c in received if _about(c, "alice", alice)] == [
        (
            "POST",
            f"/api/v2/channels/{CHANNEL}/contacts",
            {"name": "Alice Smith", "identifier": "alice@example.com", "channel_id": CHANNEL},
        ),
        (
            "POST",
            "/api/v2/tickets",
            {"contact_id": alice, "channel_id": CHANNEL, "subject": "Order A-1 completed"},
        ),
        ("PUT", f"/api/v2/contacts/{alice}", {"name": "Alice Jones"}),
    ]
    assert [c for c in received if _about(c, "bob", bob)] == [
        (
            "POST",
            f"/api/v2/channels/{CHANNEL}/contacts",
            {"name": "Bob Stone", "identifier": "bob@example.com", "channel_id": CHANNEL},
        ),
        (
            "POST",
            "/api/v2/tickets",
            {
                "contact_id": bob,
                "channel_id": CHANNEL,
                "subject": "Product Reviewed from our store",
            },
        ),
    ]
    assert [c for c in received if "carol" in c[1]] == [
        ("GET", "/api/v2/contacts?page=1&term=carol@example.com", None)
    ]
    assert len(received) == 6  # nothing else: no search before a create, no ticket for carol

    dead_letters = consume_all(kafka.bootstrap_servers, dead_letter_topic, min_records=3)
    by_stage = {_header(letter, "x-error-stage"): letter for letter in dead_letters}
    assert set(by_stage) == {"decode", "map", "deliver"}
    assert _header(by_stage["map"], "x-error-reason") == (
        "Stress test4 is not present in Event-Map template keys, aborting event"
    )
    assert _header(by_stage["deliver"], "x-error-reason") == (
        "No contact found for term:carol@example.com track event failed"
    )
    _assert_points_back_to_original(by_stage["decode"], produced, topic)
    _assert_points_back_to_original(by_stage["deliver"], produced, topic)


def _assert_progress_metrics(processor: ProcessorProcess, started_at: float) -> None:
    """Lag, last commit and latency as an on-call engineer reads them, from a real scrape."""
    lag = "trengo_processor_consumer_lag"
    wait_until(
        lambda: f'{lag}{{partition="1"}}' in processor.http_get("/metrics")[1],
        timeout=20,
        what="consumer lag to be reported (refreshed every 10 s)",
    )
    assert processor.metric(lag) == 0
    assert processor.metric("trengo_processor_last_commit_timestamp_seconds") >= started_at
    assert processor.metric("trengo_processor_event_delivery_latency_seconds_count") == 5
    assert processor.metric("trengo_processor_events_total", outcome="dead_lettered") == 3
    assert processor.metric("trengo_processor_trengo_requests_total") == 6
    scrape = processor.http_get("/metrics")[1]
    checked = run_promtool("check", "metrics", stdin=scrape)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _about(call: tuple[str, str, Any], name: str, contact_id: int) -> bool:
    _method, path, body = call
    text = f"{path} {json.dumps(body)}"
    return name in text or str(contact_id) in text


def _header(record: Record, name: str) -> str | None:
    values = [value for key, value in record.headers if key == name]
    assert len(values) == 1, f"{name}: {values}"
    return None if values[0] is None else values[0].decode()


def _assert_points_back_to_original(letter: Record, produced: list[Record], topic: str) -> None:
    assert _header(letter, "x-original-topic") == topic
    partition = int(_header(letter, "x-original-partition") or -1)
    offset = int(_header(letter, "x-original-offset") or -1)
    original = next(r for r in produced if (r.partition, r.offset) == (partition, offset))
    assert (letter.key, letter.value) == (original.key, original.value)
    assert [h for h in letter.headers if not h[0].startswith("x-")] == list(original.headers)
    assert int(_header(letter, "x-attempts") or 0) >= 1


def test_a_bad_config_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("destination: {channelIdentifier: fax, apiToken: t}\n", encoding="utf-8")
    process = ProcessorProcess.run_once(["run", "--config", str(config)])
    assert process.returncode == 2
    assert process.stdout == ""
    lines = process.stderr.strip().splitlines()
    assert lines == [
        "config error: destination.channelId: Field required; "
        "destination.channelIdentifier: Input should be 'email' or 'phone'"
    ]


def test_a_phone_channel_searches_first_and_sends_tickets_without_subject(
    kafka: KafkaTarget,
    kafka_topic_factory: TopicFactory,
    group_id: str,
    sandbox: RunningSandbox,
    tmp_path: Path,
) -> None:
    topic, dead_letter_topic = kafka_topic_factory(1), kafka_topic_factory(1)
    phone = "+31612345678"
    produced = produce(
        kafka.bootstrap_servers,
        topic,
        [
            (
                b"dave",
                event(type="identify", userId="dave", traits={"phone": phone, "name": "Dave"}),
                [],
            ),
            (
                b"dave",
                event(
                    type="track",
                    event="Order Completed",
                    userId="dave",
                    properties={"order_id": "D-1"},
                    context={"traits": {"phone": phone}},
                ),
                [],
            ),
        ],
    )
    config = processor_config(
        kafka,
        sandbox,
        topic=topic,
        group_id=group_id,
        dead_letter_topic=dead_letter_topic,
        destination={"channelId": str(PHONE_CHANNEL), "channelIdentifier": "phone"},
    )
    with ProcessorProcess(config, tmp_path) as processor:
        wait_for_committed_offsets(
            kafka.bootstrap_servers, group_id, topic, {0: len(produced)}, timeout=60
        )
        assert processor.stop() == 0, processor.log()

    channel = str(PHONE_CHANNEL)
    dave = contact_id_of_phone(sandbox, phone)
    assert calls(sandbox) == [
        ("GET", f"/api/v2/contacts?page=1&term={phone}", None),
        (
            "POST",
            f"/api/v2/channels/{channel}/contacts",
            {"name": "Dave", "identifier": phone, "channel_id": channel},
        ),
        ("POST", "/api/v2/tickets", {"contact_id": dave, "channel_id": channel}),
    ]


def contact_id_of_phone(sandbox: RunningSandbox, phone: str) -> int:
    contacts = sandbox.snapshot()["contacts"]
    assert isinstance(contacts, list)
    ids = [c["id"] for c in contacts if isinstance(c, dict) and c.get("phone") == phone]
    assert len(ids) == 1 and isinstance(ids[0], int), ids
    return ids[0]


def test_the_api_token_never_appears_in_logs_metrics_or_dead_letters(
    kafka: KafkaTarget,
    kafka_topic_factory: TopicFactory,
    group_id: str,
    tmp_path: Path,
) -> None:
    token = "tok-Secret-4e1d9c"
    topic, dead_letter_topic = kafka_topic_factory(1), kafka_topic_factory(1)
    options = SandboxOptions(requests_per_minute=None, tokens=(token,))
    with RunningSandbox(options) as sandbox:
        produce(kafka.bootstrap_servers, topic, EVENTS)
        port = free_port()
        config = processor_config(
            kafka,
            sandbox,
            topic=topic,
            group_id=group_id,
            dead_letter_topic=dead_letter_topic,
            pipeline=DEAD_LETTER_UNMAPPED,
        )
        config["server"]["port"] = port
        config["log"]["level"] = "DEBUG"
        with ProcessorProcess(config, tmp_path) as processor:
            consume_all(kafka.bootstrap_servers, dead_letter_topic, min_records=3, timeout=60)
            sandbox.set_faults(tokens=("rotated",))  # the token is revoked: 401s, halted
            produce(
                kafka.bootstrap_servers, topic, [identify("erin", "erin@example.com", "E", "F")]
            )
            metrics_text = _wait_for_halt(port)
            assert processor.stop() == 0, processor.log()
        log = processor.log()
    assert "destination halted" in log
    dead_letters = consume_all(kafka.bootstrap_servers, dead_letter_topic, min_records=3)
    everything = [log, metrics_text, *(repr(letter) for letter in dead_letters)]
    assert all(token not in text for text in everything)


def _wait_for_halt(port: int) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        except httpx.HTTPError:
            text = ""
        if "trengo_processor_destination_up 0.0" in text:
            return text
        time.sleep(0.2)
    raise AssertionError("the processor did not halt on 401")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
