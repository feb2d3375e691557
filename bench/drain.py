"""Draining a backlog of ``bench.tracks`` events through one flow, measured from the outside.

The parts: Kafka from ``kafka_target``, the Trengo sandbox in its own process with its rate
limit off and no latency, and the flow under test in its own process: the processor
(``python -m processor run``, ``trengo.requests_per_minute`` raised to effectively unlimited) or
the baseline (``python -m bench.baseline``), both with the same ``max_in_flight``. A topic is
produced once and drained by a fresh consumer group per run; before each run the sandbox is
reset and every user's contact created again, so each run starts from the same state.

What a run measures (``Drain``):

* the drain time: from the first to the last API request the sandbox recorded for the flow, so
  the interpreter's start and the consumer group's join (the same for both flows) are left out;
* the flow's CPU time in that interval (user + system of all its threads, sampled every
  ``SAMPLE_SECONDS`` and interpolated), and the sandbox's;
* the calls by route and how many were not answered 2xx. The run is over when the group has
  committed every offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
from httpx_aiohttp import AiohttpTransport

from bench.profile import PySpy
from bench.sampling import ProcessSampler
from bench.stack import (
    BASELINE_PROGRAM,
    PROCESSOR_PROGRAM,
    ProcessorFleet,
    SandboxProcess,
    StackError,
    new_topic,
    processor_config,
    produce,
    wait_for_commits,
)
from bench.stats import Sample, cpu_between
from bench.tracks import TrackSpec, emails, records
from bench.workload import DESTINATION, EMAIL_CHANNEL_ID
from devkit.sandbox.broker import KafkaTarget

Flow = Literal["trengo-processor", "baseline"]

TOKEN = "bench-token"
CONCURRENCY = 256
# trengo.requests_per_minute of the processor: far above anything this machine can send.
UNLIMITED_REQUESTS_PER_MINUTE = 10_000_000
SAMPLE_SECONDS = 0.1
_FLOW_ROUTES = frozenset({"GET /api/v2/contacts", "POST /api/v2/tickets"})
_PROGRAMS: Mapping[Flow, Sequence[str]] = {
    "trengo-processor": PROCESSOR_PROGRAM,
    "baseline": BASELINE_PROGRAM,
}
_CONTACT_CREATION_CONCURRENCY = 32
# Seconds allowed per event on top of a fixed start-up allowance, before a run is declared hung.
_SECONDS_PER_EVENT = 0.002
_START_SECONDS = 120.0


@dataclass(frozen=True, slots=True)
class Topic:
    """A produced topic: its name, partition count and end offsets."""

    name: str
    partitions: int
    events: int
    end_offsets: Mapping[int, int]


@dataclass(frozen=True, slots=True)
class Drain:
    """One flow's run through a whole topic (module docstring)."""

    flow: Flow
    events: int
    partitions: int
    seconds: float
    cpu_seconds: float
    sandbox_cpu_seconds: float
    calls: Counter[str]
    failed_calls: int

    @property
    def events_per_second(self) -> float:
        """Events drained per second of wall time."""
        return self.events / self.seconds

    @property
    def cpu_micros_per_event(self) -> float:
        """The flow's CPU time per event, in microseconds."""
        return self.cpu_seconds / self.events * 1e6

    @property
    def events_per_cpu_second(self) -> float:
        """Events one fully used core would drain at this cost per event."""
        return self.events / self.cpu_seconds


class DrainBench:
    """The sandbox and Kafka of one benchmark, and runs of flows over topics produced here."""

    def __init__(
        self, workdir: Path, kafka: KafkaTarget, sandbox: SandboxProcess, spec: TrackSpec
    ) -> None:
        self._workdir = workdir
        self._kafka = kafka
        self._sandbox = sandbox
        self._spec = spec
        self._run_numbers = itertools.count(1)

    def produce_topic(self, events: int, partitions: int) -> Topic:
        """A fresh topic holding the first ``events`` events of the spec."""
        name = new_topic(self._kafka, f"bench-drain-{events}-{partitions}", partitions)
        spec = TrackSpec(events, self._spec.users, self._spec.seed)
        end_offsets = produce(self._kafka, name, records(spec))
        return Topic(name, partitions, events, end_offsets)

    def drain(
        self, topic: Topic, flow: Flow, *, profile_to: Path | None = None, **overrides: Any
    ) -> Drain:
        """Run ``flow`` over the whole topic with a new group; what it took.

        ``profile_to``: record the flow with py-spy into this file (raw collapsed stacks).
        ``overrides`` are extra config sections (``delivery={...}``) merged over the defaults.
        """
        self._sandbox.reset()
        asyncio.run(create_contacts(self._sandbox, emails(self._spec)))
        first_index = self._spec.users
        group_id = f"{topic.name}-{flow}-{next(self._run_numbers)}"
        config = self._config(topic, group_id, overrides)
        with ProcessorFleet(self._workdir, config, 1, program=_PROGRAMS[flow]) as fleet:
            (pid,) = fleet.pids
            with ProcessSampler([pid, self._sandbox.pid], SAMPLE_SECONDS) as sampler:
                if profile_to is not None:
                    # From the first call on: start-up and the group join cost no event anything.
                    self._wait_for_first_call(first_index, fleet)
                with PySpy(pid, profile_to) if profile_to else contextlib.nullcontext():
                    wait_for_commits(
                        self._kafka,
                        group_id=group_id,
                        topic=topic.name,
                        end_offsets=topic.end_offsets,
                        fleet=fleet,
                        timeout_seconds=_START_SECONDS + topic.events * _SECONDS_PER_EVENT,
                    )
                flow_samples = sampler.samples(pid)
                sandbox_samples = sampler.samples(self._sandbox.pid)
            fleet.stop()
        recorded = self._sandbox.recorded_requests(since=first_index)
        return _drain(flow, topic, recorded, flow_samples, sandbox_samples)

    def _wait_for_first_call(self, first_index: int, fleet: ProcessorFleet) -> None:
        deadline = time.monotonic() + _START_SECONDS
        while not self._sandbox.recorded_requests(since=first_index):
            fleet.check_running()
            if time.monotonic() > deadline:
                raise StackError(f"no call in {_START_SECONDS:.0f} s")
            time.sleep(SAMPLE_SECONDS)

    def _config(self, topic: Topic, group_id: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
        config = processor_config(
            self._kafka,
            base_url=self._sandbox.base_url,
            token=TOKEN,
            requests_per_minute=UNLIMITED_REQUESTS_PER_MINUTE,
            topic=topic.name,
            group_id=group_id,
            destination=DESTINATION,
        )
        config["delivery"] = {"max_in_flight": CONCURRENCY}
        for section, values in overrides.items():
            config[section] = {**config.get(section, {}), **values}
        return config


def _drain(
    flow: Flow,
    topic: Topic,
    recorded: Sequence[Mapping[str, Any]],
    flow_samples: Sequence[Sample],
    sandbox_samples: Sequence[Sample],
) -> Drain:
    calls = [
        request for request in recorded if f"{request['method']} {request['route']}" in _FLOW_ROUTES
    ]
    if not calls:
        raise RuntimeError(f"{flow} made no calls for {topic.name}")
    arrivals = [call["at"] for call in calls]
    start, end = min(arrivals), max(arrivals)
    return Drain(
        flow=flow,
        events=topic.events,
        partitions=topic.partitions,
        seconds=end - start,
        cpu_seconds=cpu_between(flow_samples, start, end),
        sandbox_cpu_seconds=cpu_between(sandbox_samples, start, end),
        calls=Counter(f"{call['method']} {call['route']}" for call in calls),
        failed_calls=sum(1 for call in calls if not 200 <= call["status"] < 300),
    )


async def create_contacts(sandbox: SandboxProcess, contact_emails: Sequence[str]) -> None:
    """Create a contact on the email channel for each address (the API, as Trengo's UI would)."""
    slots = asyncio.Semaphore(_CONTACT_CREATION_CONCURRENCY)
    url = f"{sandbox.base_url}/channels/{EMAIL_CHANNEL_ID}/contacts"
    transport = AiohttpTransport(limits=httpx.Limits(max_connections=_CONTACT_CREATION_CONCURRENCY))
    headers = {"Authorization": f"Bearer {sandbox.token}"}
    async with httpx.AsyncClient(transport=transport, headers=headers, timeout=30) as client:

        async def create(email: str) -> None:
            async with slots:
                answer = await client.post(url, json={"identifier": email, "name": email})
                answer.raise_for_status()

        await asyncio.gather(*(create(email) for email in contact_emails))
