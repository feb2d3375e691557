"""The dashboard and alert rules against what the processor really exports, on a real Prometheus.

One Prometheus (scraping every second) watches six processors at once, each a scenario with its
own sandbox and topic, labelled like a pod of its own namespace:

* ``healthy``: steady deliveries, returning users (cache hits, skipped updates), page views and
  unmapped tracks (skipped), one bad event (a dead letter). No alert may even be pending.
* ``overload``: events arrive faster than its 60 requests/minute deliver (lag grows), and a 429
  storm: ``TrengoProcessorLagGrowing``, ``TrengoProcessorRateLimited``.
* ``halted``: Trengo refuses the token (401) from the start, over a backlog:
  ``TrengoProcessorDestinationDown``, ``TrengoProcessorNoCommit``; its lag is the backlog.
* ``dead_letters``: a channel that does not exist: every delivery is dead-lettered until the
  processor halts for its dead-letter ratio: ``TrengoProcessorDeadLetterRate``,
  ``TrengoProcessorDeadLetterHalt`` (and not ``TrengoProcessorDestinationDown``).
* ``stalled``: its own broker freezes (SIGSTOP) while an event waits for its dead letter to be
  acknowledged: no progress, ``TrengoProcessorPartitionStalled``.
* ``gone``: a processor killed after its first scrapes: ``TrengoProcessorPodNotReady``.

The rules are the shipped ones with shorter ``for:`` durations; the panel queries are the
dashboard's with Grafana's variables substituted (``$__rate_interval`` = 4 x the scrape interval).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from devkit.sandbox.broker import EmbeddedBroker, KafkaTarget, create_topics
from devkit.sandbox.trengo import RunningSandbox, SandboxOptions
from tests.kafka_support import OutgoingRecord, unique_name
from tests.processor_support import (
    EMAIL_CHANNEL,
    UNLIMITED_RATE,
    ProcessorProcess,
    email_of,
    identify_record,
    order_record,
    processor_config,
    wait_until,
)
from tests.prometheus_support import (
    ALERT_RULES,
    PanelQuery,
    PrometheusServer,
    Series,
    panel_queries,
    rules_with_short_for,
)

pytestmark = pytest.mark.integration

# The shipped durations shortened; LagGrowing keeps long enough a `for:` that a healthy
# processor's momentary lag (refreshed every 10 s) cannot fire it.
FOR_DURATIONS = {
    "TrengoProcessorLagGrowing": "15s",
    "TrengoProcessorNoCommit": "3s",
    "TrengoProcessorDeadLetterRate": "3s",
    "TrengoProcessorDestinationDown": "3s",
    "TrengoProcessorRateLimited": "3s",
    "TrengoProcessorPodNotReady": "3s",
}
EXPECTED_ALERTS = {
    ("TrengoProcessorLagGrowing", "overload"),
    ("TrengoProcessorRateLimited", "overload"),
    ("TrengoProcessorDestinationDown", "halted"),
    ("TrengoProcessorNoCommit", "halted"),
    ("TrengoProcessorDeadLetterRate", "dead_letters"),
    ("TrengoProcessorDeadLetterHalt", "dead_letters"),
    ("TrengoProcessorPartitionStalled", "stalled"),
    ("TrengoProcessorPodNotReady", "gone"),
}
# Deriving lag growth needs two minute-aligned samples: up to two minutes after the start.
RUN_TIMEOUT_SECONDS = 170.0
MIN_RUN_SECONDS = 40.0
HALTED_BACKLOG = 30
SANDBOX_RATE_LIMIT = 100_000  # high enough never to refuse, but Trengo's headers are sent
OVERLOAD_REQUESTS_PER_MINUTE = 60
NO_CHANNEL = 404  # a channel id the sandbox does not have
STALLED_SESSION_MS = 20_000


@dataclass
class Scenario:
    """One processor, its sandbox and topic, scraped as namespace ``name``."""

    name: str
    processor: ProcessorProcess
    sandbox: RunningSandbox
    topic: str
    bootstrap_servers: str


@dataclass
class Run:
    """What the module's run left to look at: Prometheus (still running) and the alerts seen."""

    prometheus: PrometheusServer
    start: float
    end: float
    scenarios: dict[str, Scenario]
    fired: set[tuple[str, str]] = field(default_factory=set)
    active_in: dict[str, set[str]] = field(default_factory=dict)  # namespace -> alert names

    def panel(self, query: PanelQuery, namespace: str = ".*") -> list[Series]:
        """What the panel query shows over the run, for one namespace or all."""
        return self.prometheus.query_range(query.for_namespace(namespace), self.start, self.end)


class Traffic:
    """One producer per broker; records are sent without waiting, flushed once per round."""

    def __init__(self) -> None:
        self._producers: dict[str, Producer] = {}

    def send(self, scenario: Scenario, records: list[OutgoingRecord]) -> None:
        producer = self._producers.get(scenario.bootstrap_servers)
        if producer is None:
            producer = Producer(
                {
                    "bootstrap.servers": scenario.bootstrap_servers,
                    "linger.ms": 5,
                    "acks": "all",
                    "logger": logging.getLogger("tests.traffic"),
                }
            )
            self._producers[scenario.bootstrap_servers] = producer
        for key, value, _headers in records:
            producer.produce(scenario.topic, value, key)

    def flush(self) -> None:
        for producer in self._producers.values():
            assert producer.flush(10) == 0, "records not acknowledged"

    def close(self) -> None:
        for producer in self._producers.values():
            producer.flush(1)
        self._producers.clear()


def page_view(user: str) -> OutgoingRecord:
    value = {"type": "page", "userId": user, "name": "Pricing", "messageId": f"page-{time.time()}"}
    return user.encode(), json.dumps(value).encode(), []


def unmapped_track(user: str) -> OutgoingRecord:
    value = {
        "type": "track",
        "event": "Product Viewed",
        "userId": user,
        "messageId": f"viewed-{time.time()}",
        "context": {"traits": {"email": email_of(user)}},
    }
    return user.encode(), json.dumps(value).encode(), []


BAD_JSON: OutgoingRecord = (b"broken", b'{"type": "identify", ', [])


@pytest.fixture(scope="module")
def run(kafka: KafkaTarget, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    workdir = tmp_path_factory.mktemp("prometheus-run")
    with ExitStack() as stack:
        prometheus = stack.enter_context(
            PrometheusServer(rules_with_short_for(ALERT_RULES, FOR_DURATIONS))
        )
        stall_broker = stack.enter_context(EmbeddedBroker())
        stack.callback(_thaw, stall_broker)
        start_scenario = _ScenarioStarter(stack, prometheus, workdir)
        stall_kafka = KafkaTarget.of_kind(stall_broker.bootstrap_servers, "embedded")
        scenarios = {
            # First: with a session long enough to outlast the stall check (the frozen broker
            # cannot take heartbeats), its group join takes about 10 s on Tansu.
            "stalled": start_scenario(
                "stalled",
                stall_kafka,
                SandboxOptions(
                    requests_per_minute=None, latency_ms=1000, forbidden_channels=(EMAIL_CHANNEL,)
                ),
                trengo={"timeout_seconds": 3, **UNLIMITED_RATE},
                delivery={"retry_cap_seconds": 0.5},
                server={"stall_seconds": 4.5},
                kafka_overrides={
                    "session_timeout_ms": STALLED_SESSION_MS,
                    "settings": {
                        **stall_kafka.consumer_settings,
                        "session.timeout.ms": STALLED_SESSION_MS,
                    },
                },
            ),
            "halted": start_scenario(
                "halted",
                kafka,
                SandboxOptions(requests_per_minute=None, denied_tokens=SandboxOptions().tokens),
                delivery={"halt_probe_seconds": 1},
                backlog=[identify_record(f"waiting-{n}") for n in range(HALTED_BACKLOG)],
            ),
            "overload": start_scenario(
                "overload",
                kafka,
                SandboxOptions(requests_per_minute=SANDBOX_RATE_LIMIT),
                trengo={"requests_per_minute": OVERLOAD_REQUESTS_PER_MINUTE},
            ),
            "healthy": start_scenario(
                "healthy",
                kafka,
                SandboxOptions(requests_per_minute=SANDBOX_RATE_LIMIT),
                trengo=UNLIMITED_RATE,
                kafka_overrides={"commit_interval_ms": 10},
            ),
            "dead_letters": start_scenario(
                "dead_letters",
                kafka,
                SandboxOptions(requests_per_minute=None),
                destination={"channelId": str(NO_CHANNEL)},
                trengo=UNLIMITED_RATE,
                delivery={"max_dead_letter_ratio": 0.5, "dead_letter_window": 10},
            ),
            "gone": start_scenario("gone", kafka, SandboxOptions(requests_per_minute=None)),
        }
        traffic = Traffic()
        stack.callback(traffic.close)
        run = Run(prometheus, time.time(), 0.0, scenarios)
        _drive(run, traffic, stall_broker)
        run.end = time.time()
        yield run


class _ScenarioStarter:
    def __init__(self, stack: ExitStack, prometheus: PrometheusServer, workdir: Path) -> None:
        self._stack = stack
        self._prometheus = prometheus
        self._workdir = workdir

    def __call__(
        self,
        name: str,
        kafka: KafkaTarget,
        options: SandboxOptions,
        *,
        backlog: list[OutgoingRecord] | None = None,
        server: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> Scenario:
        sandbox = self._stack.enter_context(RunningSandbox(options))
        topic = unique_name(name, "topic")
        create_topics(kafka.bootstrap_servers, [topic], 2)
        config = processor_config(
            kafka,
            sandbox,
            topic=topic,
            group_id=unique_name(name, "group"),
            dead_letter_topic=f"{topic}.dlq",
            **overrides,
        )
        config["server"].update(server or {})
        scenario = Scenario(
            name,
            ProcessorProcess(config, self._workdir, name),
            sandbox,
            topic,
            kafka.bootstrap_servers,
        )
        if backlog:
            traffic = Traffic()
            traffic.send(scenario, backlog)
            traffic.close()
        self._stack.enter_context(scenario.processor)
        port = scenario.processor.health_port()
        self._prometheus.set_target(name, f"127.0.0.1:{port}")
        return scenario


def _drive(run: Run, traffic: Traffic, stall_broker: EmbeddedBroker) -> None:
    """Send each scenario its traffic, once a second, until every expected alert fired."""
    scenarios = run.scenarios
    wait_until(
        lambda: len(run.prometheus.query('up{job="trengo-processor"} == 1')) == len(scenarios),
        30,
        "Prometheus to scrape every processor",
    )
    run.start = time.time()
    actions: dict[int, Callable[[], None]] = {
        2: lambda: _freeze_while_dead_lettering(scenarios["stalled"], traffic, stall_broker),
        4: scenarios["gone"].processor.kill,
        8: lambda: scenarios["overload"].sandbox.set_faults(
            storm_429_requests=12, storm_retry_after_seconds=1
        ),
        12: lambda: traffic.send(scenarios["healthy"], [BAD_JSON]),
    }
    second = 0
    while True:
        elapsed = time.time() - run.start
        done = run.fired >= EXPECTED_ALERTS and elapsed >= MIN_RUN_SECONDS
        if done or elapsed > RUN_TIMEOUT_SECONDS:
            break
        _send_round(scenarios, traffic, second)
        traffic.flush()
        if second in actions:
            actions[second]()
        _record_alerts(run)
        second += 1
        time.sleep(max(0.0, run.start + second - time.time()))


def _send_round(scenarios: dict[str, Scenario], traffic: Traffic, second: int) -> None:
    regular = [f"regular-{n}" for n in range(4)]
    healthy = [identify_record(user, name="Regular Customer") for user in regular]
    healthy += [order_record(user, f"{user}-{second}") for user in regular[2:]]
    healthy += [page_view(regular[0]), unmapped_track(regular[1])]
    traffic.send(scenarios["healthy"], healthy)
    overload = [f"busy-{second}-{n}" for n in range(3)]
    traffic.send(scenarios["overload"], [identify_record(user) for user in overload])
    if second < 20:
        traffic.send(scenarios["dead_letters"], [identify_record(f"nowhere-{second}")])


def _freeze_while_dead_lettering(
    scenario: Scenario, traffic: Traffic, broker: EmbeddedBroker
) -> None:
    """An order whose contact Trengo forbids, answered after a second per call: the broker
    freezes before its dead letter is produced, so the event never finishes."""
    traffic.send(scenario, [order_record("stuck", "stuck-1")])
    traffic.flush()
    wait_until(
        lambda: scenario.processor.metric("trengo_processor_inflight_events") >= 1,
        STALLED_SESSION_MS / 1000,
        "the stalled scenario to poll its event",
    )
    os.killpg(broker.pid, signal.SIGSTOP)


def _thaw(broker: EmbeddedBroker) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(broker.pid, signal.SIGCONT)


def _record_alerts(run: Run) -> None:
    for alert in run.prometheus.active_alerts():
        name, namespace = alert["labels"]["alertname"], alert["labels"].get("namespace", "")
        run.active_in.setdefault(namespace, set()).add(f"{name} ({alert['state']})")
        if alert["state"] == "firing":
            run.fired.add((name, namespace))


@pytest.mark.parametrize(("alert", "namespace"), sorted(EXPECTED_ALERTS))
def test_each_alert_fires_in_its_scenario(run: Run, alert: str, namespace: str) -> None:
    assert (alert, namespace) in run.fired, run.active_in


def test_no_alert_is_even_pending_in_a_healthy_run(run: Run) -> None:
    assert run.active_in.get("healthy", set()) == set()


def test_the_dead_letter_halt_is_not_reported_as_a_refused_token(run: Run) -> None:
    assert ("TrengoProcessorDestinationDown", "dead_letters") not in run.fired


PanelCheck = Callable[[list[Series]], None]


def values_within(low: float, high: float, *, above_low: bool = False) -> PanelCheck:
    """Every point within [low, high] (or (low, high])."""

    def check(shown: list[Series]) -> None:
        values = [value for series in shown for _t, value in series.points]
        outside = [v for v in values if not (low < v <= high if above_low else low <= v <= high)]
        assert outside == [], f"outside [{low}, {high}]: {outside[:10]}"

    return check


def last_within(low: float, high: float) -> PanelCheck:
    """The last value of every series (what a stat panel shows) within [low, high]."""

    def check(shown: list[Series]) -> None:
        lasts = [series.last for series in shown]
        assert all(low <= last <= high for last in lasts), f"last values {lasts}"

    return check


def sum_of_lasts(expected: float) -> PanelCheck:
    """The last values of all series (one per partition) add up to ``expected``."""

    def check(shown: list[Series]) -> None:
        assert sum(series.last for series in shown) == expected, [s.last for s in shown]

    return check


def positive_for(label: str | None = None, *values: str) -> PanelCheck:
    """Some point above 0 in the series of each label value (or in any series)."""

    def check(shown: list[Series]) -> None:
        peaks: dict[str, float] = {}
        for series in shown:
            key = series.labels.get(label, "") if label else ""
            peaks[key] = max(peaks.get(key, 0.0), *(value for _t, value in series.points))
        for value in values or ("",):
            assert peaks.get(value, 0) > 0, f"no rate above 0 for {label}={value!r}: {peaks}"

    return check


# Per panel title: the namespace whose scenario makes the panel meaningful, and what it must show.
PANEL_CHECKS: dict[str, list[tuple[str, PanelCheck]]] = {
    "Destination": [("healthy", last_within(1, 1)), ("halted", last_within(0, 0))],
    "Events / s": [("healthy", positive_for())],
    "Calls per event": [("healthy", values_within(0, 3, above_low=True))],
    "Consumer lag": [("halted", last_within(HALTED_BACKLOG, HALTED_BACKLOG))],
    "Since last commit": [("healthy", last_within(0, 5))],
    "In flight": [("halted", last_within(1, HALTED_BACKLOG))],
    "Throughput by outcome": [
        ("healthy", positive_for("outcome", "delivered", "skipped", "dead_lettered"))
    ],
    "Calls per event by operation": [("healthy", values_within(0, 3))],
    "Rate-limit headroom": [("healthy", last_within(1, SANDBOX_RATE_LIMIT))],
    "Throttled time": [("overload", positive_for())],
    "Trengo requests by status": [("overload", positive_for("status", "429", "201"))],
    "Trengo request duration p95": [("healthy", values_within(0, 10, above_low=True))],
    "Consumer lag by partition": [("halted", sum_of_lasts(HALTED_BACKLOG))],
    "Dead letters by stage": [
        ("healthy", positive_for("stage", "decode")),
        ("dead_letters", positive_for("stage", "deliver")),
    ],
    "Delivery latency": [("healthy", values_within(0, 60, above_low=True))],
    "Retries by reason": [("overload", positive_for("reason", "http_429"))],
    "Destination up by pod": [("healthy", last_within(1, 1)), ("halted", last_within(0, 0))],
    "In-flight events and paused partitions": [("halted", last_within(1, HALTED_BACKLOG))],
    "Contact cache hit ratio": [("healthy", values_within(0, 1)), ("healthy", positive_for())],
    "Updates skipped by reason": [("healthy", positive_for("reason", "unchanged"))],
    "Stalled partitions": [("stalled", positive_for())],
    "Buffered record bytes": [("halted", last_within(1, 1_000_000))],
    "Skipped by reason": [("healthy", positive_for("reason", "message_type", "unmapped_event"))],
}


def test_every_panel_has_a_plausibility_check() -> None:
    assert set(PANEL_CHECKS) == {query.panel for query in panel_queries()}


@pytest.mark.parametrize("query", panel_queries(), ids=lambda q: f"{q.panel}/{q.legend}")
def test_every_panel_query_shows_plausible_data(run: Run, query: PanelQuery) -> None:
    shown = [series for series in run.panel(query) if series.points]
    assert shown, f"{query.panel}: no data for {query.for_namespace()}"
    for namespace, check in PANEL_CHECKS[query.panel]:
        in_namespace = [series for series in run.panel(query, namespace) if series.points]
        assert in_namespace, f"{query.panel}: no data in {namespace}"
        check(in_namespace)


def test_the_lag_of_all_namespaces_adds_up_every_deployment(run: Run) -> None:
    """Deployments number their partitions alike: with "All" selected, partition 0 of one is
    not partition 0 of another, so the stat must add up both."""
    (stat,) = [query for query in panel_queries() if query.panel == "Consumer lag"]
    (shown,) = run.panel(stat)
    (every_partition,) = run.prometheus.query_range(
        "sum(trengo_processor_consumer_lag)", run.start, run.end
    )
    assert shown.points[-1] == every_partition.points[-1]
