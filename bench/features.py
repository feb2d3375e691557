"""Benchmark ``features``: the Trengo calls per event that each opt-in feature adds.

Method: one seeded workload (``generate``) of users who each send 2 identifies, 1 group and
4 ``Order Completed`` tracks is drained once per configuration (``CONFIGURATIONS``): all
features off (RudderStack's own config), each feature on its own on top of that, and
everything on. Every configuration gets its own copy of the topic, one processor with a fresh
consumer group and a reset sandbox with no rate limit and no latency: this benchmark counts
calls, it does not time them. Calls are counted by the sandbox (per route, as it records
them), not by the processor.

What each configuration should cost and leave in Trengo is computed from the workload's spec
(``expected_counts``) and compared with what was measured (``surprises``); any difference is
reported in the section as unexpected.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

from bench.drain import TOKEN, UNLIMITED_REQUESTS_PER_MINUTE
from bench.report import markdown_table
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
from bench.workload import EMAIL_CHANNEL_ID
from devkit.sandbox.broker import KafkaTarget, kafka_target

TITLE = "Cost of the opt-in features"
PARTITIONS = 6
Feature = Literal["custom_fields", "profiles", "message", "labels"]
EventKind = Literal["identify", "group", "track"]
FEATURES: tuple[Feature, ...] = get_args(Feature)
T = TypeVar("T")

# The sandbox's default custom fields (contact: Plan, Company; profile: External ID) and labels.
PLAN_FIELD, COMPANY_FIELD, PROFILE_KEY_FIELD = 1001, 1002, 2001
LABELS = ("order", "vip")
TRACK_EVENT = "Order Completed"
SUBJECT = "Order {{ order_id }} completed"
MESSAGE = "Order {{ order_id }}: {{ total }} EUR"
CUSTOM_FIELD_MAP = (
    {"trait": "plan", "fieldId": PLAN_FIELD},
    {"trait": "company", "fieldId": COMPANY_FIELD},
)
# Routes as the sandbox records them, without the /api/v2 prefix.
CREATE_CONTACT = "POST /channels/{channel_id}/contacts"
SET_CONTACT_FIELD = "POST /contacts/{contact_id}/custom_fields"
SEARCH_PROFILES = "GET /profiles"
LIST_CHANNELS = "GET /channels"
CREATE_PROFILE = "POST /profiles"
SET_PROFILE_FIELD = "POST /profiles/{profile_id}/custom_fields"
ATTACH_CONTACT = "POST /profiles/{profile_id}/contacts"
CREATE_TICKET = "POST /tickets"
POST_MESSAGE = "POST /tickets/{ticket_id}/messages"
LIST_LABELS = "GET /labels"
LABEL_TICKET = "POST /tickets/{ticket_id}/labels"
_API_PREFIX = "/api/v2"
_PLANS = ("free", "pro", "enterprise")
_FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Margaret", "Donald")
_LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Knuth")
_START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
# Seconds allowed per event on top of a fixed start-up allowance, before a run is declared hung.
_START_SECONDS = 120.0
_SECONDS_PER_EVENT = 0.02


@dataclass(frozen=True, slots=True)
class FeatureWorkloadSpec:
    """How many users, how they group into companies, how many change plan; the seed."""

    users: int
    orders_per_user: int = 4
    users_per_company: int = 20
    plan_change_share: float = 0.2
    seed: int = 10

    @property
    def companies(self) -> int:
        """Companies (group ids); each has at least one member."""
        return max(1, self.users // self.users_per_company)

    @property
    def plan_changes(self) -> int:
        """Users whose second identify carries another plan."""
        return round(self.users * self.plan_change_share)

    @property
    def events(self) -> int:
        """Events in the workload: 2 identifies, 1 group and the orders of every user."""
        return self.users * (3 + self.orders_per_user)

    @property
    def tickets(self) -> int:
        """Tracks, each opening a ticket."""
        return self.users * self.orders_per_user


FULL = FeatureWorkloadSpec(users=1_000)
QUICK = FeatureWorkloadSpec(users=200)


@dataclass(frozen=True, slots=True)
class FeatureEvent:
    """One Kafka record of the workload and what kind of event it is."""

    key: bytes
    value: bytes
    kind: EventKind


@dataclass(frozen=True, slots=True)
class FeatureWorkload:
    """The generated events, in the order they are produced."""

    spec: FeatureWorkloadSpec
    events: tuple[FeatureEvent, ...]

    def count(self, kind: EventKind) -> int:
        """How many events are of ``kind``."""
        return sum(1 for event in self.events if event.kind == kind)


@dataclass(frozen=True, slots=True)
class _User:
    number: int
    name: str
    company: int
    plans: tuple[str, str]  # in the first and the second identify

    @property
    def user_id(self) -> str:
        return f"user-{self.number:06d}"

    @property
    def email(self) -> str:
        return f"user{self.number:06d}@bench.example"

    @property
    def group_id(self) -> str:
        # Fixed width: no company's id is a substring of another's (profile search).
        return f"company-{self.company:04d}"

    @property
    def company_name(self) -> str:
        return f"Company {self.company:04d}"


def generate(spec: FeatureWorkloadSpec) -> FeatureWorkload:
    """The workload ``spec`` describes (the same bytes for the same spec).

    Each user's events start with an identify; the second identify never directly follows
    the first (the processor would merge the two into one call). Users are interleaved at
    random, each keeping its own order.
    """
    rng = random.Random(spec.seed)
    users = _users(spec, rng)
    per_user = [_user_events(user, spec, rng) for user in users]
    ordered = _interleave(per_user, rng)
    events = tuple(_stamped(index, kind, body) for index, (kind, body) in enumerate(ordered))
    return FeatureWorkload(spec, events)


def _users(spec: FeatureWorkloadSpec, rng: random.Random) -> list[_User]:
    """Users with names, a company each (companies filled in turn) and their two plans."""
    shuffled = rng.sample(range(spec.users), spec.users)
    company_of = {user: position % spec.companies for position, user in enumerate(shuffled)}
    changing = set(rng.sample(range(spec.users), spec.plan_changes))
    users = []
    for number in range(spec.users):
        first_plan = rng.choice(_PLANS)
        second_plan = (
            rng.choice([plan for plan in _PLANS if plan != first_plan])
            if number in changing
            else first_plan
        )
        name = f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}"
        users.append(_User(number, name, company_of[number], (first_plan, second_plan)))
    return users


def _user_events(
    user: _User, spec: FeatureWorkloadSpec, rng: random.Random
) -> list[tuple[EventKind, dict[str, Any]]]:
    """One user's events in order: identify first, the second identify never right after it."""
    rest: list[tuple[EventKind, dict[str, Any]]] = [("group", _group(user))]
    rest += [("track", _track(user, order, rng)) for order in range(spec.orders_per_user)]
    rng.shuffle(rest)
    rest.insert(rng.randint(1, len(rest)), ("identify", _identify(user, user.plans[1])))
    return [("identify", _identify(user, user.plans[0])), *rest]


def _interleave(sequences: Sequence[Sequence[T]], rng: random.Random) -> list[T]:
    """A uniformly random merge of the sequences that keeps each one's order."""
    turns = [number for number, sequence in enumerate(sequences) for _ in sequence]
    rng.shuffle(turns)
    positions = [0] * len(sequences)
    merged: list[T] = []
    for number in turns:
        merged.append(sequences[number][positions[number]])
        positions[number] += 1
    return merged


def _identify(user: _User, plan: str) -> dict[str, Any]:
    traits = {
        "name": user.name,
        "email": user.email,
        "plan": plan,
        "company": user.company_name,
    }
    return {"type": "identify", "userId": user.user_id, "traits": traits}


def _group(user: _User) -> dict[str, Any]:
    return {
        "type": "group",
        "userId": user.user_id,
        "groupId": user.group_id,
        "traits": {"name": user.company_name},
        "context": {"traits": {"email": user.email}},
    }


def _track(user: _User, order: int, rng: random.Random) -> dict[str, Any]:
    return {
        "type": "track",
        "event": TRACK_EVENT,
        "userId": user.user_id,
        "properties": {"order_id": f"{user.number:06d}-{order}", "total": rng.randrange(5, 900)},
        "context": {"traits": {"email": user.email}},
    }


def _stamped(index: int, kind: EventKind, body: Mapping[str, Any]) -> FeatureEvent:
    document = {
        **body,
        "messageId": f"features-{index:07d}",
        "anonymousId": f"anon-{body['userId']}",
        "timestamp": (_START + timedelta(milliseconds=index)).isoformat(),
        "context": {**body.get("context", {}), "library": {"name": "bench"}},
    }
    return FeatureEvent(body["userId"].encode(), json.dumps(document).encode(), kind)


@dataclass(frozen=True, slots=True)
class Configuration:
    """One destination config: a label for the tables and the features it turns on."""

    label: str
    features: frozenset[Feature]


CONFIGURATIONS = (
    Configuration("(1) all off (RudderStack's config)", frozenset()),
    Configuration("(2) + customFieldMap (plan, company)", frozenset({"custom_fields"})),
    Configuration("(3) + enableProfiles", frozenset({"profiles"})),
    Configuration("(4) + ticket message (note)", frozenset({"message"})),
    Configuration(f"(5) + {len(LABELS)} labels", frozenset({"labels"})),
    Configuration("(6) everything on", frozenset(FEATURES)),
)


def destination(features: Iterable[Feature]) -> dict[str, Any]:
    """The destination config (RudderStack's keys, no token) with ``features`` turned on."""
    enabled = frozenset(features)
    template: dict[str, Any] = {"from": TRACK_EVENT, "to": SUBJECT}
    if "message" in enabled:
        template["message"] = MESSAGE
    if "labels" in enabled:
        template["labels"] = list(LABELS)
    config: dict[str, Any] = {
        "channelId": str(EMAIL_CHANNEL_ID),
        "channelIdentifier": "email",
        "enableDedup": True,
        "eventTemplateMap": [template],
    }
    if "custom_fields" in enabled:
        config["customFieldMap"] = [dict(mapping) for mapping in CUSTOM_FIELD_MAP]
    if "profiles" in enabled:
        config |= {"enableProfiles": True, "profileKeyFieldId": PROFILE_KEY_FIELD}
    return config


@dataclass(frozen=True, slots=True)
class Counts:
    """What a run cost and left: calls by route, failed calls, dead letters, Trengo's records."""

    calls_by_route: Mapping[str, int]
    failed_calls: int
    dead_letters: int
    records: Mapping[str, int]  # contacts, tickets, messages, ticket labels, profiles, members

    @property
    def calls(self) -> int:
        """Every API request the sandbox answered."""
        return sum(self.calls_by_route.values())


def expected_counts(spec: FeatureWorkloadSpec, features: Iterable[Feature]) -> Counts:
    """What draining the workload of ``spec`` with ``features`` on should cost and leave."""
    enabled = frozenset(features)
    users, tickets, companies = spec.users, spec.tickets, spec.companies
    calls = Counter({CREATE_CONTACT: users, CREATE_TICKET: tickets})
    records = dict.fromkeys(("messages", "ticket labels", "profiles", "profile members"), 0)
    records |= {"contacts": users, "tickets": tickets}
    if "custom_fields" in enabled:
        calls[SET_CONTACT_FIELD] = len(CUSTOM_FIELD_MAP) * users + spec.plan_changes
    if "profiles" in enabled:
        calls.update(dict.fromkeys((CREATE_PROFILE, SET_PROFILE_FIELD), companies))
        # A new company is searched by key, then by name (the sandbox's term matches names only).
        calls[SEARCH_PROFILES] = 2 * companies
        calls[LIST_CHANNELS] = 1  # the channel's type for the attach calls, once per process
        calls[ATTACH_CONTACT] = users
        records |= {"profiles": companies, "profile members": users}
    if "message" in enabled:
        calls[POST_MESSAGE] = tickets
        records["messages"] = tickets
    if "labels" in enabled:
        calls[LIST_LABELS] = 1
        calls[LABEL_TICKET] = len(LABELS) * tickets
        records["ticket labels"] = len(LABELS) * tickets
    dead_letters = 0 if "profiles" in enabled else users  # the groups, rejected when off
    return Counts(calls, failed_calls=0, dead_letters=dead_letters, records=records)


def measured_counts(state: Mapping[str, Any], dead_letters: int) -> Counts:
    """The counts of a run from the sandbox's ``GET /__admin/state`` and the dead letters."""
    calls: Counter[str] = Counter()
    failed = 0
    for entry in state["request_counts"]:
        calls[f"{entry['method']} {entry['route'].removeprefix(_API_PREFIX)}"] += entry["count"]
        if not 200 <= entry["status"] < 300:
            failed += entry["count"]
    tickets, profiles = state["tickets"], state["profiles"]
    records = {
        "contacts": len(state["contacts"]),
        "tickets": len(tickets),
        "messages": sum(len(ticket["messages"]) for ticket in tickets),
        "ticket labels": sum(len(ticket["labels"]) for ticket in tickets),
        "profiles": len(profiles),
        "profile members": sum(len(profile["contacts"]) for profile in profiles),
    }
    return Counts(calls, failed, dead_letters, records)


@dataclass(frozen=True, slots=True)
class Run:
    """One configuration's drain of the workload."""

    configuration: Configuration
    events: int
    counts: Counts
    expected: Counts
    exit_codes: tuple[int, ...]

    @property
    def calls_per_event(self) -> float:
        """Calls per produced event."""
        return self.counts.calls / self.events


def surprises(run: Run) -> list[str]:
    """Every way the run differs from what was expected; empty when it is as expected."""
    measured, expected = run.counts, run.expected
    found = [
        f"`{route}`: {measured.calls_by_route.get(route, 0):,} calls, expected "
        f"{expected.calls_by_route.get(route, 0):,}"
        for route in sorted({*measured.calls_by_route, *expected.calls_by_route})
        if measured.calls_by_route.get(route, 0) != expected.calls_by_route.get(route, 0)
    ]
    found += [
        f"{name}: {measured.records.get(name, 0):,} in Trengo, expected {expected.records[name]:,}"
        for name in expected.records
        if measured.records.get(name, 0) != expected.records[name]
    ]
    if measured.failed_calls:
        found.append(f"{measured.failed_calls:,} calls not answered 2xx")
    if measured.dead_letters != expected.dead_letters:
        found.append(f"{measured.dead_letters:,} dead letters, expected {expected.dead_letters:,}")
    if any(run.exit_codes):
        found.append(f"processor exit codes {list(run.exit_codes)}")
    return found


def run(quick: bool) -> str:
    """Run the benchmark at full (or quick) scale; its Markdown section."""
    spec = QUICK if quick else FULL
    workload = generate(spec)
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="bench-features-") as workdir,
        kafka_target() as kafka,
        SandboxProcess(Path(workdir), requests_per_minute=0, latency_ms=0, token=TOKEN) as sandbox,
    ):
        drained = [
            _drain(kafka, sandbox, workload, configuration, Path(workdir))
            for configuration in CONFIGURATIONS
        ]
        dead_letters = _count_dead_letters(kafka, [one.topic for one in drained])
        kafka_kind = kafka.kind
    runs = [one.run(workload, count) for one, count in zip(drained, dead_letters, strict=True)]
    elapsed = time.monotonic() - started
    return section(spec, runs, kafka_kind, elapsed, quick=quick)


@dataclass(frozen=True, slots=True)
class _Drained:
    """A configuration's drained topic, the sandbox's state after it, the exit codes."""

    configuration: Configuration
    topic: str
    state: Mapping[str, Any]
    exit_codes: tuple[int, ...]

    def run(self, workload: FeatureWorkload, dead_letters: int) -> Run:
        """The run, with its dead letters counted and what it should have cost."""
        return Run(
            self.configuration,
            events=len(workload.events),
            counts=measured_counts(self.state, dead_letters),
            expected=expected_counts(workload.spec, self.configuration.features),
            exit_codes=self.exit_codes,
        )


def _drain(
    kafka: KafkaTarget,
    sandbox: SandboxProcess,
    workload: FeatureWorkload,
    configuration: Configuration,
    workdir: Path,
) -> _Drained:
    """Produce the workload to a fresh topic and drain it with one processor."""
    sandbox.reset()
    topic = new_topic(kafka, "bench-features", PARTITIONS)
    end_offsets = produce(kafka, topic, ((event.key, event.value) for event in workload.events))
    config = processor_config(
        kafka,
        base_url=sandbox.base_url,
        token=TOKEN,
        requests_per_minute=UNLIMITED_REQUESTS_PER_MINUTE,
        topic=topic,
        group_id=topic,
        destination=destination(configuration.features),
    )
    with ProcessorFleet(workdir, config, 1) as fleet:
        wait_for_commits(
            kafka,
            group_id=topic,
            topic=topic,
            end_offsets=end_offsets,
            fleet=fleet,
            timeout_seconds=_START_SECONDS + len(workload.events) * _SECONDS_PER_EVENT,
        )
        exit_codes = tuple(fleet.stop())
    return _Drained(configuration, topic, sandbox.state(), exit_codes)


def _count_dead_letters(kafka: KafkaTarget, topics: Sequence[str]) -> list[int]:
    """The dead letters of each drained topic, counted all at once (each count waits until
    its topic stays quiet for a while)."""
    with ThreadPoolExecutor(max_workers=len(topics)) as pool:
        counts = pool.map(
            lambda topic: count_records(kafka, dead_letter_topic(topic), range(PARTITIONS)),
            topics,
        )
        return list(counts)


def section(
    spec: FeatureWorkloadSpec,
    runs: Sequence[Run],
    kafka_kind: str,
    elapsed_seconds: float,
    *,
    quick: bool,
) -> str:
    """The Markdown section of a benchmark run (the first run is the all-off baseline)."""
    parts = [
        f"## {TITLE} (`python -m bench features{' --quick' if quick else ''}`)",
        _setup_text(spec, kafka_kind, elapsed_seconds),
        cost_table(runs),
        _notes_text(spec),
        _check_text(runs),
        "Calls by route (as the sandbox records them):\n\n" + routes_table(runs),
    ]
    return "\n\n".join(parts) + "\n"


def _setup_text(spec: FeatureWorkloadSpec, kafka_kind: str, elapsed_seconds: float) -> str:
    return (
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPUs, Kafka "
        f"{kafka_kind}, whole benchmark {elapsed_seconds / 60:.1f} min.\n\n"
        f"Workload (seed {spec.seed}): {spec.users:,} users, {spec.events:,} events, key = "
        f"userId, {PARTITIONS} partitions, email channel, dedup on. Per user: 2 identifies "
        "with traits name, email, plan and company (the second changes `plan` for "
        f"{spec.plan_changes:,} users and repeats everything for the others), 1 group (groupId "
        f"one of {spec.companies:,} companies, `traits.name` the company's name, the user's "
        f"email in `context.traits`) and {spec.orders_per_user} `{TRACK_EVENT}` tracks "
        "(`order_id`, `total`). Users are interleaved at random; a user's first event is an "
        "identify, and the two identifies of a user are never adjacent (the processor would "
        "merge them into one call).\n\n"
        "Each configuration turns on one feature on top of (1), except (6), which turns on all "
        "of them. Each drains its own copy of the topic with one processor (`python -m "
        "processor run`, a fresh consumer group) against a reset Trengo sandbox with no rate "
        "limit and no latency: calls are counted, not timed."
    )


def cost_table(runs: Sequence[Run]) -> str:
    """Events, outcomes and calls of each configuration; extra calls against the first run."""
    baseline = runs[0].calls_per_event
    headers = [
        "configuration",
        "events",
        "delivered",
        "dead-lettered",
        "Trengo calls",
        "calls per event",
        "extra calls per event vs (1)",
        "check",
    ]
    rows = [
        [
            one.configuration.label,
            f"{one.events:,}",
            f"{one.events - one.counts.dead_letters:,}",
            f"{one.counts.dead_letters:,}",
            f"{one.counts.calls:,}",
            f"{one.calls_per_event:.3f}",
            f"{one.calls_per_event - baseline:+.3f}",
            "**unexpected**" if surprises(one) else "as expected",
        ]
        for one in runs
    ]
    return markdown_table(headers, rows)


def _notes_text(spec: FeatureWorkloadSpec) -> str:
    users, tickets, companies = spec.users, spec.tickets, spec.companies
    per_event = spec.events

    def extra(features: Iterable[Feature]) -> str:
        added = expected_counts(spec, features).calls - expected_counts(spec, ()).calls
        return f"{added:,} calls, +{added / per_event:.3f} per event"

    return "\n".join(
        [
            "Notes and expected costs (checked against the measured counts in code):",
            "",
            "* *Delivered* = events - dead letters (the consumer group committed every offset; no "
            "event type is ignored).",
            f"* (1): one find-or-create per user ({users:,}; the unchanged second identify "
            f"costs nothing) and one ticket per track ({tickets:,}). With `enableProfiles` off "
            f"the {users:,} group events are dead-lettered (`Event type group is not "
            "supported`), exactly as RudderStack rejects them.",
            f"* customFieldMap: one call per mapped field whose value changed for the contact: "
            f"{len(CUSTOM_FIELD_MAP)} per user on the first identify, 1 for each of the "
            f"{spec.plan_changes:,} second identifies that change `plan` "
            f"({extra(['custom_fields'])}).",
            "* enableProfiles: search by key, by name, create and key once per company "
            f"({companies:,} x 4), one channel listing per process (the attach's `type`), then "
            "one attach per member; the user's contact comes from the cache and the name "
            f"never changes, so nothing else ({extra(['profiles'])}, and the groups are "
            "delivered instead of dead-lettered).",
            f"* ticket message: +1 call per ticket ({extra(['message'])}).",
            f"* labels: +1 call per label per ticket ({len(LABELS)} x {tickets:,}) and one "
            f"label listing per process (one page) ({extra(['labels'])}).",
            f"* everything on: the sum of the four ({extra(FEATURES)}).",
        ]
    )


def _check_text(runs: Sequence[Run]) -> str:
    lines = [
        f"* {one.configuration.label}: unexpected: {'; '.join(surprises(one))}."
        for one in runs
        if surprises(one)
    ]
    if not lines:
        return (
            "Check: every configuration made exactly the expected calls on every route, all "
            "answered 2xx, with the expected dead letters and Trengo records (contacts, "
            "tickets, messages, ticket labels, profiles and their members)."
        )
    return "Check: **unexpected** results:\n\n" + "\n".join(lines)


def routes_table(runs: Sequence[Run]) -> str:
    """Calls per route (rows) and configuration (columns)."""
    routes = sorted({route for one in runs for route in one.counts.calls_by_route})
    headers = ["route", *[one.configuration.label.split(" ", 1)[0] for one in runs]]
    rows = [
        [f"`{route}`", *[f"{one.counts.calls_by_route.get(route, 0):,}" for one in runs]]
        for route in routes
    ]
    return markdown_table(headers, rows)
