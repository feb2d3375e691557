"""Benchmark ``budget``: Trengo calls per event, and how much of the rate budget is used.

Method: a seeded workload (``bench.workload``) is produced in full to a fresh 6-partition topic,
so the processors are backlogged from their first poll; then 1 processor (and, on a fresh
topic, group and sandbox state, 3 processors sharing one API token) run as subprocesses until
the group has committed every offset. The Trengo sandbox runs in its own process with its rate
limit on, scaled up from Trengo's 120/min so a run takes minutes (the ratios are what matter);
the processors' ``trengo.requests_per_minute`` matches it. Everything is counted from the
sandbox's recording of the requests it answered, not from the processors' own counts.

Budget used while backlogged: the sandbox counts calls per token in fixed 60 s windows, each
opened by the first call after the previous one ended (Laravel's throttle). The windows are
rebuilt from the recorded arrival times; the processors are backlogged from the first window's
start to the last window's start (the last window only drains what is left). The share is
accepted calls in that interval / (limit x its length in minutes): time between windows, when
nothing was sent, counts as budget lost.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.report import markdown_table
from bench.rudderstack import rudderstack_calls
from bench.stack import (
    ProcessorFleet,
    SandboxProcess,
    count_records,
    dead_letter_topic,
    new_topic,
    processor_config,
    produce,
    wait_for_commits,
)
from bench.workload import DESTINATION, MAPPED_EVENTS, Workload, WorkloadSpec, generate
from devkit.sandbox.broker import KafkaTarget, kafka_target

TITLE = "API budget"
WINDOW_SECONDS = 60.0
PARTITIONS = 6
REPLICA_COUNTS = (1, 3)
TOKEN = "bench-token"
REFUSED = 429
# Targets of issue 6 ("Done when").
MAX_CALLS_PER_EVENT = 1.0
MIN_BUDGET_SHARE = 0.95
MAX_REFUSED_SHARE = 0.005


@dataclass(frozen=True, slots=True)
class BudgetScale:
    """The workload and the sandbox's limit and latency of one benchmark size."""

    workload: WorkloadSpec
    requests_per_minute: int
    latency_ms: float


FULL = BudgetScale(WorkloadSpec(users=2_000, events=20_000), 6_000, 100.0)
# One full window per run (about 3,800 calls against 3,600 a minute), to finish in minutes.
QUICK = BudgetScale(WorkloadSpec(users=500, events=4_000), 3_600, 100.0)


@dataclass(frozen=True, slots=True)
class Arrival:
    """One request as the sandbox recorded it: when it arrived, and whether it was refused."""

    at: float
    refused: bool


@dataclass(frozen=True, slots=True)
class BudgetUse:
    """Accepted calls per rebuilt rate window, and the backlogged interval (module docstring)."""

    limit: int
    window_calls: tuple[int, ...]
    backlogged_seconds: float

    @property
    def backlogged_calls(self) -> int:
        """Accepted calls in every window but the last."""
        return sum(self.window_calls[:-1])

    @property
    def share(self) -> float | None:
        """Share of the budget used while backlogged; None without a full window."""
        if self.backlogged_seconds <= 0:
            return None
        return self.backlogged_calls / (self.limit * self.backlogged_seconds / WINDOW_SECONDS)


def budget_use(arrivals: Sequence[Arrival], limit: int) -> BudgetUse:
    """Rebuild the sandbox's rate windows from the arrivals and measure the budget used."""
    window_starts: list[float] = []
    window_calls: list[int] = []
    for arrival in sorted(arrivals, key=lambda arrival: arrival.at):
        if not window_starts or arrival.at >= window_starts[-1] + WINDOW_SECONDS:
            window_starts.append(arrival.at)
            window_calls.append(0)
        if not arrival.refused:
            window_calls[-1] += 1
    backlogged = window_starts[-1] - window_starts[0] if window_starts else 0.0
    return BudgetUse(limit, tuple(window_calls), backlogged)


@dataclass(frozen=True, slots=True)
class RunResult:
    """One run of the workload through ``replicas`` processors."""

    replicas: int
    events: int
    calls_by_route: Counter[str]
    refused: int
    budget: BudgetUse
    wall_seconds: float
    contacts: int
    expected_contacts: int
    tickets: int
    expected_tickets: int
    wrong_names: int
    dead_letters: int
    exit_codes: tuple[int, ...]

    @property
    def calls(self) -> int:
        """Every API request the sandbox answered, refused ones included."""
        return sum(self.calls_by_route.values())

    @property
    def calls_per_event(self) -> float:
        """Calls per produced event."""
        return self.calls / self.events

    @property
    def delivered_everything(self) -> bool:
        """One contact per user with the user's last name, one ticket per track, no dead
        letters."""
        return (
            self.contacts == self.expected_contacts
            and self.tickets == self.expected_tickets
            and self.wrong_names == 0
            and self.dead_letters == 0
        )


def run(quick: bool) -> str:
    """Run the benchmark at full (or quick) scale; its Markdown section."""
    scale = QUICK if quick else FULL
    workload = generate(scale.workload)
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="bench-budget-") as workdir,
        kafka_target() as kafka,
        SandboxProcess(
            Path(workdir),
            requests_per_minute=scale.requests_per_minute,
            latency_ms=scale.latency_ms,
            token=TOKEN,
        ) as sandbox,
    ):
        results = [
            _run_once(
                kafka,
                sandbox=sandbox,
                workload=workload,
                replicas=replicas,
                scale=scale,
                workdir=Path(workdir),
            )
            for replicas in REPLICA_COUNTS
        ]
        kafka_kind = kafka.kind
    elapsed = time.monotonic() - started
    return _section(scale, workload, results, kafka_kind, elapsed)


def _run_once(
    kafka: KafkaTarget,
    *,
    sandbox: SandboxProcess,
    workload: Workload,
    replicas: int,
    scale: BudgetScale,
    workdir: Path,
) -> RunResult:
    sandbox.reset()
    topic = new_topic(kafka, f"bench-budget-{replicas}", PARTITIONS)
    end_offsets = produce(kafka, topic, ((event.key, event.value) for event in workload.events))
    config = processor_config(
        kafka,
        base_url=sandbox.base_url,
        token=TOKEN,
        requests_per_minute=scale.requests_per_minute,
        topic=topic,
        group_id=topic,
        destination=DESTINATION,
    )
    # Generous: twice the time one call per event takes at the limit, plus start-up.
    timeout = 2 * len(workload.events) / scale.requests_per_minute * WINDOW_SECONDS + 120
    started = time.monotonic()
    with ProcessorFleet(workdir, config, replicas) as fleet:
        wait_for_commits(
            kafka,
            group_id=topic,
            topic=topic,
            end_offsets=end_offsets,
            fleet=fleet,
            timeout_seconds=timeout,
        )
        wall_seconds = time.monotonic() - started
        exit_codes = tuple(fleet.stop())
    dead_letters = count_records(kafka, dead_letter_topic(topic), range(PARTITIONS))
    return _result(
        sandbox,
        workload,
        scale,
        replicas=replicas,
        wall_seconds=wall_seconds,
        dead_letters=dead_letters,
        exit_codes=exit_codes,
    )


def _result(
    sandbox: SandboxProcess,
    workload: Workload,
    scale: BudgetScale,
    *,
    replicas: int,
    wall_seconds: float,
    dead_letters: int,
    exit_codes: tuple[int, ...],
) -> RunResult:
    """What the sandbox recorded and holds after the run, against what the workload asked."""
    recorded = sandbox.recorded_requests()
    state = sandbox.state()
    contact_names = {contact["email"]: contact["name"] for contact in state["contacts"]}
    return RunResult(
        replicas=replicas,
        events=len(workload.events),
        calls_by_route=Counter(
            f"{request['method']} {request['route'].removeprefix('/api/v2')}"
            for request in recorded
        ),
        refused=sum(1 for request in recorded if request["status"] == REFUSED),
        budget=budget_use(
            [Arrival(request["at"], request["status"] == REFUSED) for request in recorded],
            scale.requests_per_minute,
        ),
        wall_seconds=wall_seconds,
        contacts=state["counts"]["contacts"],
        expected_contacts=workload.spec.users,
        tickets=state["counts"]["tickets"],
        expected_tickets=workload.count("track"),
        wrong_names=sum(
            1 for email, name in final_names(workload).items() if contact_names.get(email) != name
        ),
        dead_letters=dead_letters,
        exit_codes=exit_codes,
    )


def final_names(workload: Workload) -> dict[str, str]:
    """Each user's email and the name of the user's last identify."""
    names: dict[str, str] = {}
    for event in workload.events:
        if event.kind != "track":
            traits = json.loads(event.value)["traits"]
            names[traits["email"]] = traits["name"]
    return names


def _section(
    scale: BudgetScale,
    workload: Workload,
    results: Sequence[RunResult],
    kafka_kind: str,
    elapsed_seconds: float,
) -> str:
    rudderstack = rudderstack_calls((event.value for event in workload.events), DESTINATION)
    parts = [
        f"## {TITLE} (`python -m bench budget{' --quick' if scale is QUICK else ''}`)",
        _setup_text(scale, workload, kafka_kind, elapsed_seconds),
        _results_table(results, len(workload.events), rudderstack),
        _detail_table(results),
        _targets_text(results, rudderstack / len(workload.events)),
        _definitions_text(scale),
    ]
    return "\n\n".join(parts) + "\n"


def _setup_text(
    scale: BudgetScale, workload: Workload, kafka_kind: str, elapsed_seconds: float
) -> str:
    spec = workload.spec
    return (
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPUs, Kafka "
        f"{kafka_kind}, whole benchmark {elapsed_seconds / 60:.1f} min.\n\n"
        f"Workload (seed {spec.seed}): {spec.users:,} users, {spec.events:,} events, key = "
        f"userId, {PARTITIONS} partitions, all produced before the processors start. "
        f"{workload.count('first_identify', 'repeat_identify', 'rename'):,} identifies "
        f"({workload.count('first_identify'):,} first ones, {workload.count('rename'):,} "
        f"changing the name, {workload.count('repeat_identify'):,} repeating it) and "
        f"{workload.count('track'):,} tracks of {len(MAPPED_EVENTS)} mapped events; email "
        "channel, dedup on.\n\n"
        f"Trengo sandbox in its own process: {scale.requests_per_minute:,} requests/min per "
        f"token (Trengo's real limit, 120, scaled up), {scale.latency_ms:.0f} ms latency per "
        f"request. Processors: `trengo.requests_per_minute: {scale.requests_per_minute}`, "
        "other settings at their defaults (`delivery.max_in_flight: 256`)."
    )


def _results_table(results: Sequence[RunResult], events: int, rudderstack: int) -> str:
    rows = [
        [
            "trengo-processor",
            str(result.replicas) + (" (one token)" if result.replicas > 1 else ""),
            f"{result.events:,}",
            f"{result.calls:,}",
            f"{result.calls_per_event:.3f}",
            f"{result.refused:,} ({result.refused / max(1, result.calls):.2%})",
            _share_text(result.budget.share),
            f"{result.wall_seconds:.0f} s",
        ]
        for result in results
    ]
    rows.append(
        [
            "RudderStack (computed)",
            "-",
            f"{events:,}",
            f"{rudderstack:,}",
            f"{rudderstack / events:.3f}",
            "-",
            "-",
            "-",
        ]
    )
    headers = [
        "flow",
        "replicas",
        "events",
        "Trengo calls",
        "calls per event",
        "server 429s",
        "budget used while backlogged",
        "wall time",
    ]
    return markdown_table(headers, rows)


def _detail_table(results: Sequence[RunResult]) -> str:
    routes = sorted({route for result in results for route in result.calls_by_route})
    headers = ["replicas", *[f"`{route}`" for route in routes], "accepted per 60 s window"]
    headers += ["contacts", "tickets", "wrong names", "dead letters", "exit codes"]
    rows = [
        [
            str(result.replicas),
            *[f"{result.calls_by_route[route]:,}" for route in routes],
            ", ".join(f"{calls:,}" for calls in result.budget.window_calls),
            f"{result.contacts:,} of {result.expected_contacts:,}",
            f"{result.tickets:,} of {result.expected_tickets:,}",
            f"{result.wrong_names:,}",
            f"{result.dead_letters:,}",
            " ".join(str(code) for code in result.exit_codes),
        ]
        for result in results
    ]
    return "Calls by endpoint, windows and correctness:\n\n" + markdown_table(headers, rows)


def _targets_text(results: Sequence[RunResult], rudderstack_per_event: float) -> str:
    lines = [f"Targets (issue 6; RudderStack's flow: {rudderstack_per_event:.2f} calls/event):", ""]
    for result in results:
        verdicts = ", ".join(
            f"{name} {'met' if met else 'MISSED'}" for name, met in _checks(result).items()
        )
        lines.append(f"* {result.replicas} replica(s): {verdicts}.")
    return "\n".join(lines)


def _checks(result: RunResult) -> dict[str, bool]:
    share = result.budget.share
    return {
        f"calls/event ≤ {MAX_CALLS_PER_EVENT}": result.calls_per_event <= MAX_CALLS_PER_EVENT,
        f"budget used ≥ {MIN_BUDGET_SHARE:.0%}": share is not None and share >= MIN_BUDGET_SHARE,
        f"429s ≤ {MAX_REFUSED_SHARE:.1%} of calls": result.refused
        <= MAX_REFUSED_SHARE * result.calls,
        "every event delivered": result.delivered_everything,
    }


def _share_text(share: float | None) -> str:
    return "n/a (no full window)" if share is None else f"{share:.1%}"


def _definitions_text(scale: BudgetScale) -> str:
    limit = scale.requests_per_minute
    return (
        "Definitions. *Trengo calls*: every API request the sandbox answered, 429s included. "
        "*Budget used while backlogged*: the sandbox counts calls per token in fixed 60 s "
        "windows, each opened by the first call after the previous one ended; the windows are "
        "rebuilt from the recorded arrival times. The processors are backlogged from the first "
        "window's start to the last window's start (the last window only drains the rest), and "
        f"the share is the calls accepted in that interval / ({limit:,} x its length in "
        "minutes), so idle time between windows counts as lost budget. *Wall time*: processor "
        "start to every offset committed (includes the consumer group join). *RudderStack "
        "(computed)*: the calls RudderStack's Trengo destination makes for the same events "
        "(search + write for every dedup identify and mapped track, `bench/rudderstack.py`). "
        "*Wrong names*: users whose Trengo contact does not carry the name of their last "
        "identify."
    )
