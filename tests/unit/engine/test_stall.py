"""The stall watch: pending work without progress fails /healthz; halts and backoffs do not."""

from __future__ import annotations

import logging

import pytest

from processor import metrics
from processor.engine.offsets import OffsetTicket, OffsetTracker
from processor.engine.stall import StallWatch
from processor.health import HealthState

TOPIC = "events"
STALL_SECONDS = 1800.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Setup:
    def __init__(self) -> None:
        self.clock = Clock()
        self.tracker = OffsetTracker(clock=self.clock)
        self.tracker.assign([(TOPIC, 0), (TOPIC, 1)])
        self.halted = False
        self.health = HealthState(liveness_seconds=30, broker_timeout_seconds=30, clock=self.clock)
        self.watch = StallWatch(self.tracker, STALL_SECONDS, lambda: self.halted, self.health)

    def register(self, partition: int, offset: int) -> OffsetTicket:
        ticket = self.tracker.register(TOPIC, partition, offset)
        assert ticket is not None
        return ticket

    def after(self, seconds: float) -> tuple[bool, dict[str, object]]:
        """Let ``seconds`` pass (the poll loop ticking meanwhile), check, probe /healthz."""
        self.clock.now += seconds
        self.health.poll_ticked()
        self.watch.check()
        return self.health.liveness()


def stalled_gauge(partition: int) -> float | None:
    return metrics.REGISTRY.get_sample_value(
        "trengo_processor_partition_stalled", {"partition": str(partition)}
    )


@pytest.fixture
def setup() -> Setup:
    return Setup()


def test_pending_work_without_progress_is_a_stall_that_fails_healthz(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    setup.register(0, 5)
    setup.register(0, 6)
    assert setup.after(STALL_SECONDS)[0] is True

    with caplog.at_level(logging.ERROR):
        alive, body = setup.after(1)

    assert not alive
    assert body["reasons"] == [
        "partition events[0] stalled: 2 events pending, none attempted or finished for 1801 s"
    ]
    assert (stalled_gauge(0), stalled_gauge(1)) == (1, 0)
    assert "partition events[0] stalled" in caplog.text
    setup.after(60)
    assert caplog.text.count("stalled:") == 1  # logged when it starts, not every check


def test_attempts_of_a_retrying_event_are_progress(setup: Setup) -> None:
    ticket = setup.register(1, 0)
    for _ in range(10):  # a backoff at its 5-minute cap, ten times over
        assert setup.after(300)[0] is True
        setup.tracker.note_attempt(ticket)
    assert stalled_gauge(1) == 0


def test_a_finished_event_is_progress_and_an_idle_partition_never_stalls(setup: Setup) -> None:
    first = setup.register(0, 0)
    setup.register(0, 1)
    setup.after(1000)
    setup.tracker.mark_done(first)
    assert setup.after(1000)[0] is True
    setup.tracker.mark_done(OffsetTicket(TOPIC, 0, 1, first.epoch))
    assert setup.after(10 * STALL_SECONDS)[0] is True  # nothing pending: nothing to stall


def test_work_arriving_on_an_idle_partition_starts_its_clock_afresh(setup: Setup) -> None:
    setup.after(10 * STALL_SECONDS)
    setup.register(0, 0)
    assert setup.after(STALL_SECONDS - 1)[0] is True


def test_a_halt_suspends_the_stall_clock(setup: Setup) -> None:
    setup.register(0, 0)
    setup.halted = True
    for _ in range(20):  # a day-long halt, checked every ten minutes
        assert setup.after(600)[0] is True
    setup.halted = False
    assert setup.after(STALL_SECONDS - 600)[0] is True
    assert setup.after(601)[0] is False


def test_a_revoked_partition_leaves_the_gauge(setup: Setup) -> None:
    setup.after(1)
    assert stalled_gauge(1) == 0
    setup.tracker.drop([(TOPIC, 1)])
    setup.after(1)
    assert stalled_gauge(1) is None
