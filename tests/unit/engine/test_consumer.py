"""The poll thread: per-partition backpressure, pausing on assign, commits on revoke and close.

A scripted fake consumer runs on the real poll thread; it ignores pausing a partition that is
not assigned yet, as librdkafka does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from processor import metrics
from processor.config import KafkaConfig
from processor.engine import offsetmap
from processor.engine.consumer import (
    AWAITING_COMMIT_POLL_TIMEOUT_SECONDS,
    POLL_TIMEOUT_SECONDS,
    Batch,
    PollLoop,
    PollSettings,
    consumer_config,
)
from processor.engine.offsets import OffsetTracker, PartitionKey
from tests.unit.engine.fakes import TOPIC, FakeConsumer, done_future

HIGH_WATER_BYTES = 10_000
COMMIT_AFTER_EVENTS = 50


class QuietHealth:
    def poll_ticked(self) -> None: ...
    def set_assigned(self, joined: bool) -> None: ...
    def broker_answered(self) -> None: ...


@dataclass
class Harness:
    consumer: FakeConsumer
    tracker: OffsetTracker
    poll: PollLoop
    batches: list[Batch]
    halted: list[bool]
    drained: list[Sequence[PartitionKey]] = field(default_factory=list)

    def mark_done(self, partition: int, offsets: range) -> None:
        for _record, ticket in [pair for batch in self.batches for pair in batch]:
            if ticket.partition == partition and ticket.offset in offsets:
                self.tracker.mark_done(ticket)


def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


async def settled(consumer: FakeConsumer) -> None:
    """Wait until the poll loop ran a whole iteration (commit check included) after now: the
    second step is taken only after the first one's iteration ended."""
    consumer.steps.put(lambda _c: [])
    consumer.steps.put(lambda _c: [])
    await asyncio.to_thread(until, consumer.steps.empty)


def paused(*partitions: int) -> set[tuple[str, int]]:
    return {(TOPIC, partition) for partition in partitions}


def started_poll(consumer: FakeConsumer) -> Harness:
    """A running poll loop over ``consumer`` with a fresh tracker (one processor)."""
    tracker = OffsetTracker()
    batches: list[Batch] = []
    halted = [False]
    drained: list[Sequence[PartitionKey]] = []

    def drain(keys: Sequence[PartitionKey], _timeout: float) -> Future[None]:
        drained.append(keys)
        return done_future()

    poll = PollLoop(
        consumer=consumer,  # type: ignore[arg-type]
        topic=TOPIC,
        tracker=tracker,
        loop=asyncio.get_running_loop(),
        on_records=batches.append,
        drain=drain,
        is_halted=lambda: halted[0],
        health=QuietHealth(),
        settings=PollSettings(
            high_water=100,
            high_water_bytes=HIGH_WATER_BYTES,
            commit_interval_seconds=3600,
            commit_after_events=COMMIT_AFTER_EVENTS,
            revoke_timeout_seconds=1,
        ),
    )
    poll.start()
    return Harness(consumer, tracker, poll, batches, halted, drained)


async def stopped(harness: Harness) -> None:
    harness.poll.closing.set()
    await asyncio.to_thread(harness.poll.join, 5)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    running = started_poll(FakeConsumer())
    yield running
    await stopped(running)


async def test_a_partition_over_its_share_pauses_alone_and_resumes_when_drained(
    harness: Harness,
) -> None:
    consumer = harness.consumer
    consumer.rebalance("assign", [0, 1, 2, 3])  # shares of 25 buffered events each
    consumer.messages(0, range(30))
    await asyncio.to_thread(until, lambda: consumer.paused == paused(0))

    harness.mark_done(0, range(20))  # 10 left: below half its share

    await asyncio.to_thread(until, lambda: consumer.paused == set())


async def test_all_partitions_pause_at_the_high_water_mark(harness: Harness) -> None:
    consumer = harness.consumer
    consumer.rebalance("assign", [0, 1])  # shares of 50
    consumer.messages(0, range(45))
    consumer.messages(1, range(45))
    await asyncio.to_thread(until, lambda: harness.tracker.pending_count() == 90)
    assert consumer.paused == set()

    consumer.messages(1, range(45, 55))

    await asyncio.to_thread(until, lambda: consumer.paused == paused(0, 1))


async def test_a_stuck_partition_does_not_keep_a_drained_one_paused(harness: Harness) -> None:
    consumer = harness.consumer
    consumer.rebalance("assign", [0, 1])  # shares of 50
    consumer.messages(0, range(60))  # partition 0 overshoots its share and stays stuck
    await asyncio.to_thread(until, lambda: consumer.paused == paused(0))
    consumer.messages(1, range(50))
    await asyncio.to_thread(until, lambda: consumer.paused == paused(0, 1))

    harness.mark_done(1, range(50))  # partition 1 drains; 60 of 100 are still buffered

    await asyncio.to_thread(until, lambda: consumer.paused == paused(0))


async def test_large_records_pause_by_bytes_before_the_event_count(harness: Harness) -> None:
    consumer = harness.consumer
    consumer.rebalance("assign", [0, 1])  # shares of 50 events or 5,000 bytes
    consumer.messages(0, range(6), value=b"x" * 1000)  # 6 events, over 6,000 bytes
    consumer.messages(1, range(6), value=b"{}")

    await asyncio.to_thread(until, lambda: consumer.paused == paused(0))
    assert metrics.REGISTRY.get_sample_value("trengo_processor_inflight_bytes") > 6000

    harness.mark_done(0, range(4))  # 2 of 1,000 bytes left: below half its share

    await asyncio.to_thread(until, lambda: consumer.paused == set())


async def test_partitions_assigned_while_halted_are_paused_from_the_start(
    harness: Harness,
) -> None:
    consumer = harness.consumer
    consumer.rebalance("assign", [0])
    harness.halted[0] = True
    await asyncio.to_thread(until, lambda: consumer.paused == paused(0))

    consumer.rebalance("assign", [1])

    await asyncio.to_thread(until, lambda: (TOPIC, 1) in consumer.assigned)
    assert consumer.paused == paused(0, 1)
    harness.halted[0] = False
    await asyncio.to_thread(until, lambda: consumer.paused == set())


async def test_partitions_assigned_while_the_buffer_is_full_are_paused(harness: Harness) -> None:
    consumer = harness.consumer
    consumer.rebalance("assign", [0])
    consumer.messages(0, range(100))
    await asyncio.to_thread(until, lambda: consumer.paused == paused(0))

    consumer.rebalance("assign", [1])

    await asyncio.to_thread(until, lambda: consumer.paused == paused(0, 1))


async def test_a_revoke_drains_commits_what_is_done_and_forgets_the_partition(
    harness: Harness,
) -> None:
    consumer = harness.consumer
    consumer.rebalance("assign", [0, 1])
    consumer.messages(0, range(10))
    await asyncio.to_thread(until, lambda: harness.tracker.pending_count() == 10)
    harness.mark_done(0, range(4))

    consumer.rebalance("revoke", [0])

    await asyncio.to_thread(until, lambda: harness.tracker.assigned() == [(TOPIC, 1)])
    assert harness.drained == [[(TOPIC, 0)]]
    assert consumer.commits == {(TOPIC, 0): 4}


async def test_closing_makes_a_final_commit(harness: Harness) -> None:
    consumer = harness.consumer
    consumer.rebalance("assign", [0])
    consumer.messages(0, range(5))
    await asyncio.to_thread(until, lambda: harness.tracker.pending_count() == 5)
    harness.mark_done(0, range(5))

    harness.poll.closing.set()

    assert await asyncio.to_thread(harness.poll.join, 5)
    assert consumer.commits == {(TOPIC, 0): 5}
    assert consumer.closed


async def revoke_with_done_above_a_gap(harness: Harness) -> None:
    """Partition 0 polled 0-9, done 0-2 and 5-7, then revoked: committed at 3 with {5, 6, 7}."""
    consumer = harness.consumer
    consumer.rebalance("assign", [0])
    consumer.messages(0, range(10))
    await asyncio.to_thread(until, lambda: harness.tracker.pending_count() == 10)
    harness.mark_done(0, range(3))
    harness.mark_done(0, range(5, 8))
    consumer.rebalance("revoke", [0])
    await asyncio.to_thread(until, lambda: harness.tracker.assigned() == [])


async def test_commits_carry_the_done_offsets_above_the_position_and_the_next_owner_skips_them(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    consumer = harness.consumer
    await revoke_with_done_above_a_gap(harness)
    stored = consumer.stored_commits[(TOPIC, 0)]
    assert (stored.offset, offsetmap.decode(stored.offset, stored.metadata)) == (3, {5, 6, 7})

    # The partition comes back (here to the same process): 5, 6 and 7 are not delivered again.
    caplog.set_level(logging.INFO, logger="processor.engine.consumer")
    harness.batches.clear()
    consumer.rebalance("assign", [0])
    consumer.messages(0, range(3, 10))
    await asyncio.to_thread(until, lambda: harness.tracker.pending_count() == 7)
    delivered = [record.offset for batch in harness.batches for record, _ticket in batch]
    assert delivered == [3, 4, 8, 9]
    assert "offset commit metadata kept by the broker" in caplog.text


async def test_a_new_owner_skips_what_the_metadata_says_and_delivers_the_rest(
    harness: Harness,
) -> None:
    first = harness.consumer
    await revoke_with_done_above_a_gap(harness)

    # Another processor of the group reads the same offset store; new records arrived meanwhile.
    second = FakeConsumer()
    second.stored_commits = dict(first.stored_commits)
    owner = started_poll(second)
    try:
        second.rebalance("assign", [0])
        second.messages(0, range(3, 14))
        await asyncio.to_thread(until, lambda: owner.tracker.pending_count() == 11)
        delivered = [record.offset for batch in owner.batches for record, _ticket in batch]
        assert delivered == [3, 4, 8, 9, 10, 11, 12, 13]
    finally:
        await stopped(owner)


async def test_after_a_graceful_restart_behind_a_stuck_event_only_it_is_delivered_again(
    harness: Harness,
) -> None:
    # Issue 16's "one key failing all run long": its first event (offset 0) never finishes while
    # the 300 events behind it do; a broker that keeps the metadata lets the restart skip them.
    events = 301
    consumer = harness.consumer
    consumer.rebalance("assign", [0])
    consumer.messages(0, range(events))
    await asyncio.to_thread(until, lambda: harness.tracker.pending_count() == events)
    harness.mark_done(0, range(1, events))
    await stopped(harness)  # SIGTERM: the final commit

    restarted = FakeConsumer()
    restarted.stored_commits = dict(consumer.stored_commits)
    owner = started_poll(restarted)
    try:
        restarted.rebalance("assign", [0])
        restarted.messages(0, range(events))
        await asyncio.to_thread(until, lambda: owner.tracker.pending_count() == events)
        delivered = [record.offset for batch in owner.batches for record, _ticket in batch]
        assert delivered == [0]
    finally:
        await stopped(owner)


async def test_metadata_of_another_version_or_garbage_skips_nothing_and_is_logged(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="processor.engine")
    consumer = harness.consumer
    future_version = "2b" + offsetmap.encode(3, {4, 5})[2:]
    consumer.stored_commits[(TOPIC, 0)] = TopicPartition(TOPIC, 0, 3, metadata=future_version)
    consumer.stored_commits[(TOPIC, 1)] = TopicPartition(TOPIC, 1, 3, metadata="1b%%not base64%%")
    consumer.rebalance("assign", [0, 1])
    consumer.messages(0, range(3, 6))
    consumer.messages(1, range(3, 6))
    await asyncio.to_thread(until, lambda: harness.tracker.pending_count() == 6)

    delivered = [
        (record.partition, record.offset) for batch in harness.batches for record, _ in batch
    ]
    assert delivered == [(0, 3), (0, 4), (0, 5), (1, 3), (1, 4), (1, 5)]
    assert caplog.text.count("not a done-offset map") == 2
    assert "offset commit metadata not kept by the broker" in caplog.text


async def test_a_large_done_prefix_is_committed_before_the_interval(harness: Harness) -> None:
    consumer = harness.consumer
    consumer.rebalance("assign", [0])
    consumer.messages(0, range(3 * COMMIT_AFTER_EVENTS))
    await asyncio.to_thread(
        until, lambda: harness.tracker.pending_count() == 3 * COMMIT_AFTER_EVENTS
    )
    # Done above a gap cannot be committed: no early commit however many there are.
    harness.mark_done(0, range(1, 2 * COMMIT_AFTER_EVENTS))
    await settled(consumer)
    assert consumer.commits == {}

    harness.mark_done(0, range(1))

    await asyncio.to_thread(
        until, lambda: consumer.commits == {(TOPIC, 0): 2 * COMMIT_AFTER_EVENTS}
    )
    harness.mark_done(0, range(2 * COMMIT_AFTER_EVENTS, 2 * COMMIT_AFTER_EVENTS + 1))
    await settled(consumer)
    assert consumer.commits == {(TOPIC, 0): 2 * COMMIT_AFTER_EVENTS}  # one event: the interval


async def test_while_done_events_await_a_commit_the_poll_thread_looks_more_often(
    harness: Harness,
) -> None:
    consumer = harness.consumer
    consumer.rebalance("assign", [0])
    consumer.messages(0, range(10))
    await asyncio.to_thread(until, lambda: harness.tracker.pending_count() == 10)
    await settled(consumer)
    assert consumer.consume_timeouts[-1] == POLL_TIMEOUT_SECONDS

    harness.mark_done(0, range(2))  # fewer than COMMIT_AFTER_EVENTS: waits for the interval
    await settled(consumer)

    assert consumer.consume_timeouts[-1] == AWAITING_COMMIT_POLL_TIMEOUT_SECONDS
    assert consumer.commits == {}


async def test_a_broker_that_drops_the_metadata_skips_nothing_and_says_so_once(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="processor.engine.consumer")
    consumer = harness.consumer
    consumer.stored_commits[(TOPIC, 0)] = TopicPartition(TOPIC, 0, 3)  # metadata None
    consumer.stored_commits[(TOPIC, 1)] = TopicPartition(TOPIC, 1, 3)
    consumer.rebalance("assign", [0])
    consumer.rebalance("assign", [1])
    consumer.messages(0, range(3, 8))
    await asyncio.to_thread(until, lambda: harness.tracker.pending_count() == 5)

    delivered = [record.offset for batch in harness.batches for record, _ticket in batch]
    assert delivered == [3, 4, 5, 6, 7]
    assert caplog.text.count("offset commit metadata not kept by the broker") == 1


async def test_committed_offsets_that_cannot_be_read_skip_nothing(harness: Harness) -> None:
    consumer = harness.consumer
    consumer.stored_commits[(TOPIC, 0)] = TopicPartition(
        TOPIC, 0, 3, metadata=offsetmap.encode(3, {4, 5})
    )
    consumer.committed_error = KafkaException(KafkaError(KafkaError._TIMED_OUT))
    consumer.rebalance("assign", [0])
    consumer.messages(0, range(3, 6))
    await asyncio.to_thread(until, lambda: harness.tracker.pending_count() == 3)

    delivered = [record.offset for batch in harness.batches for record, _ticket in batch]
    assert delivered == [3, 4, 5]


def test_the_consumer_prefetches_little_and_fetches_again_soon() -> None:
    """A bounded prefetch queue (memory) with librdkafka's 1 s wait after it filled would leave
    a consumer of cheap events idle most of the time; an operator's kafka.settings still win."""
    kafka = KafkaConfig(topic="t", group_id="g", settings={"fetch.queue.backoff.ms": 50})
    defaults = consumer_config(KafkaConfig(topic="t", group_id="g"))

    assert defaults["queued.max.messages.kbytes"] == 8192
    assert defaults["fetch.queue.backoff.ms"] <= 10
    assert consumer_config(kafka)["fetch.queue.backoff.ms"] == 50
