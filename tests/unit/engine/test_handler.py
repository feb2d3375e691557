"""One event's fate: delivered, retried, dead-lettered, or held while the destination is down.

An event is done (its offset committable) only once Trengo accepted it or the broker
acknowledged its dead letter.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from processor import metrics
from processor.engine.backoff import Backoff
from processor.engine.dead_letter_ratio import DeadLetterRatio
from processor.engine.destination import DestinationGate
from processor.engine.dlq import DeadLetter, DeadLetterWriter
from processor.engine.handler import EventHandler
from processor.engine.offsets import OffsetTracker
from processor.engine.outcomes import DestinationDown, Forbidden, PermanentError, TransientError
from processor.pipeline.plan import Plan, Rejection
from processor.trengo import endpoints as trengo_requests
from processor.trengo.client import TrengoClient
from tests.unit.engine.fakes import TOPIC, FakeProducer, ManualClock, identify_plan, work_item

DLQ = "events.dlq"
RATIO_WINDOW = 4


@dataclass
class FakeDelivery:
    """Raises the queued errors one per call, then succeeds; records the plans it got."""

    errors: list[Exception] = field(default_factory=list)
    delivered: list[Plan] = field(default_factory=list)

    async def __call__(self, plan: Plan) -> None:
        if self.errors:
            raise self.errors.pop(0)
        self.delivered.append(plan)


@dataclass
class Engine:
    handler: EventHandler
    delivery: FakeDelivery
    producer: FakeProducer
    tracker: OffsetTracker
    gate: DestinationGate
    probe_answers: list[Exception | None]
    token_reloads: list[bool]  # what re-reading the token source answers, in turn (then False)
    clock: ManualClock


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    delivery, producer, tracker = FakeDelivery(), FakeProducer(), OffsetTracker()
    clock = ManualClock()
    writer = DeadLetterWriter(producer, DLQ)
    probe_answers: list[Exception | None] = []
    token_reloads: list[bool] = []

    async def probe() -> None:
        answer = probe_answers.pop(0) if probe_answers else None
        if answer is not None:
            raise answer

    def reload_token() -> bool:
        return token_reloads.pop(0) if token_reloads else False

    gate = DestinationGate(
        probe,
        probe_seconds=0.01,
        on_change=lambda _up: None,
        reload_token=reload_token,
        clock=clock,
    )
    handler = EventHandler(
        deliver=delivery,
        dead_letters=writer,
        tracker=tracker,
        gate=gate,
        backoff=Backoff(base_seconds=0.5, cap_seconds=10),
        retry_max_seconds=60,
        dead_letter_ratio=DeadLetterRatio(max_ratio=0.5, window=RATIO_WINDOW),
        clock=clock,
    )
    serving = asyncio.create_task(writer.serve(interval_seconds=0.001))
    yield Engine(handler, delivery, producer, tracker, gate, probe_answers, token_reloads, clock)
    serving.cancel()
    await gate.close()


def counted(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def committable(tracker: OffsetTracker) -> dict[tuple[str, int], int]:
    return {tp: point.position for tp, point in tracker.commit_points().items()}


def headers_of(engine: Engine) -> dict[str, str]:
    (letter,) = engine.producer.produced
    return {name: (value or b"").decode() for name, value in letter.headers}


async def test_a_delivered_event_is_done(engine: Engine) -> None:
    item = work_item(engine.tracker, 7, identify_plan("a@example.com", "A"))
    before = counted("trengo_processor_events_total", outcome="delivered", type="identify")

    assert await engine.handler.handle(item) is None

    assert engine.delivery.delivered == [item.work]
    assert committable(engine.tracker) == {(TOPIC, 0): 8}
    after = counted("trengo_processor_events_total", outcome="delivered", type="identify")
    assert after == before + 1


async def test_a_transient_failure_waits_retry_after_and_stays_undone(engine: Engine) -> None:
    engine.delivery.errors.append(TransientError("create: HTTP 429", 429, retry_after=7.0))
    item = work_item(engine.tracker, 0, identify_plan("a@example.com", "A"))

    assert await engine.handler.handle(item) == 7.0

    assert committable(engine.tracker) == {}
    assert engine.producer.produced == []
    assert await engine.handler.handle(item) is None
    assert committable(engine.tracker) == {(TOPIC, 0): 1}
    assert item.attempts == 2


@pytest.mark.parametrize(
    ("seconds_later", "dead_lettered"),
    [(59.9, False), (60.0, True), (61.0, True)],  # retry_max_seconds is 60
)
async def test_a_transient_failure_past_retry_max_is_dead_lettered(
    engine: Engine, seconds_later: float, dead_lettered: bool
) -> None:
    engine.delivery.errors.extend([TransientError("create: HTTP 503", 503)] * 2)
    item = work_item(engine.tracker, 0, identify_plan("a@example.com", "A"))
    assert await engine.handler.handle(item) is not None
    engine.clock.advance(seconds_later)

    outcome = await engine.handler.handle(item)

    if not dead_lettered:
        assert outcome is not None and engine.producer.produced == []
        return
    assert outcome is None
    headers = headers_of(engine)
    assert headers["x-error-stage"] == "deliver"
    assert headers["x-error-status"] == "503"
    assert headers["x-error-reason"] == "gave up after 2 attempts: create: HTTP 503"
    assert headers["x-first-attempt-at"].startswith("2023-11-14T22:13:20")
    assert committable(engine.tracker) == {(TOPIC, 0): 1}


async def test_time_halted_does_not_count_towards_retry_max(engine: Engine) -> None:
    engine.delivery.errors.extend([TransientError("create: HTTP 503", 503)] * 2)
    item = work_item(engine.tracker, 0, identify_plan("a@example.com", "A"))
    assert await engine.handler.handle(item) is not None
    engine.clock.advance(31)
    engine.gate.halt("search: HTTP 401")
    engine.clock.advance(30)  # 61 s since the first attempt, 30 of them halted
    async with asyncio.timeout(2):
        await engine.gate.wait_open()  # the probe gets through

    assert await engine.handler.handle(item) == pytest.approx(0.5, abs=0.5)  # a backoff delay

    assert engine.producer.produced == []
    assert committable(engine.tracker) == {}


async def test_an_unexpected_exception_is_retried_with_backoff_not_every_five_seconds(
    engine: Engine,
) -> None:
    engine.delivery.errors.append(RuntimeError("boom"))
    item = work_item(engine.tracker, 0, identify_plan("a@example.com", "A"))
    before = counted("trengo_processor_retries_total", reason="internal")

    delay = await engine.handler.handle(item)

    assert delay is not None and 0 <= delay <= 0.5  # backoff base 0.5 s, first attempt
    assert counted("trengo_processor_retries_total", reason="internal") == before + 1
    assert engine.producer.produced == [] and committable(engine.tracker) == {}
    assert await engine.handler.handle(item) is None  # the next attempt delivers
    assert committable(engine.tracker) == {(TOPIC, 0): 1}


async def test_an_unexpected_exception_past_retry_max_is_dead_lettered_with_its_type(
    engine: Engine,
) -> None:
    engine.delivery.errors.extend([KeyError("contact")] * 2)
    item = work_item(engine.tracker, 4, identify_plan("a@example.com", "A"))
    assert await engine.handler.handle(item) is not None
    engine.clock.advance(61)  # retry_max_seconds is 60

    assert await engine.handler.handle(item) == 0.0  # dead-letter at once, on the next turn
    assert await engine.handler.handle(item) is None

    headers = headers_of(engine)
    assert headers["x-error-stage"] == "deliver"
    assert headers["x-error-reason"] == "internal error: KeyError: 'contact'"
    assert "x-error-status" not in headers
    assert engine.delivery.delivered == []  # Trengo was not called again
    assert committable(engine.tracker) == {(TOPIC, 0): 5}


async def test_an_exception_while_dead_lettering_is_retried_then_written_with_the_reason(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    item = work_item(engine.tracker, 0, Rejection("Event value is empty", "decode"))
    writer = engine.handler._dead_letters
    real_send = writer.send
    failures = [ValueError("bad header")]

    def send_failing_once(letter: DeadLetter) -> asyncio.Future[None]:
        if failures:
            raise failures.pop()
        return real_send(letter)

    monkeypatch.setattr(writer, "send", send_failing_once)

    delay = await engine.handler.handle(item)
    assert delay is not None and delay <= 0.5
    assert committable(engine.tracker) == {}
    assert await engine.handler.handle(item) is None
    assert headers_of(engine)["x-error-reason"] == "Event value is empty"
    assert committable(engine.tracker) == {(TOPIC, 0): 1}


async def test_a_permanent_failure_is_dead_lettered_at_once(engine: Engine) -> None:
    engine.delivery.errors.append(PermanentError("create_ticket: HTTP 422", 422))
    item = work_item(engine.tracker, 3, identify_plan("a@example.com", "A"))

    assert await engine.handler.handle(item) is None

    (letter,) = engine.producer.produced
    assert (letter.topic, letter.key, letter.value) == (DLQ, item.record.key, item.record.value)
    headers = headers_of(engine)
    assert (headers["x-error-status"], headers["x-original-offset"]) == ("422", "3")
    assert headers["trace"] == "t1"
    assert committable(engine.tracker) == {(TOPIC, 0): 4}


async def test_a_rejection_is_dead_lettered_with_its_stage_and_no_call(engine: Engine) -> None:
    item = work_item(engine.tracker, 0, Rejection("Event value is empty", "decode"))

    assert await engine.handler.handle(item) is None

    assert engine.delivery.delivered == []
    headers = headers_of(engine)
    assert (headers["x-error-stage"], headers["x-error-reason"]) == ("decode", item.work.reason)
    assert "x-error-status" not in headers
    assert committable(engine.tracker) == {(TOPIC, 0): 1}


async def test_a_dead_letter_the_broker_refused_is_not_done_and_is_retried(
    engine: Engine,
) -> None:
    engine.producer.fail_with = "Broker: Not enough in-sync replicas"
    item = work_item(engine.tracker, 0, Rejection("Event value is empty", "decode"))

    delay = await engine.handler.handle(item)

    assert delay is not None
    assert committable(engine.tracker) == {}  # never committed past an unacknowledged letter
    engine.producer.fail_with = None
    assert await engine.handler.handle(item) is None
    assert committable(engine.tracker) == {(TOPIC, 0): 1}
    assert len(engine.producer.produced) == 2


async def test_a_refused_token_halts_dead_letters_nothing_and_resumes(engine: Engine) -> None:
    engine.delivery.errors.append(DestinationDown("create: HTTP 401", 401))
    engine.probe_answers.append(DestinationDown("search: HTTP 401", 401))
    item = work_item(engine.tracker, 0, identify_plan("a@example.com", "A"))

    assert await engine.handler.handle(item) == 0.0

    assert engine.gate.halted
    assert counted("trengo_processor_destination_up") == 0
    assert item.attempts == 0  # not the event's fault
    assert engine.producer.produced == []
    assert committable(engine.tracker) == {}
    async with asyncio.timeout(2):
        assert await engine.handler.handle(item) is None  # waits for the probe to succeed
    assert not engine.gate.halted
    assert committable(engine.tracker) == {(TOPIC, 0): 1}


async def test_a_401_with_a_rotated_token_is_tried_again_at_once_without_halting(
    engine: Engine,
) -> None:
    engine.delivery.errors.append(DestinationDown("create: HTTP 401", 401))
    engine.token_reloads.append(True)  # the mounted Secret holds a new token
    item = work_item(engine.tracker, 0, identify_plan("a@example.com", "A"))

    assert await engine.handler.handle(item) == 0.0

    assert not engine.gate.halted
    assert await engine.handler.handle(item) is None
    assert committable(engine.tracker) == {(TOPIC, 0): 1}


async def test_a_403_whose_token_probe_gets_through_is_a_forbidden_action_dead_letter(
    engine: Engine,
) -> None:
    engine.delivery.errors.append(Forbidden("create_ticket: HTTP 403 Forbidden", 403))
    engine.probe_answers.append(None)  # the same token searches contacts fine
    item = work_item(engine.tracker, 2, identify_plan("a@example.com", "A"))

    assert await engine.handler.handle(item) is None

    assert not engine.gate.halted
    headers = headers_of(engine)
    assert headers["x-error-status"] == "403"
    assert headers["x-error-reason"] == "create_ticket: HTTP 403 Forbidden"
    assert committable(engine.tracker) == {(TOPIC, 0): 3}


async def test_a_403_whose_token_probe_is_refused_too_halts(engine: Engine) -> None:
    engine.delivery.errors.append(Forbidden("create_ticket: HTTP 403 Forbidden", 403))
    engine.probe_answers.extend([Forbidden("search: HTTP 403", 403), None])
    item = work_item(engine.tracker, 0, identify_plan("a@example.com", "A"))

    assert await engine.handler.handle(item) == 0.0

    assert engine.gate.halted and item.attempts == 0
    assert engine.producer.produced == []
    async with asyncio.timeout(2):
        assert await engine.handler.handle(item) is None
    assert committable(engine.tracker) == {(TOPIC, 0): 1}


async def test_a_403_whose_probe_gets_no_answer_is_retried(engine: Engine) -> None:
    engine.delivery.errors.append(Forbidden("create_ticket: HTTP 403 Forbidden", 403))
    engine.probe_answers.append(TransientError("search: HTTP 503", 503, retry_after=3.0))
    item = work_item(engine.tracker, 0, identify_plan("a@example.com", "A"))

    assert await engine.handler.handle(item) == 3.0

    assert not engine.gate.halted and engine.producer.produced == []


async def test_work_of_a_partition_revoked_while_halted_is_dropped(engine: Engine) -> None:
    engine.gate.halt("search: HTTP 401")
    engine.probe_answers.extend([DestinationDown("401", 401)] * 3)
    item = work_item(engine.tracker, 0, identify_plan("a@example.com", "A"))
    handling = asyncio.create_task(engine.handler.handle(item))
    await asyncio.sleep(0.005)

    engine.tracker.begin_revoke([(TOPIC, 0)])
    engine.tracker.drop([(TOPIC, 0)])

    async with asyncio.timeout(2):
        assert await handling is None
    assert engine.delivery.delivered == []


async def test_coalesced_identifies_are_done_or_dead_lettered_together(engine: Engine) -> None:
    engine.delivery.errors.append(PermanentError("update: HTTP 422", 422))
    older = work_item(engine.tracker, 0, identify_plan("a@example.com", "A"))
    newer = work_item(engine.tracker, 1, identify_plan("a@example.com", "B"))
    newer.merged = [older]

    assert await engine.handler.handle(newer) is None

    offsets = [dict(p.headers)["x-original-offset"] for p in engine.producer.produced]
    assert offsets == [b"0", b"1"]
    assert committable(engine.tracker) == {(TOPIC, 0): 2}


async def test_a_retried_coalesced_dead_letter_resends_only_the_unacknowledged(
    engine: Engine,
) -> None:
    engine.delivery.errors.append(PermanentError("update: HTTP 422", 422))
    engine.producer.failures_left = 1  # the older event's dead letter is refused once
    older = work_item(engine.tracker, 0, identify_plan("a@example.com", "A"))
    newer = work_item(engine.tracker, 1, identify_plan("a@example.com", "B"))
    newer.merged = [older]

    assert await engine.handler.handle(newer) is not None
    assert committable(engine.tracker) == {}
    assert await engine.handler.handle(newer) is None

    offsets = [dict(p.headers)["x-original-offset"] for p in engine.producer.produced]
    assert offsets == [b"0", b"1", b"0"]  # the acknowledged one is not sent twice
    assert committable(engine.tracker) == {(TOPIC, 0): 2}


@pytest.mark.parametrize("comes_back", [False, True])
async def test_a_call_waiting_in_the_rate_limiter_when_its_partition_goes_is_never_sent(
    comes_back: bool,
) -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"data": [], "links": {"next": None}})

    client = TrengoClient(
        "https://trengo.test/api/v2",
        "token",
        timeout_seconds=5,
        requests_per_minute=600,
        transport=httpx.MockTransport(answer),
    )
    limiter_open = asyncio.Event()
    client.rate_limiter.acquire = limiter_open.wait  # type: ignore[method-assign]
    tracker = OffsetTracker()
    gate = DestinationGate(_probe_ok, probe_seconds=1, on_change=lambda _up: None)
    handler = EventHandler(
        deliver=lambda _plan: client.send(trengo_requests.list_labels(1)),
        dead_letters=DeadLetterWriter(FakeProducer(), DLQ),
        tracker=tracker,
        gate=gate,
        backoff=Backoff(),
        retry_max_seconds=60,
        dead_letter_ratio=DeadLetterRatio(max_ratio=0.5, window=RATIO_WINDOW),
    )
    item = work_item(tracker, 0, identify_plan("a@example.com", "A"))
    handling = asyncio.create_task(handler.handle(item))
    await asyncio.sleep(0.01)  # waiting in the limiter

    tracker.begin_revoke([(TOPIC, 0)])
    tracker.drop([(TOPIC, 0)])
    if comes_back:  # a new assignment of the partition: the new epoch delivers the event
        tracker.assign([(TOPIC, 0)])
    limiter_open.set()

    async with asyncio.timeout(2):
        assert await handling is None
    assert sent == []
    assert committable(tracker) == {}
    await client.aclose()
    await gate.close()


async def _probe_ok() -> None:
    return None


def unprocessable(number: int) -> PermanentError:
    return PermanentError(f"create_ticket: HTTP 422: bad channel {number}", 422)


async def test_too_many_dead_letters_halt_until_restart(engine: Engine) -> None:
    engine.delivery.errors.extend(unprocessable(number) for number in range(RATIO_WINDOW))
    for offset in range(RATIO_WINDOW):
        assert not engine.gate.halted
        await engine.handler.handle(work_item(engine.tracker, offset, identify_plan("a@x.io", "A")))

    assert engine.gate.halted
    reason = engine.gate.halt_reason or ""
    assert "100% of the last 4 deliveries" in reason
    assert "max_dead_letter_ratio 0.5" in reason
    assert "bad channel 3" in reason and "bad channel 0" not in reason  # the latest reasons
    assert counted("trengo_processor_dead_letter_ratio") == 1.0
    assert counted("trengo_processor_dead_letter_halt") == 1.0
    assert len(engine.producer.produced) == RATIO_WINDOW  # the judged events, no more
    # Trengo still accepts the token: no probe may reopen the gate.
    await asyncio.sleep(0.1)
    assert engine.gate.halted
    waiting = asyncio.create_task(
        engine.handler.handle(work_item(engine.tracker, 9, identify_plan("b@x.io", "B")))
    )
    await asyncio.sleep(0.05)
    assert not waiting.done() and engine.delivery.delivered == []
    waiting.cancel()
    metrics.DEAD_LETTER_HALT.set(0)  # process-wide: leave it as the next test expects


async def test_pipeline_rejections_never_count(engine: Engine) -> None:
    for offset in range(3 * RATIO_WINDOW):
        item = work_item(engine.tracker, offset, Rejection("Event value is empty", "decode"))
        await engine.handler.handle(item)
    assert not engine.gate.halted
    assert len(engine.producer.produced) == 3 * RATIO_WINDOW


async def test_dead_letters_trengo_did_not_refuse_never_count(engine: Engine) -> None:
    no_contact = PermanentError("No contact found for term:a@x.io track event failed")
    engine.delivery.errors.extend([no_contact] * (2 * RATIO_WINDOW))
    for offset in range(2 * RATIO_WINDOW):
        await engine.handler.handle(work_item(engine.tracker, offset, identify_plan("a@x.io", "A")))
    assert not engine.gate.halted
    assert len(engine.producer.produced) == 2 * RATIO_WINDOW
    assert counted("trengo_processor_dead_letter_ratio") == 0.0


async def test_half_dead_letters_is_not_past_the_ratio(engine: Engine) -> None:
    engine.delivery.errors.extend([unprocessable(1), unprocessable(2)])
    for offset in range(RATIO_WINDOW):
        await engine.handler.handle(work_item(engine.tracker, offset, identify_plan("a@x.io", "A")))
    assert not engine.gate.halted
    assert counted("trengo_processor_dead_letter_ratio") == 0.5
