"""``trengo-processor demo`` (``make run``): the whole path on this machine, in one command.

Starts a Kafka broker (``KAFKA_BOOTSTRAP_SERVERS`` if set, else an embedded one) and the Trengo
sandbox, produces sample RudderStack events, runs the processor until every event reached an
outcome and its offset was committed, prints a summary, and stops everything it started.

The demo cannot touch production: its settings come from its own values only, so
``TRENGO_PROCESSOR_*`` variables left in the shell (a production Trengo URL, token, topic or
broker) are ignored, and Trengo is always the sandbox on loopback. ``KAFKA_BOOTSTRAP_SERVERS`` is
the one, deliberate, way to point the demo at a real cluster (it writes only to topics named
after the run).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Sequence

from confluent_kafka import Producer
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from devkit.progress import Progress, read_progress
from devkit.sandbox.broker import KafkaTarget, create_topics, kafka_target
from devkit.sandbox.samples import (
    DEMO_REQUIRED_CONSENT,
    SAMPLE_TEMPLATES,
    SampleEvent,
    sample_events,
)
from devkit.sandbox.trengo import DEFAULT_CHANNELS, RunningSandbox, SandboxOptions
from processor.config import (
    ENV_PREFIX,
    DestinationConfig,
    KafkaConfig,
    LogConfig,
    ServerConfig,
    Settings,
    TemplateMapping,
    TrengoConfig,
)
from processor.engine.shutdown import install_stop_signals
from processor.logging import configure_logging
from processor.runner import Processor

PROGRESS_SECONDS = 0.5
INTERRUPTED_EXIT_CODE = 130
DEMO_TIMEOUT_SECONDS = 120.0
TOPIC = "rudderstack.events"
PARTITIONS = 4
# Trengo's real budget is 120/min; the demo's sandbox grants more so it finishes in seconds.
DEMO_REQUESTS_PER_MINUTE = 1200


def run_demo(event_count: int | None = None) -> int:
    """Run the demo; 0 when every sample event reached its expected outcome."""
    configure_logging(LogConfig(format="console", level="WARNING"))
    users = max(1, (event_count or 40) // 5)
    events = sample_events(users=users)
    print(f"trengo-processor demo: {len(events)} sample RudderStack events, {users} users")
    ignored = sorted(name for name in os.environ if name.upper().startswith(ENV_PREFIX))
    if ignored:
        print(f"  ignoring {', '.join(ignored)} (the demo never uses production settings)")
    with (
        kafka_target() as kafka,
        RunningSandbox(SandboxOptions(requests_per_minute=DEMO_REQUESTS_PER_MINUTE)) as sandbox,
    ):
        print(f"  Kafka   {kafka.bootstrap_servers} ({kafka.kind})")
        print(f"  Trengo  {sandbox.base_url} (sandbox)")
        settings = demo_settings(kafka, sandbox.base_url)
        create_topics(
            kafka.bootstrap_servers,
            [settings.kafka.topic, settings.kafka.dead_letter_topic],
            PARTITIONS,
        )
        _produce(kafka.bootstrap_servers, settings.kafka.topic, events)
        progress, interrupted = asyncio.run(_process(settings, len(events)))
    _print_summary(progress, len(events), settings)
    if interrupted:
        print("  interrupted: unfinished events were not committed and stay in the topic")
        return INTERRUPTED_EXIT_CODE
    return 0 if progress.finished == len(events) else 1


class DemoSettings(Settings):
    """Settings built from the demo's own values: the environment is not a source."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def demo_settings(kafka: KafkaTarget, base_url: str) -> Settings:
    """The processor's settings for one demo run against ``kafka`` and the sandbox."""
    run_id = uuid.uuid4().hex[:8]
    email_channel = next(channel for channel in DEFAULT_CHANNELS if channel.type == "EMAIL")
    return DemoSettings(
        kafka=KafkaConfig(
            bootstrap_servers=kafka.bootstrap_servers,
            topic=f"{TOPIC}.{run_id}",
            group_id=f"trengo-processor-demo-{run_id}",
            dead_letter_topic=f"{TOPIC}.{run_id}.dlq",
            session_timeout_ms=6000,
            settings=kafka.consumer_settings,
        ),
        trengo=TrengoConfig(base_url=base_url, requests_per_minute=DEMO_REQUESTS_PER_MINUTE),
        destination=DestinationConfig(
            apiToken=SandboxOptions().tokens[0],
            channelId=str(email_channel.id),
            channelIdentifier="email",
            eventTemplateMap=tuple(
                TemplateMapping.model_validate(entry) for entry in SAMPLE_TEMPLATES
            ),
            # As a RudderStack export carries them: Trengo needs OneTrust's C0004 (targeting)
            # or Ketch's purpose "analytics".
            consentManagement=(
                {"provider": "oneTrust", "consents": [{"consent": DEMO_REQUIRED_CONSENT}]},
                {"provider": "ketch", "consents": [{"consent": "analytics"}]},
            ),
        ),
        server=ServerConfig(host="127.0.0.1", port=0),
        log=LogConfig(format="console", level="WARNING"),
    )


def _produce(bootstrap_servers: str, topic: str, events: Sequence[SampleEvent]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap_servers, "enable.idempotence": True})
    for event in events:
        producer.produce(topic, key=event.key, value=event.value)
    producer.flush(30)


async def _process(settings: Settings, expected: int) -> tuple[Progress, bool]:
    """Run the processor until every event has an outcome; True when a signal cut it short."""
    processor = Processor(settings)
    stop = asyncio.Event()
    install_stop_signals(stop)
    running = asyncio.create_task(processor.run(stop))
    deadline = time.monotonic() + DEMO_TIMEOUT_SECONDS
    progress = read_progress()
    progress_line = _ProgressLine(expected)
    while not stop.is_set() and not running.done() and time.monotonic() < deadline:
        progress = read_progress()
        progress_line.show(progress)
        if progress.finished >= expected and processor.tracker.pending_count() == 0:
            break
        await asyncio.sleep(PROGRESS_SECONDS)
    interrupted = stop.is_set()
    stop.set()
    await running
    print()
    return read_progress(), interrupted


class _ProgressLine:
    """Rewrites one terminal line; prints a new line per change when output is not a terminal."""

    def __init__(self, expected: int) -> None:
        self._expected = expected
        self._shown: int | None = None

    def show(self, progress: Progress) -> None:
        line = f"  {progress.finished}/{self._expected} · {progress.line()}"
        if sys.stdout.isatty():
            sys.stdout.write(f"\r{line}   ")
            sys.stdout.flush()
        elif progress.finished != self._shown:
            print(line, flush=True)
        self._shown = progress.finished


def _by_reason(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items()) if count) or "none"


def _print_summary(progress: Progress, produced: int, settings: Settings) -> None:
    stages = _by_reason(progress.dead_letters_by_stage)
    rows = [
        ("events produced", str(produced)),
        ("delivered", str(progress.delivered)),
        ("dead-lettered", f"{progress.dead_lettered} ({stages})"),
        ("  dead-letter topic", settings.kafka.dead_letter_topic),
        ("skipped", f"{progress.skipped} ({_by_reason(progress.skipped_by_reason)})"),
        ("Trengo API calls", f"{progress.trengo_calls} ({progress.calls_per_event:.2f} per event)"),
    ]
    print("summary")
    for label, value in rows:
        print(f"  {label:<22} {value}")
    if progress.finished != produced:
        print(f"  unfinished             {produced - progress.finished}")
