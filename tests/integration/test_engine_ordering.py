"""Per-key order under concurrency: each user's requests reach Trengo in offset order.

The sandbox fails 30 % of requests with 500/503, so events retry while other users' events
overtake them; a user's later event must still never go out before an earlier one succeeded.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

from devkit.sandbox.broker import KafkaTarget
from devkit.sandbox.trengo import RecordedRequest, RunningSandbox, SandboxOptions
from tests.kafka_support import TopicFactory, consume_all, produce, wait_for_committed_offsets
from tests.processor_support import (
    UNLIMITED_RATE,
    ProcessorProcess,
    account,
    end_offsets,
    identify_record,
    order_record,
    processor_config,
)

pytestmark = pytest.mark.integration

USERS = [f"user{number}" for number in range(20)]
ORDERS_PER_USER = 25
SUBJECT = re.compile(r"Order (user\d+)-(\d+) completed")


@pytest.fixture
def sandbox_options() -> SandboxOptions:
    return SandboxOptions(requests_per_minute=None, error_rate=0.3, latency_ms=5, seed=7)


def test_each_users_requests_arrive_in_offset_order_while_users_run_concurrently(
    kafka: KafkaTarget,
    kafka_topic_factory: TopicFactory,
    group_id: str,
    sandbox: RunningSandbox,
    tmp_path: Path,
) -> None:
    topic, dead_letter_topic = kafka_topic_factory(2), kafka_topic_factory(1)
    events = [identify_record(user) for user in USERS] + [
        order_record(user, f"{user}-{number}")
        for number in range(ORDERS_PER_USER)
        for user in USERS
    ]
    produced = produce(kafka.bootstrap_servers, topic, events)
    config = processor_config(
        kafka,
        sandbox,
        topic=topic,
        group_id=group_id,
        dead_letter_topic=dead_letter_topic,
        trengo=UNLIMITED_RATE,
        delivery={"max_in_flight": 32},
    )

    with ProcessorProcess(config, tmp_path) as processor:
        wait_for_committed_offsets(
            kafka.bootstrap_servers, group_id, topic, end_offsets(produced), timeout=60
        )
        assert processor.stop() == 0, processor.log()

    requests = sandbox.requests()
    assert any(request.status >= 500 for request in requests)  # retries did happen
    by_user = _requests_by_user(requests)
    for user in USERS:
        contact_calls = [r for r in by_user[user] if not r.route.endswith("/tickets")]
        orders = [r for r in by_user[user] if r.route.endswith("/tickets")]
        assert contact_calls[-1].status in (200, 201), user  # the identify, retried till done
        assert contact_calls[-1].index < orders[0].index, user
        attempted = [_order_number(request) for request in orders]
        assert attempted == sorted(attempted), f"{user} out of order: {attempted}"
        succeeded = [_order_number(request) for request in orders if request.status == 201]
        assert succeeded == list(range(ORDERS_PER_USER)), user
    assert _most_users_at_once(by_user) >= len(USERS) // 2
    ledger = account(produced, sandbox, consume_all(kafka.bootstrap_servers, dead_letter_topic))
    assert (ledger.lost, ledger.dead_lettered, ledger.duplicates) == ([], 0, 0)


def _requests_by_user(requests: list[RecordedRequest]) -> dict[str, list[RecordedRequest]]:
    """Each user's requests in arrival order, from the identifier or the ticket subject."""
    by_user: dict[str, list[RecordedRequest]] = defaultdict(list)
    for request in requests:
        body = request.json_body if isinstance(request.json_body, dict) else {}
        identifier = str(body.get("identifier") or request.query.get("term", ""))
        matched = SUBJECT.fullmatch(str(body.get("subject", "")))
        user = matched.group(1) if matched else identifier.partition("@")[0]
        by_user[user].append(request)
    return by_user


def _order_number(request: RecordedRequest) -> int:
    assert isinstance(request.json_body, dict)
    matched = SUBJECT.fullmatch(str(request.json_body["subject"]))
    assert matched is not None
    return int(matched.group(2))


def _most_users_at_once(by_user: dict[str, list[RecordedRequest]]) -> int:
    """The most users whose first-to-last request spans overlap at one instant."""
    spans = [(requests[0].at, requests[-1].at) for requests in by_user.values()]
    return max(sum(1 for start, end in spans if start <= instant <= end) for instant, _ in spans)
